#pragma once
// The plain integers one event loop counts as requests finish: requests by label slot and status
// class, request durations, bytes, refusals by reason. Only that loop's thread writes them, so no
// atomics; a scrape reads them (and with several loops, sums their copies). Pure.
#include "observe/label_slots.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace porthole::observe {

// Status classes: "none" (no response was sent), then 1xx to 5xx.
inline constexpr std::array<std::string_view, 6> code_classes{"none", "1xx", "2xx",
                                                              "3xx",  "4xx", "5xx"};
inline std::size_t code_class(unsigned status) {
    return status >= 100 && status < 600 ? status / 100 : 0;
}

// Request duration buckets, seconds: a loopback hop lands in the first, a WAN round trip in the
// middle, uploads and long polls at the top.
inline constexpr std::array<double, 14> duration_bounds{0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05,  0.1,    0.25,  0.5,  1,
                                                        2.5,   5,      10,    30};

struct duration_histogram {
    std::array<std::uint64_t, duration_bounds.size() + 1> counts{};
    std::uint64_t sum_us = 0;  // the sum in whole microseconds, printed as seconds

    void add(std::chrono::microseconds d) {
        const double seconds = static_cast<double>(d.count()) / 1e6;
        std::size_t i = 0;
        while (i < duration_bounds.size() && seconds > duration_bounds[i]) ++i;
        ++counts[i];
        sum_us += static_cast<std::uint64_t>(d.count());
    }
    std::uint64_t count() const {
        std::uint64_t n = 0;
        for (auto c : counts) n += c;
        return n;
    }
};

// Why the relay refused or answered a request, or a connection, itself. A fixed list: the
// label values of porthole_refusals_total.
enum class refusal : std::uint8_t {
    // a policy step answered with 4xx or 5xx
    ip_allow, ip_deny, basic_auth, jwt, rate_limit, max_body, verify_webhook, respond,
    // limits
    connections_per_ip, connections_per_tunnel, new_connections_per_tunnel, pending_streams,
    // the request
    bad_request, header_too_large, header_timeout, body_too_large,
    // routing
    unknown_host, no_tunnel, no_route,
    count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(refusal::count_)>
    refusal_names{"ip_allow",       "ip_deny",        "basic_auth",
                  "jwt",            "rate_limit",     "max_body",
                  "verify_webhook", "respond",        "connections_per_ip",
                  "connections_per_tunnel", "new_connections_per_tunnel", "pending_streams",
                  "bad_request",    "header_too_large", "header_timeout",
                  "body_too_large", "unknown_host",   "no_tunnel",
                  "no_route"};
inline std::string_view name_of(refusal r) { return refusal_names[static_cast<std::size_t>(r)]; }
// The refusal a policy type names; nullopt for a type that never refuses (headers, compress...).
inline std::optional<refusal> policy_refusal(std::string_view type) {
    for (std::size_t i = 0; i <= static_cast<std::size_t>(refusal::respond); ++i)
        if (refusal_names[i] == type) return static_cast<refusal>(i);
    return std::nullopt;
}

// Upstream failures behind a 502 or 504.
enum class upstream_failure : std::uint8_t { connect, no_response, timeout, malformed, count_ };
inline constexpr std::array<std::string_view, 4> upstream_failure_names{"connect", "no_response",
                                                                        "timeout", "malformed"};

struct request_counts {
    std::array<std::uint64_t, code_classes.size()> by_class{};
    duration_histogram duration;
};

struct relay_counters {
    explicit relay_counters(std::uint32_t tunnel_slots, std::size_t sites)
        : tunnels(tunnel_slots), sites(sites) {}

    std::vector<request_counts> tunnels;  // by the tunnel label's slot, _other last
    std::vector<request_counts> sites;    // by site, in config order
    request_counts unrouted;              // refused before a route was found
    std::uint64_t bytes_in = 0;           // from visitors
    std::uint64_t bytes_out = 0;          // to visitors
    std::array<std::uint64_t, refusal_names.size()> refusals{};
    std::array<std::uint64_t, upstream_failure_names.size()> upstream_failures{};
    std::uint64_t reconnects = 0;
    std::uint64_t reloads_ok = 0, reloads_refused = 0;
    std::uint64_t access_log_dropped = 0;

    void refused(refusal r) { ++refusals[static_cast<std::size_t>(r)]; }
    void failed(upstream_failure f) { ++upstream_failures[static_cast<std::size_t>(f)]; }
};

}  // namespace porthole::observe
