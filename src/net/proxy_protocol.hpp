#pragma once
// The HAProxy PROXY protocol, versions 1 (text) and 2 (binary): the header a proxy puts before a
// connection's bytes to say whose connection it is. Pure: bytes in, verdict out; no sockets.
// Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace porthole::net {

// The longest v1 line, CRLF included (spec 2.1).
inline constexpr std::size_t proxy_v1_max_size = 107;
// v2 allows 65535 bytes of addresses and TLVs; nobody sends more than a few hundred.
inline constexpr std::size_t proxy_v2_max_length = 4096;
// Enough buffer for any header parse_proxy_header accepts.
inline constexpr std::size_t proxy_header_max_size = 16 + proxy_v2_max_length;

struct proxy_header {
    // v2 LOCAL, v1 UNKNOWN, or a v2 family we don't carry (AF_UNSPEC, AF_UNIX, UDP): the sender
    // gave no usable addresses and the connection's own endpoints stand; source and destination
    // are then left default.
    bool local = false;
    boost::asio::ip::tcp::endpoint source{}, destination{};
    std::size_t size = 0;  // bytes the header took; the connection's data starts after them
};

enum class proxy_parse { need_more, done, invalid };

// Reads a v1 or v2 header at the start of `bytes` (what arrived so far; bytes after the header
// are left alone). `out` is written only on done, `error` only on invalid, with a short reason
// such as "PROXY v1: bad source address". A v2 header's TLVs are skipped unread. Allocates
// nothing but the error.
proxy_parse parse_proxy_header(std::string_view bytes, proxy_header& out, std::string& error);

// Headers for a connection from `src` to `dst`. An IPv4-mapped IPv6 address (what a dual-stack
// listener reports for an IPv4 peer) is written as the IPv4 address it carries; if the two still
// differ in family, both go as IPv6 with the IPv4 one mapped (TCP6, AF_INET6).
std::string proxy_v1_header(const boost::asio::ip::tcp::endpoint& src,
                            const boost::asio::ip::tcp::endpoint& dst);
std::string proxy_v2_header(const boost::asio::ip::tcp::endpoint& src,
                            const boost::asio::ip::tcp::endpoint& dst);

// The header that says "no addresses: the sender's own connection" (v1 UNKNOWN, v2 LOCAL), as a
// health check sends it to a backend that expects a PROXY header. `version`: 1 or 2.
std::string_view proxy_local_header(int version);

}  // namespace porthole::net
