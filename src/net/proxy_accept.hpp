#pragma once
// The PROXY protocol header on an accepted connection (net/proxy_protocol.hpp parses it): peeked
// until whole, then exactly its bytes taken, so what follows stays in the socket for whoever
// reads next (the HTTP exchange, a TLS handshake, a pump).
#include "net/proxy_protocol.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <tl/expected.hpp>

#include <chrono>
#include <string>

namespace porthole::net {

// The header, or why there is none: "no PROXY header in time", "closed", or the parser's reason.
// A LOCAL header (a balancer's own health check) has the socket's own endpoints filled in.
boost::asio::awaitable<tl::expected<proxy_header, std::string>> read_proxy_header(
    boost::asio::ip::tcp::socket& socket, std::chrono::steady_clock::time_point deadline);

}  // namespace porthole::net
