#pragma once
// Connections to backends: http:// and tcp:// over TCP, https:// over TLS verified against the
// system store or the route's ca_file (with SNI), unix: sockets. Each comes back as a net::stream,
// the same type a tunnel's data connection is, so what forwards over it does not care which.
#include "config/site_config.hpp"
#include "net/stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <tl/expected.hpp>

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace porthole::upstream {

// The TLS settings of one route's https members, made once when the config loads.
struct backend_tls {
    std::string ca_file;  // empty: the system store
    std::shared_ptr<boost::asio::ssl::context> context;
};
tl::expected<backend_tls, std::string> make_backend_tls(const std::string& ca_file);

// The addresses of a backend member, resolved once, when the config loads (blocking): the relay
// runs no resolver thread, and a name that does not resolve is a config error, as in nginx.
// Empty for unix: and tunnel: members.
tl::expected<std::vector<boost::asio::ip::tcp::endpoint>, std::string> resolve_member(
    const config::upstream_member& m);

// Errors are short: "timed out", "Connection refused", "certificate verify failed".
boost::asio::awaitable<tl::expected<net::stream, std::string>> connect_backend(
    const config::upstream_member& m, std::span<const boost::asio::ip::tcp::endpoint> addresses,
    std::chrono::milliseconds timeout, backend_tls* tls);

}  // namespace porthole::upstream
