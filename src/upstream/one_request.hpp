#pragma once
// One request on a connection of its own (Connection: close) to a backend-like origin, and its
// whole answer: for the relay's own small clients, a JWK Set fetch and the ACME client.
#include "config/site_config.hpp"
#include "http/whole_response.hpp"
#include "upstream/backend_connect.hpp"

#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

#include <span>
#include <string>

namespace porthole::upstream {

struct one_request_spec {
    std::string method = "GET";
    std::string target = "/";
    std::string headers{};  // extra "Name: value\r\n" lines (Accept, Content-Type...)
    std::string body{};     // sent with Content-Length when not empty or when method is POST
    std::size_t max_body = 1024 * 1024;
};

// Errors are short: "timed out" (connect), "Connection refused", "the answer is over N bytes".
// The caller bounds the whole exchange (net::within).
boost::asio::awaitable<tl::expected<http::whole_response, std::string>> one_request(
    const config::upstream_member& origin,
    std::span<const boost::asio::ip::tcp::endpoint> addresses, backend_tls* tls,
    const one_request_spec& spec, std::chrono::milliseconds connect_timeout);

}  // namespace porthole::upstream
