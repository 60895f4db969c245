#include "relay/relay_metrics.hpp"

#include "observe/prom_text.hpp"

namespace porthole::relay {

using observe::label;

std::string write_metrics(const observe::relay_counters& counters,
                          const observe::label_slots& tunnel_labels,
                          std::span<const std::string> site_labels, const relay_gauges& gauges,
                          const observe::process_stats& process, std::uint64_t log_dropped) {
    observe::prom_text out;
    const auto& classes = observe::code_classes;

    out.family("porthole_requests_total", "counter",
               "HTTP requests through the relay, by tunnel or site and status class (none: no "
               "response was sent).");
    for (std::uint32_t slot = 0; slot < counters.tunnels.size(); ++slot) {
        const std::string_view name = tunnel_labels.name(slot);
        if (name.empty()) continue;  // a free slot
        // Every class of a held name, zeros too: a series that appears at its first request
        // would hide that request from increase() and rate().
        for (std::size_t c = 0; c < classes.size(); ++c)
            out.sample("porthole_requests_total", {{"tunnel", name}, {"code_class", classes[c]}},
                       counters.tunnels[slot].by_class[c]);
    }
    for (std::size_t i = 0; i < counters.sites.size() && i < site_labels.size(); ++i)
        for (std::size_t c = 0; c < classes.size(); ++c)
            out.sample("porthole_requests_total",
                       {{"site", site_labels[i]}, {"code_class", classes[c]}},
                       counters.sites[i].by_class[c]);
    for (std::size_t c = 0; c < classes.size(); ++c)
        out.sample("porthole_requests_total", {{"route", "none"}, {"code_class", classes[c]}},
                   counters.unrouted.by_class[c]);

    out.family("porthole_request_duration_seconds", "histogram",
               "From a request's first byte to its response's last, by kind (tunnel, site, none: "
               "refused before routing).");
    const auto histogram = [&](std::initializer_list<label> labels,
                               const observe::duration_histogram& h) {
        out.histogram("porthole_request_duration_seconds", labels, observe::duration_bounds,
                      h.counts, static_cast<double>(h.sum_us) / 1e6);
    };
    observe::duration_histogram tunnels;
    for (const auto& t : counters.tunnels) {
        for (std::size_t i = 0; i < tunnels.counts.size(); ++i) tunnels.counts[i] += t.duration.counts[i];
        tunnels.sum_us += t.duration.sum_us;
    }
    histogram({{"kind", "tunnel"}}, tunnels);
    for (std::size_t i = 0; i < counters.sites.size() && i < site_labels.size(); ++i)
        histogram({{"kind", "site"}, {"site", site_labels[i]}}, counters.sites[i].duration);
    histogram({{"kind", "none"}}, counters.unrouted.duration);

    out.family("porthole_bytes_total", "counter",
               "Bytes of HTTP requests and responses on visitors' connections (in: from "
               "visitors), before TLS.");
    out.sample("porthole_bytes_total", {{"direction", "in"}},
               counters.bytes_in + counters.carried.in);
    out.sample("porthole_bytes_total", {{"direction", "out"}},
               counters.bytes_out + counters.carried.out);

    out.family("porthole_refusals_total", "counter",
               "Requests and connections the relay refused or answered itself, by reason.");
    for (std::size_t i = 0; i < observe::refusal_names.size(); ++i)
        out.sample("porthole_refusals_total", {{"reason", observe::refusal_names[i]}},
                   counters.refusals[i]);

    out.family("porthole_upstream_failures_total", "counter",
               "Requests answered 502 or 504 because the upstream failed, by how.");
    for (std::size_t i = 0; i < observe::upstream_failure_names.size(); ++i)
        out.sample("porthole_upstream_failures_total",
                   {{"reason", observe::upstream_failure_names[i]}},
                   counters.upstream_failures[i]);

    out.family("porthole_loop_handovers_total", "counter",
               "Connections moved between event loops (threads > 1): visitor, one a worker "
               "loop handed to the first; data, a tunnel's data connection the first loop "
               "handed to a worker; pump, a TCP connection the first loop accepted and "
               "connected, handed to another loop to carry.");
    out.sample("porthole_loop_handovers_total", {{"what", "visitor"}}, counters.visitors_handed);
    out.sample("porthole_loop_handovers_total", {{"what", "data"}}, counters.data_handed);
    out.sample("porthole_loop_handovers_total", {{"what", "pump"}}, counters.pumps_handed);

    out.family("porthole_reconnects_total", "counter",
               "Client sessions that took back names or ports a lease or an older session held.");
    out.sample("porthole_reconnects_total", {}, counters.reconnects);

    out.family("porthole_admin_auth_failures_total", "counter",
               "Requests to the TCP admin listener refused for a missing or wrong token.");
    out.sample("porthole_admin_auth_failures_total", {}, gauges.admin_auth_failures);

    if (gauges.cluster) {
        const auto& c = *gauges.cluster;
        out.family("porthole_cluster_degraded", "gauge",
                   "1 while this relay cannot reach the cluster's Redis: it serves what it holds "
                   "and takes new tunnels locally.");
        out.sample("porthole_cluster_degraded", {}, std::uint64_t{c.degraded ? 1u : 0u});
        out.family("porthole_cluster_lookups_total", "counter",
                   "Questions to Redis about a name another relay may hold.");
        out.sample("porthole_cluster_lookups_total", {}, c.lookups);
        out.family("porthole_cluster_events_total", "counter",
                   "Changes heard on the cluster's channel (a name or port claimed or released "
                   "through any relay, a relay's TCP ports).");
        out.sample("porthole_cluster_events_total", {}, c.events);
        out.family("porthole_cluster_carried_total", "counter",
                   "Visitor connections carried over the inter-relay link: out (to the relay "
                   "holding the tunnel) and in (from another relay).");
        out.sample("porthole_cluster_carried_total", {{"direction", "out"}}, c.carried_out);
        out.sample("porthole_cluster_carried_total", {{"direction", "in"}}, c.carried_in);
        out.family("porthole_cluster_link_refused_total", "counter",
                   "Link connections refused: no cluster secret, or no handshake in time.");
        out.sample("porthole_cluster_link_refused_total", {}, c.link_refused);
    }

    if (gauges.acme_orders) {
        out.family("porthole_acme_orders_total", "counter",
                   "ACME certificate orders by result: issued (a name's first), renewed, failed, "
                   "over_budget (refused to stay within the CA's rate limits).");
        const char* results[] = {"issued", "renewed", "failed", "over_budget"};
        for (std::size_t i = 0; i < 4; ++i)
            out.sample("porthole_acme_orders_total", {{"result", results[i]}},
                       (*gauges.acme_orders)[i]);
    }

    if (!gauges.caches.empty()) {
        out.family("porthole_cache_requests_total", "counter",
                   "Requests a cache saw, by result: hit (fresh), stale (served stale: max-stale, "
                   "stale-if-error, stale-while-revalidate), revalidated (a 304 renewed it), miss "
                   "(went upstream), collapsed (waited for another's miss).");
        for (const auto& c : gauges.caches) {
            const std::pair<const char*, std::uint64_t> results[] = {
                {"hit", c.hits},
                {"stale", c.stale},
                {"revalidated", c.revalidated},
                {"miss", c.misses},
                {"collapsed", c.collapsed}};
            for (const auto& [result, n] : results)
                out.sample("porthole_cache_requests_total", {{"cache", c.name}, {"result", result}},
                           n);
        }
        out.family("porthole_cache_stored_bytes", "gauge",
                   "Bytes of responses a cache holds now, against its memory budget.");
        for (const auto& c : gauges.caches)
            out.sample("porthole_cache_stored_bytes", {{"cache", c.name}}, c.bytes);
        out.family("porthole_cache_entries", "gauge", "Responses a cache holds now.");
        for (const auto& c : gauges.caches)
            out.sample("porthole_cache_entries", {{"cache", c.name}}, c.entries);
        if (std::any_of(gauges.caches.begin(), gauges.caches.end(),
                        [](const admin::cache_info& c) { return c.disk_size > 0; })) {
            struct disk_family {
                const char* name;
                const char* type;
                const char* help;
                std::uint64_t (*value)(const admin::cache_info&);
            };
            const disk_family families[] = {
                {"porthole_cache_disk_bytes", "gauge",
                 "Bytes of files a cache's disk tier holds now, against its size.",
                 [](const admin::cache_info& c) -> std::uint64_t { return c.disk_bytes; }},
                {"porthole_cache_disk_entries", "gauge", "Responses a cache's disk tier holds now.",
                 [](const admin::cache_info& c) -> std::uint64_t { return c.disk_entries; }},
                {"porthole_cache_disk_reads_total", "counter",
                 "Responses read back from a cache's disk tier (memory had let them go).",
                 [](const admin::cache_info& c) -> std::uint64_t { return c.disk_reads; }}};
            for (const auto& f : families) {
                out.family(f.name, f.type, f.help);
                for (const auto& c : gauges.caches)
                    if (c.disk_size > 0) out.sample(f.name, {{"cache", c.name}}, f.value(c));
            }
            out.family("porthole_cache_disk_errors_total", "counter",
                       "Disk tier problems, by kind: corrupt (a file that failed its checks, "
                       "dropped), write (a failed write; the tier is off for a minute).");
            for (const auto& c : gauges.caches) {
                if (c.disk_size == 0) continue;
                out.sample("porthole_cache_disk_errors_total",
                           {{"cache", c.name}, {"kind", "corrupt"}}, c.disk_corrupt);
                out.sample("porthole_cache_disk_errors_total",
                           {{"cache", c.name}, {"kind", "write"}}, c.disk_failed);
            }
        }
    }

    out.family("porthole_config_reloads_total", "counter",
               "Config reloads (SIGHUP, porthole admin reload), by result.");
    out.sample("porthole_config_reloads_total", {{"result", "ok"}}, counters.reloads_ok);
    out.sample("porthole_config_reloads_total", {{"result", "refused"}},
               counters.reloads_refused);

    out.family("porthole_access_log_dropped_lines_total", "counter",
               "Access log lines dropped because the disk fell 8 MiB behind.");
    out.sample("porthole_access_log_dropped_lines_total", {}, log_dropped);

    out.family("porthole_visitor_connections", "gauge", "Visitor connections open now.");
    out.sample("porthole_visitor_connections", {}, gauges.visitor_connections);
    out.family("porthole_sessions", "gauge", "Client sessions connected now.");
    out.sample("porthole_sessions", {}, gauges.sessions);
    out.family("porthole_tunnels", "gauge", "Tunnels open now, by kind.");
    static constexpr std::array<std::string_view, 3> kinds{"http", "tcp", "tls"};
    for (std::size_t i = 0; i < kinds.size(); ++i)
        out.sample("porthole_tunnels", {{"kind", kinds[i]}}, gauges.tunnels[i]);
    out.family("porthole_data_pool_connections", "gauge",
               "Idle data connections clients hold open for visitors.");
    out.sample("porthole_data_pool_connections", {}, gauges.data_pool_idle);
    out.family("porthole_data_pool_waiting_visitors", "gauge",
               "Visitors waiting for a client's data connection.");
    out.sample("porthole_data_pool_waiting_visitors", {}, gauges.data_pool_waiting);
    if (!gauges.upstream.empty()) {
        out.family("porthole_upstream_healthy", "gauge",
                   "1 when a site's member takes requests (healthy, not ejected), else 0.");
        for (const auto& m : gauges.upstream)
            out.sample("porthole_upstream_healthy", {{"site", m.site}, {"member", m.member}},
                       std::uint64_t{m.healthy ? 1u : 0u});
    }
    if (!gauges.certificates.empty()) {
        out.family("porthole_cert_expiry_timestamp_seconds", "gauge",
                   "When each certificate the relay serves expires.");
        for (const auto& c : gauges.certificates)
            out.sample("porthole_cert_expiry_timestamp_seconds", {{"name", c.name}}, c.not_after);
    }
    observe::write_process_metrics(out, process);
    return out.take();
}

}  // namespace porthole::relay
