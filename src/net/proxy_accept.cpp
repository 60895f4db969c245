#include "net/proxy_accept.hpp"

#include "net/frame_io.hpp"

#include <boost/asio/steady_timer.hpp>

#include <sys/socket.h>

#include <array>

namespace porthole::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

asio::awaitable<tl::expected<proxy_header, std::string>> read_proxy_header(
    tcp::socket& socket, clock::time_point deadline) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    std::array<char, proxy_header_max_size> bytes;  // in the frame: gone once the header is
    asio::steady_timer pause(socket.get_executor());
    std::string error;
    while (clock::now() < deadline) {
        auto ready = co_await within(socket.async_wait(tcp::socket::wait_read, use_tuple),
                                     deadline - clock::now());
        if (!ready) break;
        if (std::get<0>(*ready)) co_return tl::unexpected(std::string("closed"));
        const auto n = ::recv(socket.native_handle(), bytes.data(), bytes.size(), MSG_PEEK);
        if (n <= 0) co_return tl::unexpected(std::string("closed before a PROXY header"));
        proxy_header h;
        switch (parse_proxy_header({bytes.data(), static_cast<std::size_t>(n)}, h, error)) {
        case proxy_parse::invalid: co_return tl::unexpected(error);
        case proxy_parse::done: {
            // Take the header's bytes, no more; they are in the socket already.
            if (::recv(socket.native_handle(), bytes.data(), h.size, 0) !=
                static_cast<ssize_t>(h.size))
                co_return tl::unexpected(std::string("the PROXY header could not be read"));
            if (h.local) {
                boost::system::error_code ec;
                h.source = socket.remote_endpoint(ec);
                h.destination = socket.local_endpoint(ec);
            }
            co_return h;
        }
        case proxy_parse::need_more:
            // The rest is on its way; the peeked bytes keep the socket readable.
            pause.expires_after(5ms);
            co_await pause.async_wait(use_tuple);
            break;
        }
    }
    co_return tl::unexpected(std::string("no PROXY header in time"));
}

}  // namespace porthole::net
