#pragma once
// The inter-relay link of a cluster (docs/design-scale.md): a visitor who reached a relay that
// does not hold the tunnel is carried to the relay that does. TLS 1.3 with a key both ends
// derive from the cluster secret (an external PSK): a connection without the secret fails its
// handshake, so the one handshake authenticates both ends and encrypts, with no certificate.
// Connections are opened ahead and pooled per peer, so carrying a visitor costs one round trip
// (LINK_OPEN, answered LINK_READY once the tunnel's client has reached its service). The relay
// that holds the tunnel treats the link connection as its own visitor's, within the tunnel's
// limits.
#include "config/cluster_config.hpp"
#include "core/printable.hpp"
#include "net/stream.hpp"
#include "protocol/frame.hpp"
#include "relay/relay_context.hpp"
#include "relay/tunnel_members.hpp"
#include "relay/tunnel_registry.hpp"
#include "upstream/upstream_pool.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <array>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

namespace porthole::cluster {

class relay_link {
public:
    // `local`: how the tunnels this relay holds are opened (never another relay's).
    relay_link(relay::relay_context& ctx, relay::tunnel_registry& registry,
               relay::tunnel_members& local, const config::cluster_config& cfg);

    tl::expected<void, std::string> listen();
    void start();
    void close();
    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    // Carries a visitor to the relay whose link is at `peer` ("HOST:PORT"): a stream whose bytes
    // from now on are the tunnel's, with its host header and target.
    boost::asio::awaitable<tl::expected<upstream::tunnel_connection, std::string>> open(
        std::string peer, protocol::link_open what);

    // Listens on the TCP tunnel ports other relays hold (port -> their link), each visitor
    // carried there; ports no longer listed close. A port this relay's client claims is dropped
    // first (drop_port).
    void serve_remote_ports(const std::map<std::uint16_t, std::string>& ports);
    void drop_port(std::uint16_t port);

    // For the admin API and metrics.
    std::uint64_t carried_out() const { return carried_out_; }
    std::uint64_t carried_in() const { return carried_in_; }
    std::uint64_t refused() const { return refused_; }

private:
    boost::asio::awaitable<void> accept();
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);
    boost::asio::awaitable<tl::expected<net::stream, std::string>> connect(const std::string& peer);
    boost::asio::awaitable<void> refill(std::string peer);
    struct remote_port {
        explicit remote_port(boost::asio::io_context& io) : acceptor(io) {}
        boost::asio::ip::tcp::acceptor acceptor;
        std::string link;  // the holding relay's
    };
    boost::asio::awaitable<void> accept_port(std::shared_ptr<remote_port> p, std::uint16_t port);
    boost::asio::awaitable<void> carry_tcp(boost::asio::ip::tcp::socket visitor,
                                           std::shared_ptr<remote_port> p, std::uint16_t port);

    relay::relay_context& ctx_;
    relay::tunnel_registry& registry_;
    relay::tunnel_members& local_;
    const config::cluster_config& cfg_;
    std::array<unsigned char, 32> psk_;  // the link's key, derived from the cluster secret
    boost::asio::ssl::context server_tls_;
    boost::asio::ssl::context client_tls_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::unordered_map<std::string, std::vector<net::stream>> idle_;  // by peer
    std::unordered_map<std::string, unsigned> filling_;  // connects under way, by peer
    std::map<std::uint16_t, std::shared_ptr<remote_port>> ports_;  // other relays' TCP ports
    core::log_limiter log_{20};
    std::uint64_t carried_out_ = 0;
    std::uint64_t carried_in_ = 0;
    std::uint64_t refused_ = 0;
};

}  // namespace porthole::cluster
