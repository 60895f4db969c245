#pragma once
// A client-relay connection: plain TCP or TLS over TCP behind one set of awaitable operations, so
// the protocol and forwarding code is written once. The plain case costs one branch.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "net/tls_socket.hpp"

#include <array>
#include <span>
#include <tuple>
#include <utility>
#include <variant>

namespace porthole::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// As much of `bufs` as the socket takes without blocking (0 when it takes none or fails; the
// asynchronous write that follows reports the error).
std::size_t try_send(tcp::socket& s, std::span<const asio::const_buffer> bufs);

// A connection taken off its event loop, to be served by another (a relay's threads hand a
// connection over once, never per request): the descriptor, and the TLS state when it has one.
// Whoever holds it must adopt() it or let it go, which closes it.
struct released_stream {
    released_stream() = default;
    released_stream(int fd, bool v6, SSL* ssl) : fd(fd), v6(v6), ssl(ssl) {}
    released_stream(released_stream&& o) noexcept
        : fd(std::exchange(o.fd, -1)), v6(o.v6), ssl(std::exchange(o.ssl, nullptr)) {}
    released_stream& operator=(released_stream&& o) noexcept {
        std::swap(fd, o.fd);
        std::swap(v6, o.v6);
        std::swap(ssl, o.ssl);
        return *this;
    }
    ~released_stream();
    int fd = -1;
    bool v6 = false;
    SSL* ssl = nullptr;
};

class stream {
public:
    explicit stream(tcp::socket s) : s_(std::move(s)) {}
    explicit stream(tls_socket s) : s_(std::move(s)) {}

    asio::awaitable<io_result> read_some(asio::mutable_buffer b) {
        constexpr auto token = asio::as_tuple(asio::use_awaitable);
        if (auto* plain = std::get_if<tcp::socket>(&s_)) return plain->async_read_some(b, token);
        return std::get<tls_socket>(s_).read_some(b);
    }
    // After a wait reported the socket readable: read at once, without a round through the event
    // loop; waits as read_some does only if the bytes are not there after all (or over TLS).
    asio::awaitable<io_result> read_ready(asio::mutable_buffer b) {
        if (auto* plain = std::get_if<tcp::socket>(&s_)) {
            const ssize_t n = ::recv(plain->native_handle(), b.data(), b.size(), MSG_DONTWAIT);
            if (n > 0) co_return io_result{error_code(), static_cast<std::size_t>(n)};
            if (n == 0) co_return io_result{asio::error::eof, 0};
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                co_return io_result{error_code(errno, asio::error::get_system_category()), 0};
        }
        co_return co_await read_some(b);
    }
    asio::awaitable<io_result> write(asio::const_buffer b) {  // all of it
        return write(b, asio::const_buffer());
    }
    // Both buffers in one gathered write: one segment on the wire where they fit. A plain socket
    // is written at once when the kernel takes it all (the usual case), so the caller resumes
    // without a round through the event loop.
    asio::awaitable<io_result> write(asio::const_buffer a, asio::const_buffer b) {
        constexpr auto token = asio::as_tuple(asio::use_awaitable);
        std::array<asio::const_buffer, 2> both{a, b};
        if (auto* plain = std::get_if<tcp::socket>(&s_)) {
            const std::size_t total = a.size() + b.size();
            const std::size_t sent = try_send(*plain, both);
            if (sent == total) co_return io_result{error_code(), total};
            both[0] += std::min(sent, a.size());
            both[1] += sent - std::min(sent, a.size());
            auto [ec, n] = co_await asio::async_write(*plain, both, token);
            co_return io_result{ec, sent + n};
        }
        co_return co_await std::get<tls_socket>(s_).write(both);
    }

    tcp::socket& socket() {
        if (auto* plain = std::get_if<tcp::socket>(&s_)) return *plain;
        return std::get<tls_socket>(s_).next_layer();
    }
    bool is_tls() const { return std::holds_alternative<tls_socket>(s_); }

    // Off this event loop, on the thread that runs it: no operation may be pending. The stream
    // is left closed.
    released_stream release();
    // The connection served from now by the event loop of `ex`, on that loop's thread.
    static stream adopt(released_stream r, const asio::any_io_executor& ex);
    tls_socket& tls() { return std::get<tls_socket>(s_); }

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
    std::variant<tcp::socket, tls_socket> s_;
};

// EOF, and over TLS the truncation of a stream that ended without close_notify.
inline bool is_end_of_stream(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace porthole::net
