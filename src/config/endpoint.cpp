#include "config/endpoint.hpp"

#include <fmt/format.h>

#include <charconv>

namespace porthole::config {
namespace {

tl::expected<std::uint16_t, std::string> parse_port(std::string_view s, bool allow_zero) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v > 65535 ||
        (v == 0 && !allow_zero))
        return tl::unexpected(fmt::format("'{}' is not a port number (1-65535)", s));
    return static_cast<std::uint16_t>(v);
}

}  // namespace

std::string endpoint::to_string() const {
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

std::string port_range::to_string() const { return fmt::format("{}-{}", low, high); }

tl::expected<std::vector<endpoint>, std::string> parse_server_list(std::string_view text) {
    std::vector<endpoint> out;
    for (;;) {
        const auto comma = text.find(',');
        auto one = parse_endpoint(text.substr(0, comma));
        if (!one) return tl::unexpected(one.error());
        if (one->port == 0)
            return tl::unexpected(fmt::format("'{}': the relay's port may not be 0",
                                              text.substr(0, comma)));
        out.push_back(std::move(*one));
        if (comma == std::string_view::npos) return out;
        text.remove_prefix(comma + 1);
    }
}

tl::expected<endpoint, std::string> parse_endpoint(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        return tl::unexpected(fmt::format("'{}' is not HOST:PORT (for example 127.0.0.1:8080)", text));
    std::string_view host = text.substr(0, colon);
    if (host.front() == '[') {
        if (host.size() < 3 || host.back() != ']')
            return tl::unexpected(fmt::format("'{}': an IPv6 host is written [::1]:PORT", text));
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
        return tl::unexpected(fmt::format("'{}': write an IPv6 host in brackets, [::1]:PORT", text));
    }
    auto port = parse_port(text.substr(colon + 1), true);
    if (!port) return tl::unexpected(fmt::format("'{}': {}", text, port.error()));
    return endpoint{std::string(host), *port};
}

tl::expected<port_range, std::string> parse_port_range(std::string_view text) {
    const auto dash = text.find('-');
    if (dash == std::string_view::npos)
        return tl::unexpected(fmt::format("'{}' is not LOW-HIGH (for example 20000-20999)", text));
    auto low = parse_port(text.substr(0, dash), false);
    auto high = parse_port(text.substr(dash + 1), false);
    if (!low) return tl::unexpected(low.error());
    if (!high) return tl::unexpected(high.error());
    if (*low > *high)
        return tl::unexpected(fmt::format("'{}': the low port is above the high port", text));
    return port_range{*low, *high};
}

tl::expected<endpoint, std::string> parse_target(std::string_view text) {
    if (text.starts_with("http://")) {
        text.remove_prefix(7);
        if (text.ends_with('/')) text.remove_suffix(1);
        if (text.empty()) return tl::unexpected(std::string("a target URL needs a host"));
        if (text.find('/') != std::string_view::npos)
            return tl::unexpected(std::string("a target URL may not have a path"));
        if (text.front() == '[' && text.back() == ']')
            return endpoint{std::string(text.substr(1, text.size() - 2)), 80};
        if (text.find(':') == std::string_view::npos) return endpoint{std::string(text), 80};
    } else if (text.find("://") != std::string_view::npos) {
        return tl::unexpected(fmt::format("'{}': only http:// targets are supported", text));
    }
    if (text.find(':') == std::string_view::npos) {
        auto port = parse_port(text, false);
        if (!port) return tl::unexpected(port.error());
        return endpoint{"127.0.0.1", *port};
    }
    auto ep = parse_endpoint(text);
    if (ep && ep->port == 0) return tl::unexpected(std::string("the target port may not be 0"));
    return ep;
}

bool is_loopback_host(std::string_view host) {
    return host == "localhost" || host == "::1" || host.starts_with("127.");
}

}  // namespace porthole::config
