#pragma once
// The plain integers one event loop counts as requests finish: requests by label slot and status
// class, request durations, bytes, refusals by reason. Only that loop's thread writes them, so no
// atomics; a scrape reads them (and with several loops, sums their copies). Pure.
#include "net/traffic.hpp"
#include "observe/label_slots.hpp"
#include "observe/request_counts.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace porthole::observe {

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

struct relay_counters {
    explicit relay_counters(std::uint32_t tunnel_slots, std::size_t sites)
        : tunnels(tunnel_slots), sites(sites) {}

    std::vector<request_counts> tunnels;  // by the tunnel label's slot, _other last
    std::vector<request_counts> sites;    // by site, in config order
    request_counts unrouted;              // refused before a route was found
    std::uint64_t bytes_in = 0;           // from visitors, of HTTP exchanges
    std::uint64_t bytes_out = 0;          // to visitors
    // Of connections carried as bytes (TCP tunnels and sites, TLS passthrough, WebSockets and
    // other upgrades), added by the pump once per system call while they run.
    net::traffic carried{};
    std::array<std::uint64_t, refusal_names.size()> refusals{};
    std::array<std::uint64_t, upstream_failure_names.size()> upstream_failures{};
    std::uint64_t reconnects = 0;
    std::uint64_t reloads_ok = 0, reloads_refused = 0;
    std::uint64_t access_log_dropped = 0;
    // threads > 1: visitor connections a worker handed to the first loop, tunnel data
    // connections the first loop handed to a worker, and TCP connections (both ends) the first
    // loop handed to another loop to pump.
    std::uint64_t visitors_handed = 0;
    std::uint64_t data_handed = 0;
    std::uint64_t pumps_handed = 0;

    void refused(refusal r) { ++refusals[static_cast<std::size_t>(r)]; }
    // Another event loop's counts added to these (its sites in the same config order).
    void add(const relay_counters& o) {
        for (std::size_t i = 0; i < std::min(tunnels.size(), o.tunnels.size()); ++i)
            tunnels[i].add(o.tunnels[i]);
        for (std::size_t i = 0; i < std::min(sites.size(), o.sites.size()); ++i)
            sites[i].add(o.sites[i]);
        unrouted.add(o.unrouted);
        bytes_in += o.bytes_in;
        bytes_out += o.bytes_out;
        carried.in += o.carried.in;
        carried.out += o.carried.out;
        for (std::size_t i = 0; i < refusals.size(); ++i) refusals[i] += o.refusals[i];
        for (std::size_t i = 0; i < upstream_failures.size(); ++i)
            upstream_failures[i] += o.upstream_failures[i];
        visitors_handed += o.visitors_handed;
        data_handed += o.data_handed;
        pumps_handed += o.pumps_handed;
    }
    void failed(upstream_failure f) { ++upstream_failures[static_cast<std::size_t>(f)]; }
};

}  // namespace porthole::observe
