#pragma once
#include <boost/asio/ip/tcp.hpp>

namespace porthole::net {

// An idle socket that has neither hit EOF nor received unexpected bytes: safe to hand out.
inline bool idle_and_open(boost::asio::ip::tcp::socket& s) {
    char byte;
    const auto n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace porthole::net
