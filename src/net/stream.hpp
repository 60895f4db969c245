#pragma once
// A client-relay connection: plain TCP or TLS over TCP behind one set of awaitable operations, so
// the protocol and forwarding code is written once. The plain case costs one branch.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <tuple>
#include <variant>

namespace porthole::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using tls_stream = asio::ssl::stream<tcp::socket>;
using io_result = std::tuple<error_code, std::size_t>;

class stream {
public:
    explicit stream(tcp::socket s) : s_(std::move(s)) {}
    explicit stream(tls_stream s) : s_(std::move(s)) {}

    asio::awaitable<io_result> read_some(asio::mutable_buffer b) {
        constexpr auto token = asio::as_tuple(asio::use_awaitable);
        if (auto* plain = std::get_if<tcp::socket>(&s_)) return plain->async_read_some(b, token);
        return std::get<tls_stream>(s_).async_read_some(b, token);
    }
    asio::awaitable<io_result> write(asio::const_buffer b) {  // all of it
        constexpr auto token = asio::as_tuple(asio::use_awaitable);
        if (auto* plain = std::get_if<tcp::socket>(&s_)) return asio::async_write(*plain, b, token);
        return asio::async_write(std::get<tls_stream>(s_), b, token);
    }
    // Both buffers in one gathered write: one segment on the wire where they fit.
    asio::awaitable<io_result> write(asio::const_buffer a, asio::const_buffer b) {
        constexpr auto token = asio::as_tuple(asio::use_awaitable);
        const std::array<asio::const_buffer, 2> both{a, b};
        if (auto* plain = std::get_if<tcp::socket>(&s_))
            return asio::async_write(*plain, both, token);
        return asio::async_write(std::get<tls_stream>(s_), both, token);
    }

    tcp::socket& socket() {
        if (auto* plain = std::get_if<tcp::socket>(&s_)) return *plain;
        return std::get<tls_stream>(s_).next_layer();
    }
    bool is_tls() const { return std::holds_alternative<tls_stream>(s_); }
    tls_stream& tls() { return std::get<tls_stream>(s_); }

    // Half-close. Over TLS this is a TCP FIN without close_notify: both ends treat the truncation
    // as end of stream (the tunneled protocol frames its own messages).
    void shutdown_send() {
        error_code ec;
        socket().shutdown(tcp::socket::shutdown_send, ec);
    }
    void close() {
        error_code ec;
        socket().close(ec);
    }

private:
    std::variant<tcp::socket, tls_stream> s_;
};

// EOF, and over TLS the truncation of a stream that ended without close_notify.
inline bool is_end_of_stream(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace porthole::net
