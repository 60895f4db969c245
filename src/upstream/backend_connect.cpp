#include "upstream/backend_connect.hpp"

#include "net/connect.hpp"
#include "net/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

namespace porthole::upstream {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace asio::experimental::awaitable_operators;
using connect_result = tl::expected<net::stream, std::string>;

tl::expected<backend_tls, std::string> make_backend_tls(const std::string& ca_file) {
    auto ctx = net::make_client_tls(net::client_trust{ca_file, {}, false});
    if (!ctx) return tl::unexpected(ctx.error());
    return backend_tls{ca_file, std::make_shared<asio::ssl::context>(std::move(*ctx))};
}

namespace {

std::chrono::seconds whole_seconds(std::chrono::milliseconds ms) {
    return std::max(std::chrono::ceil<std::chrono::seconds>(ms), std::chrono::seconds(1));
}

// A unix socket behind a tcp::socket: reads, writes, waits, shutdown and close are the same
// calls on any stream socket, so the forwarding code keeps one socket type. Nothing here asks
// it for a TCP endpoint or option.
asio::awaitable<connect_result> connect_unix(const std::string& path,
                                             std::chrono::milliseconds timeout) {
    auto ex = co_await asio::this_coro::executor;
    asio::local::stream_protocol::socket s(ex);
    asio::steady_timer timer(ex, timeout);
    const asio::local::stream_protocol::endpoint at(path);
    auto done = co_await (s.async_connect(at, asio::as_tuple(asio::use_awaitable)) ||
                          timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (done.index() == 1) co_return tl::unexpected(std::string("timed out"));
    if (auto [ec] = std::get<0>(done); ec) co_return tl::unexpected(ec.message());
    tcp::socket adopted(ex);
    error_code ec;
    adopted.assign(tcp::v4(), s.release(), ec);
    if (ec) co_return tl::unexpected(ec.message());
    co_return net::stream(std::move(adopted));
}

}  // namespace

tl::expected<std::vector<tcp::endpoint>, std::string> resolve_member(
    const config::upstream_member& m) {
    using scheme = config::upstream_member::scheme;
    if (m.kind == scheme::unix_socket || m.kind == scheme::tunnel) return {};
    error_code ec;
    if (auto address = asio::ip::make_address(m.host, ec); !ec)
        return std::vector<tcp::endpoint>{tcp::endpoint(address, m.port)};
    asio::io_context io;
    tcp::resolver resolver(io);
    const auto results = resolver.resolve(m.host, std::to_string(m.port), ec);
    if (ec || results.empty())
        return tl::unexpected(fmt::format("cannot resolve {} (member {}): {}", m.host, m.url,
                                          ec ? ec.message() : std::string("no address")));
    std::vector<tcp::endpoint> out;
    for (const auto& r : results) out.push_back(r.endpoint());
    return out;
}

asio::awaitable<connect_result> connect_backend(const config::upstream_member& m,
                                                std::span<const tcp::endpoint> addresses,
                                                std::chrono::milliseconds timeout,
                                                backend_tls* tls) {
    using scheme = config::upstream_member::scheme;
    if (m.kind == scheme::unix_socket) co_return co_await connect_unix(m.host, timeout);
    auto socket = co_await net::connect(addresses, whole_seconds(timeout));
    if (!socket) co_return tl::unexpected(socket.error());
    if (m.kind != scheme::https) co_return net::stream(std::move(*socket));
    net::tls_socket secured(std::move(*socket), *tls->context);
    const net::client_trust trust{tls->ca_file, {}, false};
    net::configure_client_stream(secured.native_handle(), trust, m.host);
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto done = co_await (secured.handshake(net::tls_socket::role::client) ||
                          timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (done.index() == 1) co_return tl::unexpected(std::string("TLS handshake timed out"));
    if (const error_code ec = std::get<0>(done))
        co_return tl::unexpected(fmt::format("TLS: {}", ec.message()));
    co_return net::stream(std::move(secured));
}

}  // namespace porthole::upstream
