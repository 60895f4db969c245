#include "relay/https_edge.hpp"

#include "acme/cert_issuer.hpp"
#include "core/use_tuple.hpp"
#include "http/host_route.hpp"
#include "net/client_hello.hpp"
#include "net/frame_io.hpp"
#include "net/listener.hpp"
#include "net/pump.hpp"
#include "relay/tunnel_stream.hpp"

#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

namespace porthole::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

namespace {

// The ClientHello, peeked (left in the socket): its server name picks a passthrough tunnel.
asio::awaitable<net::client_hello_sni> peek_client_hello(tcp::socket& socket,
                                                         clock::time_point deadline) {
    using status = net::client_hello_sni::status;
    std::vector<std::uint8_t> bytes;  // taken once bytes arrive: an idle socket holds none
    asio::steady_timer pause(socket.get_executor());
    while (clock::now() < deadline) {
        auto ready = co_await net::within(
            socket.async_wait(tcp::socket::wait_read, use_tuple),
            std::chrono::duration_cast<clock::duration>(deadline - clock::now()));
        if (!ready || std::get<0>(*ready)) break;
        bytes.resize(16 * 1024 + 5);
        const auto n = ::recv(socket.native_handle(), bytes.data(), bytes.size(), MSG_PEEK);
        if (n <= 0) break;
        auto sni = net::find_sni({bytes.data(), static_cast<std::size_t>(n)});
        if (sni.what != status::need_more) co_return sni;
        // The rest of the hello is on its way; the peeked bytes keep the socket readable.
        pause.expires_after(5ms);
        co_await pause.async_wait(use_tuple);
    }
    co_return net::client_hello_sni{status::not_tls, {}};
}
}  // namespace

tl::expected<void, std::string> https_edge::listen(bool shared) {
    auto bound = ctx_.listen(acceptor_, *ctx_.cfg.https_addr, "https", shared);
    if (bound) ctx_.https_port = acceptor_.local_endpoint().port();
    return bound;
}

void https_edge::start() {
    ctx_.spawn(accept());
    spare_.start(ctx_, "https", [this](tcp::socket s) { ctx_.spawn(serve(std::move(s))); });
}

void https_edge::stop_accepting() {
    error_code ec;
    acceptor_.close(ec);
    spare_.close();
}

asio::awaitable<void> https_edge::accept() {
    co_await accept_connections(acceptor_, "https",
                                [this](tcp::socket s) { ctx_.spawn(serve(std::move(s))); });
}

// TLS passthrough: the still-encrypted connection goes to the client as it came.
asio::awaitable<void> https_edge::pass_through(tcp::socket visitor, const std::string& from,
                                               const std::string& name) {
    auto opening = carried_ ? carried_->open_tls(name, from) : tunnels_->open_local_tls(name, from);
    auto stream = co_await std::move(opening);
    if (!stream) {
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("tls {}: visitor {} dropped: {}{}", name, from, stream.error(),
                         ctx_.visitor_log.suppressed_note());
        co_return;
    }
    net::stream visitor_stream(std::move(visitor));
    co_await net::pump(visitor_stream, stream->stream, ctx_.counters.carried);
}

// An ACME server validating a TLS-ALPN-01 challenge: the handshake is the whole answer.
asio::awaitable<void> https_edge::answer_tls_alpn(tcp::socket socket,
                                                  std::shared_ptr<asio::ssl::context> challenge,
                                                  clock::time_point deadline) {
    net::tls_socket tls(std::move(socket), *challenge);
    auto done =
        co_await net::within(tls.handshake(net::tls_socket::role::server), deadline - clock::now());
    if (done && !*done) spdlog::debug("acme: answered a tls-alpn-01 validation");
    net::stream closing(std::move(tls));
    closing.close();
}

// Counted from accept, before a byte is read: idle sockets count against the address too.
asio::awaitable<void> https_edge::serve(tcp::socket socket) {
    const auto origin =
        co_await connection_origin(ctx_, socket, ctx_.cfg.accept_proxy_protocol, "https");
    if (!origin) co_return;
    const visit_guard guard(ctx_, *origin);
    if (!guard.within_limit) {  // nothing can be said before TLS: the connection just closes
        ctx_.refused_connection(observe::refusal::connections_per_ip, guard.ip);
        co_return;
    }
    co_await serve_admitted(std::move(socket), guard);
}

