#pragma once
// The HTTPS edge: peeks each visitor's ClientHello; a server name that is a TLS tunnel passes
// through still encrypted to that tunnel's client, anything else is terminated here (with the
// relay's certificates) and served by the HTTP edge.
#include "relay/http_edge.hpp"
#include "relay/loop_tunnels.hpp"
#include "relay/relay_context.hpp"
#include "relay/spare_listeners.hpp"
#include "relay/tunnel_members.hpp"
#include "relay/tunnel_registry.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <tl/expected.hpp>

#include <functional>
#include <optional>

namespace porthole::relay {

class https_edge {
public:
    https_edge(relay_context& ctx, tunnel_registry& registry, http_edge& http)
        : ctx_(ctx), registry_(registry), http_(http), acceptor_(ctx.io) {}
    // On the first loop: passthrough tunnels its clients serve, and in a cluster those another
    // relay holds, carried there.
    void use_tunnels(tunnel_members* tunnels) { tunnels_ = tunnels; }
    // On a worker loop: the passthrough tunnels its directory carries, over data connections
    // the first loop hands it; other TLS tunnels' visitors go to the first loop.
    void carry_tunnels_of(loop_tunnels* carried) { carried_ = carried; }

    // Clients whose ClientHello offers ALPN porthole/1 go to `control` (a relay with a control
    // port); unset, they are visitors like any other.
    void set_control(std::function<void(boost::asio::ip::tcp::socket)> control) {
        control_ = std::move(control);
    }

    // `shared`: one listener per event loop (SO_REUSEPORT).
    tl::expected<void, std::string> listen(bool shared = false);
    // A worker loop's edge: a connection for anything but a configured site (a TLS tunnel, an
    // HTTP tunnel, an ACME validation, a client) goes to `to_first` before its handshake.
    void hand_over_to(hand_over_fn to_first) { hand_over_ = std::move(to_first); }
    // On the first loop: a connection a worker handed over, its ClientHello not yet read.
    void adopt(handed_visitor v);
    void start();
    void stop_accepting();
    bool listening() const { return acceptor_.is_open(); }
    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    int listener_fd() { return acceptor_.is_open() ? acceptor_.native_handle() : -1; }
    // On the first loop, after listen(): the HTTPS listeners the replaced relay had to spare.
    void take_spare_listeners() { spare_.take(ctx_, "https", ctx_.cfg.https_addr->to_string()); }
    std::vector<int> spare_listener_fds() { return spare_.fds(); }

private:
    boost::asio::awaitable<void> accept();
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);
    boost::asio::awaitable<void> serve_handed(handed_visitor v);
    // `deadline`: for the ClientHello and the handshake together; unset, header_timeout from now.
    boost::asio::awaitable<void> serve_admitted(boost::asio::ip::tcp::socket socket,
                                                const visit_guard& guard,
                                                std::optional<clock::time_point> deadline = {});
    boost::asio::awaitable<void> answer_tls_alpn(
        boost::asio::ip::tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> challenge,
        clock::time_point deadline);
    // To a client of this relay serving TLS tunnel `name`, on whichever loop this is.
    boost::asio::awaitable<void> pass_through(boost::asio::ip::tcp::socket visitor,
                                              const std::string& from, const std::string& name);

    relay_context& ctx_;
    tunnel_registry& registry_;
    http_edge& http_;
    tunnel_members* tunnels_ = nullptr;  // on the first loop
    loop_tunnels* carried_ = nullptr;    // on a worker loop
    boost::asio::ip::tcp::acceptor acceptor_;
    spare_listeners spare_;
    std::function<void(boost::asio::ip::tcp::socket)> control_;
    hand_over_fn hand_over_;  // set on a worker loop
};

}  // namespace porthole::relay
