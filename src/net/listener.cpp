#include "net/listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

namespace porthole::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

tl::expected<void, std::string> listen_on(tcp::acceptor& a, const config::endpoint& at,
                                          std::string_view what, bool shared) {
    error_code ec;
    auto address = asio::ip::make_address(at.host == "localhost" ? "127.0.0.1" : at.host, ec);
    if (ec)
        return tl::unexpected(fmt::format("cannot listen on {} ({}): '{}' is not an IP address",
                                          at.to_string(), what, at.host));
    tcp::endpoint ep(address, at.port);
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && shared) {
        const int on = 1;
        if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
            ec = error_code(errno, asio::error::get_system_category());
    }
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        error_code ignored;
        a.close(ignored);
        return tl::unexpected(fmt::format("cannot listen on {} ({}): {}", at.to_string(), what,
                                          ec == asio::error::address_in_use
                                              ? std::string("address already in use")
                                              : ec.message()));
    }
    return {};
}

asio::awaitable<void> pause_after_accept_error(error_code ec, std::string_view what) {
    spdlog::warn("accept on the {} listener failed: {}", what, ec.message());
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::string peer_ip(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? std::string("unknown") : ep.address().to_string();
}

}  // namespace porthole::net
