#include "net/stream.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace porthole::net {

std::size_t try_send(tcp::socket& s, std::span<const asio::const_buffer> bufs) {
    std::array<iovec, 4> iov{};
    msghdr msg{};
    for (const auto& b : bufs) {
        if (b.size() == 0) continue;
        if (msg.msg_iovlen == iov.size()) break;
        iov[msg.msg_iovlen++] = {const_cast<void*>(b.data()), b.size()};
    }
    if (msg.msg_iovlen == 0) return 0;
    msg.msg_iov = iov.data();
    const ssize_t n = ::sendmsg(s.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

released_stream::~released_stream() {
    if (ssl) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
}

released_stream stream::release() {
    tcp::socket& s = socket();
    if (!s.is_open()) return {};
    error_code ec;
    const bool v6 = s.local_endpoint(ec).protocol() == tcp::v6();
    SSL* ssl = is_tls() ? tls().release_ssl() : nullptr;
    const int fd = s.release(ec);
    if (ec) {
        if (ssl) SSL_free(ssl);
        s.close(ec);
        return {};
    }
    return released_stream(fd, v6, ssl);
}

stream stream::adopt(released_stream r, const asio::any_io_executor& ex) {
    tcp::socket s(ex);
    error_code ec;
    if (r.fd >= 0) {
        s.assign(r.v6 ? tcp::v6() : tcp::v4(), r.fd, ec);
        if (!ec) r.fd = -1;  // the socket's now
    }
    if (!r.ssl) return stream(std::move(s));
    return stream(tls_socket(std::move(s), std::exchange(r.ssl, nullptr)));
}

}  // namespace porthole::net
