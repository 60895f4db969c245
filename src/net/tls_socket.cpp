#include "net/tls_socket.hpp"

#include "core/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/err.h>

#include <cerrno>
#include <new>
#include <string>

namespace porthole::net {
namespace {

constexpr int ready = 0, want_read = 1, want_write = 2;
// OpenSSL keeps the descriptor's number, so once the socket is closed (and the number possibly
// reused by another connection) no call reaches OpenSSL again.
// Every SSL_* call below starts with ERR_clear_error(): SSL_get_error() takes any error left in
// the thread's queue, from any connection or from loading a certificate, as this call's failure.
// Buffers up to this size together are joined and written as one record.
constexpr std::size_t join_limit = 16 * 1024;

}  // namespace

tls_socket::tls_socket(tcp::socket socket, asio::ssl::context& context)
    : socket_(std::move(socket)), ssl_(SSL_new(context.native_handle())) {
    if (!ssl_ || SSL_set_fd(ssl_.get(), socket_.native_handle()) != 1) throw std::bad_alloc();
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Read what the kernel holds in one call, not a record header and then its body.
    SSL_set_read_ahead(ssl_.get(), 1);
    // A TCP FIN without close_notify is the end of stream (the half-close porthole forwards).
    // Without this, OpenSSL takes it as a fatal error and refuses the writes the other direction
    // still has to make.
    SSL_set_options(ssl_.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    error_code ignored;
    socket_.non_blocking(true, ignored);
}

int tls_socket::classify(int ret, error_code& ec) {
    const int saved_errno = errno;
    switch (SSL_get_error(ssl_.get(), ret)) {
    case SSL_ERROR_WANT_READ: return want_read;
    case SSL_ERROR_WANT_WRITE: return want_write;
    case SSL_ERROR_ZERO_RETURN: ec = asio::error::eof; break;
    case SSL_ERROR_SYSCALL:
        // No errno: the peer closed TCP without close_notify.
        ec = saved_errno != 0 ? error_code(saved_errno, asio::error::get_system_category())
                              : error_code(asio::ssl::error::stream_truncated);
        break;
    case SSL_ERROR_SSL:
        ec = error_code(static_cast<int>(ERR_peek_error()), asio::error::get_ssl_category());
        break;
    default: ec = asio::error::fault; break;
    }
    ERR_clear_error();
    return ready;
}

asio::awaitable<error_code> tls_socket::handshake(role r) {
    if (r == role::client)
        SSL_set_connect_state(ssl_.get());
    else
        SSL_set_accept_state(ssl_.get());
    for (;;) {
        if (!socket_.is_open()) co_return error_code(asio::error::bad_descriptor);
        ERR_clear_error();
        const int ret = SSL_do_handshake(ssl_.get());
        if (ret == 1) co_return error_code();
        error_code ec;
        const int what = classify(ret, ec);
        if (what == ready) co_return ec;
        auto [wait_ec] = co_await socket_.async_wait(
            what == want_read ? tcp::socket::wait_read : tcp::socket::wait_write, use_tuple);
        if (wait_ec) co_return wait_ec;
    }
}

int tls_socket::read_step(asio::mutable_buffer b, io_result& r) {
    if (!socket_.is_open()) {
        r = io_result{asio::error::bad_descriptor, 0};
        return ready;
    }
    std::size_t n = 0;
    ERR_clear_error();
    const int ret = b.size() == 0 ? 1 : SSL_read_ex(ssl_.get(), b.data(), b.size(), &n);
    if (ret == 1) {
        r = io_result{error_code(), n};
        return ready;
    }
    error_code ec;
    const int what = classify(ret, ec);
    r = io_result{ec, 0};
    return what;
}

io_result tls_socket::try_read_some(asio::mutable_buffer b) {
    io_result r;
    if (read_step(b, r) != ready) return io_result{asio::error::would_block, 0};
    return r;
}

asio::awaitable<io_result> tls_socket::read_some(asio::mutable_buffer b) {
    for (;;) {
        io_result r;
        const int what = read_step(b, r);
        if (what == ready) co_return r;
        // A read may have to write first (a TLS 1.3 key update).
        auto [wait_ec] = co_await socket_.async_wait(
            what == want_read ? tcp::socket::wait_read : tcp::socket::wait_write, use_tuple);
        if (wait_ec) co_return io_result{wait_ec, 0};
    }
}

asio::awaitable<io_result> tls_socket::write_some(const void* data, std::size_t size) {
    for (;;) {
        if (!socket_.is_open()) co_return io_result{asio::error::bad_descriptor, 0};
        std::size_t n = 0;
        ERR_clear_error();
        const int ret = SSL_write_ex(ssl_.get(), data, size, &n);
        if (ret == 1) co_return io_result{error_code(), n};
        error_code ec;
        const int what = classify(ret, ec);
        if (what == ready) co_return io_result{ec, 0};
        auto [wait_ec] = co_await socket_.async_wait(
            what == want_read ? tcp::socket::wait_read : tcp::socket::wait_write, use_tuple);
        if (wait_ec) co_return io_result{wait_ec, 0};
    }
}

asio::awaitable<io_result> tls_socket::write(std::span<const asio::const_buffer> bufs) {
    std::size_t total = 0, parts = 0;
    for (const auto& b : bufs) {
        total += b.size();
        parts += b.size() != 0 ? 1 : 0;
    }
    std::string joined;
    if (parts > 1 && total <= join_limit) {
        joined.reserve(total);
        for (const auto& b : bufs) joined.append(static_cast<const char*>(b.data()), b.size());
    }
    const asio::const_buffer whole(joined.data(), joined.size());
    const auto todo = joined.empty() ? bufs : std::span<const asio::const_buffer>(&whole, 1);
    std::size_t done = 0;
    for (const auto& b : todo) {
        for (std::size_t at = 0; at < b.size();) {
            auto [ec, n] = co_await write_some(static_cast<const char*>(b.data()) + at,
                                               b.size() - at);
            at += n;
            done += n;
            if (ec) co_return io_result{ec, done};
        }
    }
    co_return io_result{error_code(), done};
}

}  // namespace porthole::net
