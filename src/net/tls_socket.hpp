#pragma once
// TLS straight on a non-blocking socket: OpenSSL reads and writes the descriptor itself, and the
// event loop is entered only when it would block. A record written is sent by the call that
// encrypts it, and a record that has arrived is decrypted by the call that asks for it, with no
// copy through a memory BIO and no round through the event loop per operation (what
// asio::ssl::stream costs on every read and every write).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <openssl/ssl.h>

#include <memory>
#include <span>
#include <tuple>

namespace porthole::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using io_result = std::tuple<error_code, std::size_t>;

class tls_socket {
public:
    enum class role { client, server };

    tls_socket(tcp::socket socket, asio::ssl::context& context);
    // A connection whose TLS state another event loop began (stream::released): `ssl` is now
    // this socket's, already bound to `socket`'s descriptor.
    tls_socket(tcp::socket socket, SSL* ssl) : socket_(std::move(socket)), ssl_(ssl) {}

    // The handshake; errors are OpenSSL's (asio::error::get_ssl_category()) or the socket's.
    asio::awaitable<error_code> handshake(role r);
    // Some bytes: at once when OpenSSL holds decrypted ones or a record is in the kernel.
    // End of stream (close_notify, or a bare TCP FIN) is asio::error::eof; writing stays
    // possible after it.
    asio::awaitable<io_result> read_some(asio::mutable_buffer b);
    // The same without waiting: asio::error::would_block when nothing can be read yet.
    io_result try_read_some(asio::mutable_buffer b);
    // All of `bufs`; small buffers are joined first so they leave as one record.
    asio::awaitable<io_result> write(std::span<const asio::const_buffer> bufs);

    // Decrypted bytes, or bytes of a record, held by OpenSSL rather than the kernel.
    bool has_pending() const { return SSL_has_pending(ssl_.get()) == 1; }

    SSL* native_handle() { return ssl_.get(); }
    // Gives up the TLS state to the caller (who frees it, or hands it to another tls_socket).
    SSL* release_ssl() { return ssl_.release(); }
    tcp::socket& next_layer() { return socket_; }

private:
    struct ssl_free {
        void operator()(SSL* s) const { SSL_free(s); }
    };
    // What an SSL_* call that returned `ret` means: nothing to do (0), wait to read (1), wait to
    // write (2), or the error in `ec`.
    int classify(int ret, error_code& ec);
    int read_step(asio::mutable_buffer b, io_result& r);  // classify()'s answer, result in r
    asio::awaitable<io_result> write_some(const void* data, std::size_t size);

    tcp::socket socket_;
    std::unique_ptr<SSL, ssl_free> ssl_;
};

}  // namespace porthole::net
