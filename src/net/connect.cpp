#include "net/connect.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <vector>

namespace porthole::net {

asio::awaitable<tl::expected<tcp::socket, std::string>> connect(const config::endpoint& to,
                                                                std::chrono::seconds timeout) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    if (auto address = asio::ip::make_address(to.host, ec); !ec) {
        endpoints.emplace_back(address, to.port);  // an IP literal: no resolver round trip
    } else {
        tcp::resolver resolver(co_await asio::this_coro::executor);
        auto [rec, results] =
            co_await resolver.async_resolve(to.host, std::to_string(to.port), use_tuple);
        if (rec)
            co_return tl::unexpected(fmt::format("cannot resolve {}: {}", to.host, rec.message()));
        for (const auto& r : results) endpoints.push_back(r.endpoint());
    }
    co_return co_await connect(endpoints, timeout);
}

asio::awaitable<tl::expected<tcp::socket, std::string>> connect(
    std::span<const tcp::endpoint> endpoints, std::chrono::seconds timeout) {
    namespace beast = boost::beast;
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    const auto ex = co_await asio::this_coro::executor;
    beast::tcp_stream stream(ex);
    stream.expires_after(timeout);
    error_code ec;
    tcp::endpoint ep;
    std::tie(ec, ep) = co_await stream.async_connect(endpoints, use_tuple);
    if (ec)
        co_return tl::unexpected(ec == beast::error::timeout ? std::string("timed out")
                                                             : ec.message());
    tcp::socket connected = stream.release_socket();
    connected.set_option(tcp::no_delay(true), ec);
    // Connecting left the socket registered for writability, and edge-triggered, so every ACK
    // that frees send buffer would wake the event loop for nothing. Registered afresh, it is
    // watched for readability only, until a write has to wait.
    const int fd = connected.release(ec);
    if (ec) co_return tl::unexpected(ec.message());
    tcp::socket fresh(ex);
    fresh.assign(ep.protocol(), fd, ec);
    if (ec) {
        ::close(fd);
        co_return tl::unexpected(ec.message());
    }
    co_return fresh;
}

}  // namespace porthole::net