void https_edge::adopt(handed_visitor v) { ctx_.spawn(serve_handed(std::move(v))); }

asio::awaitable<void> https_edge::serve_handed(handed_visitor v) {
    const visit_guard guard(ctx_, v);
    auto stream = net::stream::adopt(std::move(v.conn), ctx_.io.get_executor());
    co_await serve_admitted(std::move(stream.socket()), guard, v.deadline);
}

asio::awaitable<void> https_edge::serve_admitted(tcp::socket socket, const visit_guard& guard,
                                                 std::optional<clock::time_point> given) {
    // One deadline for the ClientHello and the handshake: a slow handshake is a slow head. A
    // connection another loop handed over keeps the one it had there.
    const auto deadline = given.value_or(clock::now() + ctx_.cfg.header_timeout);
    const auto hello = co_await peek_client_hello(socket, deadline);
    // A worker loop terminates TLS for the sites and tunnels it serves, with certificates from
    // files, self-signed or ACME's once issued, and hands everything else over untouched: a
    // name still without its ACME certificate goes to the first loop, which orders it.
    const bool named = hello.what == net::client_hello_sni::status::found;
    if (carried_ && named && !hello.acme_tls && !hello.control) {
        if (auto name = carried_->carried_tls_name(hello.name, ctx_.cfg.domain)) {
            co_await pass_through(std::move(socket), guard.ip, *name);
            co_return;
        }
    }
    if (hand_over_ && !(hello.what == net::client_hello_sni::status::found && !hello.acme_tls &&
                        !hello.control && ctx_.https && http_.has_site(hello.name) &&
                        (!ctx_.cfg.acme || ctx_.https->covers(hello.name) ||
                         ctx_.https->source_serves(hello.name)))) {
        net::stream whole(std::move(socket));
        ++ctx_.counters.visitors_handed;
        hand_over_(handed_visitor{whole.release(), {}, guard.ip, guard.source, guard.destination,
                                  true, deadline});
        co_return;
    }
    if (hello.what == net::client_hello_sni::status::found && hello.acme_tls && ctx_.acme) {
        if (auto challenge = ctx_.acme->answers().tls_alpn_context(hello.name)) {
            co_await answer_tls_alpn(std::move(socket), challenge, deadline);
            co_return;
        }
    }
    if (hello.what == net::client_hello_sni::status::found) {
        auto name = http::tunnel_name_for_host(hello.name, ctx_.cfg.domain);
        if (!name && registry_.local(protocol::tunnel_kind::tls, hello.name)) name = hello.name;
        if (name) {
            if (registry_.local(protocol::tunnel_kind::tls, *name)) {
                co_await pass_through(std::move(socket), guard.ip, *name);
                co_return;
            }
            if (tunnels_) {
                // Another relay of a cluster may hold it: carried there still encrypted.
                co_await registry_.learn(*name);
                auto carried = co_await tunnels_->open_remote_tls(*name, guard.ip);
                if (carried) {
                    net::stream visitor_stream(std::move(socket));
                    co_await net::pump(visitor_stream, *carried, ctx_.counters.carried);
                    co_return;
                }
            }
        }
    }
    if (!ctx_.https || clock::now() >= deadline) co_return;  // a passthrough-only HTTPS port
    // A name the relay serves but holds no certificate for yet: its order first (bounded by the
    // handshake's deadline), so this very handshake gets the certificate.
    if (ctx_.acme && hello.what == net::client_hello_sni::status::found &&
        !ctx_.acme->serves(hello.name) && !ctx_.https->covers(hello.name)) {
        const auto wait_until = deadline - std::chrono::seconds(1);
        co_await ctx_.acme->ensure(hello.name, wait_until);
    }
    if (control_ && hello.what == net::client_hello_sni::status::found && hello.control) {
        control_(std::move(socket));
        co_return;
    }
    net::tls_socket tls(std::move(socket), ctx_.https->context());
    auto done =
        co_await net::within(tls.handshake(net::tls_socket::role::server), deadline - clock::now());
    if (!done || *done) co_return;
    co_await http_.serve(net::stream(std::move(tls)), guard, true);
}

}  // namespace porthole::relay
