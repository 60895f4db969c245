#pragma once
// One scrape of the relay: the counters its loop kept and the gauges read from its parts at
// this moment, written in the Prometheus text format. Nothing here runs per request.
#include "admin/relay_control.hpp"
#include "observe/label_slots.hpp"
#include "observe/process_stats.hpp"
#include "observe/relay_counters.hpp"

#include <array>
#include <optional>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace porthole::relay {

// What a scrape reads from the relay's parts as they are now.
struct relay_gauges {
    std::uint64_t sessions = 0;
    std::uint64_t visitor_connections = 0;
    std::array<std::uint64_t, 3> tunnels{};  // by kind: http, tcp, tls
    std::uint64_t data_pool_idle = 0;
    std::uint64_t data_pool_waiting = 0;
    struct member_health {
        std::string site;  // the site's first host, or a tcp site's listening address
        std::string member;  // the member's URL as configured
        bool healthy = false;
    };
    std::vector<member_health> upstream;
    struct certificate {
        std::string name;
        double not_after = 0;  // seconds since the epoch
    };
    std::vector<certificate> certificates;
    std::uint64_t admin_auth_failures = 0;  // TCP admin requests without the right token
    // ACME orders by result: issued, renewed, failed, over_budget; written when ACME is on.
    std::optional<std::array<std::uint64_t, 4>> acme_orders{};
    std::vector<admin::cache_info> caches{};  // every site's and the tunnels' cache
    // In a cluster: whether Redis is unreachable, registry lookups, visitors carried over the
    // link to another relay and from one, link connections refused.
    struct cluster_state {
        bool degraded = false;
        std::uint64_t lookups = 0;
        std::uint64_t events = 0;
        std::uint64_t carried_out = 0;
        std::uint64_t carried_in = 0;
        std::uint64_t link_refused = 0;
    };
    std::optional<cluster_state> cluster{};
};

// `site_labels[i]`: site i's label (its first host).
std::string write_metrics(const observe::relay_counters& counters,
                          const observe::label_slots& tunnel_labels,
                          std::span<const std::string> site_labels, const relay_gauges& gauges,
                          const observe::process_stats& process, std::uint64_t log_dropped);

}  // namespace porthole::relay
