#pragma once
// The control port: accepts clients, holds strangers in the handshake gate until they prove a
// token (or a data connection proves its session), runs each session (its reader loop, frame
// writer and heartbeats), opens the tunnels it asks for in the registry and closes it all again.
#include "net/tls.hpp"
#include "protocol/frame.hpp"
#include "relay/handshake_gate.hpp"
#include "relay/relay_context.hpp"
#include "relay/relay_metrics.hpp"
#include "relay/session.hpp"
#include "relay/tunnel_registry.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <tl/expected.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace porthole::relay {

class control_port {
public:
    // `serve_port`: starts the visitor listener of a TCP tunnel whose acceptor is bound.
    control_port(relay_context& ctx, tunnel_registry& registry, std::optional<net::server_tls> tls,
                 std::function<void(std::shared_ptr<tunnel>)> serve_port);

    tl::expected<void, std::string> listen();
    void start();
    // A client that came to the HTTPS port (ALPN porthole/1): its TLS is that port's, with the
    // certificate SNI picks there (the relay's ACME one), then it is served as here.
    boost::asio::awaitable<void> serve_from_https(boost::asio::ip::tcp::socket socket,
                                                  boost::asio::ssl::context& tls);
    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    int listener_fd() { return acceptor_.is_open() ? acceptor_.native_handle() : -1; }
    const std::optional<net::server_tls>& tls() const { return tls_; }
    // New handshakes use `tls` (a reload read the certificate again); ones under way keep theirs.
    void replace_tls(net::server_tls tls) { tls_.emplace(std::move(tls)); }
    // Sessions, their tunnels by kind and their data pools, for a metrics scrape.
    void read_gauges(relay_gauges& g) const;
    std::size_t session_count() const { return sessions_.size(); }
    // Sessions and tunnels per token (hex of its verifier), for the per-token limits of a
    // cluster. Empty on a relay without tokens.
    const std::unordered_map<std::string, std::uint32_t>& sessions_per_token() const {
        return sessions_per_token_;
    }
    const std::unordered_map<std::string, std::uint32_t>& tunnels_per_token() const {
        return tunnels_per_token_;
    }

    // Draining: no new clients or tunnels; every session is told GOAWAY and its idle data
    // connections close.
    void begin_drain(std::string_view reason);
    // The end: every session closes.
    void close_all();

    // For the admin API (relay_admin).
    const std::unordered_map<std::string, std::shared_ptr<session>>& sessions() const {
        return sessions_;
    }
    // Ends a session as a dropped one ends: its names and ports become leases.
    void kick(session& s);
    // The accepted tokens, which the admin API adds to and revokes.
    const std::vector<protocol::verifier>& tokens() const { return tokens_; }
    void add_token(const protocol::verifier& v);
    // The token goes, and its sessions close at once with their names and ports freed; how many.
    std::size_t revoke_token(const protocol::verifier& v);

private:
    struct new_session;
    struct new_data_connection;
    struct handshake_result;
    struct authenticated;

    boost::asio::awaitable<void> accept();
    // `tls`: the context of its handshake, else the control port's own (or none).
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket,
                                       boost::asio::ssl::context* tls = nullptr);
    boost::asio::awaitable<handshake_result> handshake(boost::asio::ip::tcp::socket socket,
                                                       boost::asio::ssl::context* tls);
    boost::asio::awaitable<handshake_result> authenticate_session(net::stream stream,
                                                                  protocol::hello hello);
    boost::asio::awaitable<handshake_result> authenticate_data(net::stream stream,
                                                               protocol::data_hello hello);
    std::optional<authenticated> authenticate(const protocol::key32& nonce,
                                              const protocol::id16& client_id,
                                              const protocol::key32& proof) const;
    boost::asio::awaitable<void> refuse(net::stream& stream, protocol::error_code code,
                                        std::string message);

    // Why this session's token may not serve custom domain `domain`; nullopt when it may.
    std::optional<std::string> custom_domain_problem(const std::string& domain,
                                                     const protocol::verifier& token) const;
    boost::asio::awaitable<void> run_session(new_session n, std::string from);
    boost::asio::awaitable<void> write_session(std::shared_ptr<session> s);
    boost::asio::awaitable<void> heartbeat_session(std::shared_ptr<session> s);
    void close_session(session& s);
    core::log_limiter& session_log(const std::string& token_hex);

    boost::asio::awaitable<void> open_tunnel(std::shared_ptr<session> s,
                                             protocol::open_tunnel req);
    boost::asio::awaitable<tl::expected<std::uint16_t, std::string>> bind_tunnel_port(
        tunnel& t, std::uint16_t wanted, owner_key holder, clock::time_point now);

    relay_context& ctx_;
    tunnel_registry& registry_;
    std::optional<net::server_tls> tls_;  // set when the client transport is TLS
    std::function<void(std::shared_ptr<tunnel>)> serve_port_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::uint32_t next_tunnel_id_ = 1;
    std::vector<protocol::verifier> tokens_;  // live: the config's, then the admin API's changes
    bool tokens_required_;  // false: an open relay (no tokens and no tokens file)
    std::unordered_map<std::string, std::shared_ptr<session>> sessions_;  // by id, hex
    std::unordered_map<owner_key, std::weak_ptr<session>> by_owner_;
    std::unordered_map<std::string, std::uint32_t> tunnels_per_token_;
    std::unordered_map<std::string, std::uint32_t> sessions_per_token_;
    handshake_gate gate_;
    core::log_limiter handshake_log_{30};  // lines about strangers on the control port
    std::unordered_map<std::string, core::log_limiter> session_logs_;
};

}  // namespace porthole::relay
