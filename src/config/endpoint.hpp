#pragma once
// Addresses as users type them: "127.0.0.1:8080", "[::1]:7835", "3000", "http://host:port".
#include <tl/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::config {

struct endpoint {
    std::string host;
    std::uint16_t port = 0;

    std::string to_string() const;  // brackets IPv6 literals
    bool operator==(const endpoint&) const = default;
};

struct port_range {
    std::uint16_t low = 0;
    std::uint16_t high = 0;

    bool contains(std::uint16_t p) const { return p >= low && p <= high; }
    std::string to_string() const;
};

// HOST:PORT with a numeric port (0 allowed: the system picks one).
tl::expected<endpoint, std::string> parse_endpoint(std::string_view text);
// LOW-HIGH, both 1..65535, LOW <= HIGH.
tl::expected<port_range, std::string> parse_port_range(std::string_view text);
// A client target: PORT (on 127.0.0.1), HOST:PORT or http://HOST[:PORT].
tl::expected<endpoint, std::string> parse_target(std::string_view text);

// Relays to try in turn: HOST:PORT[,HOST:PORT...]; no port may be 0.
tl::expected<std::vector<endpoint>, std::string> parse_server_list(std::string_view text);

bool is_loopback_host(std::string_view host);

}  // namespace porthole::config
