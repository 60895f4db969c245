#pragma once
// An outbound TCP connection with a deadline: resolves names (IP literals skip the resolver),
// tries each address, sets TCP_NODELAY.
#include "config/endpoint.hpp"
#include "net/stream.hpp"

#include <tl/expected.hpp>

#include <chrono>
#include <span>
#include <string>

namespace porthole::net {

// Errors are short and readable: "timed out", "Connection refused", "cannot resolve HOST: ...".
asio::awaitable<tl::expected<tcp::socket, std::string>> connect(const config::endpoint& to,
                                                                std::chrono::seconds timeout);
// To addresses already resolved, tried in order.
asio::awaitable<tl::expected<tcp::socket, std::string>> connect(
    std::span<const tcp::endpoint> endpoints, std::chrono::seconds timeout);

}  // namespace porthole::net
