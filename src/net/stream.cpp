#include "net/stream.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

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

}  // namespace porthole::net
