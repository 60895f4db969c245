#include "client/client_metrics.hpp"

#include "observe/prom_text.hpp"

#include <algorithm>

namespace porthole::client {

using observe::label;

local_failure local_failure_of(std::string_view error) {
    if (error == "timed out") return local_failure::timeout;
    if (error.find("refused") != std::string_view::npos) return local_failure::refused;
    return local_failure::other;
}

std::string write_metrics(const session_counters& session, const client_gauges& gauges,
                          const observe::process_stats& process) {
    observe::prom_text out;
    const auto& classes = observe::code_classes;
    const auto http = [](const client_gauges::tunnel& t) { return t.kind == "http"; };
    const bool any_http = std::any_of(gauges.tunnels.begin(), gauges.tunnels.end(), http);

    if (any_http) out.family("porthole_client_requests_total", "counter",
               "HTTP requests this client forwarded, by tunnel and the status class the visitor "
               "got (none: no response was sent).");
    for (const auto& t : gauges.tunnels)
        if (http(t))
            for (std::size_t c = 0; c < classes.size(); ++c)
                out.sample("porthole_client_requests_total",
                           {{"tunnel", t.name}, {"code_class", classes[c]}},
                           t.counters->requests.by_class[c]);

    if (any_http) out.family("porthole_client_request_duration_seconds", "histogram",
               "From a request's head read from the relay to its response's last byte sent "
               "back (or the 101), by tunnel.");
    for (const auto& t : gauges.tunnels)
        if (http(t)) {
            const auto& h = t.counters->requests.duration;
            out.histogram("porthole_client_request_duration_seconds", {{"tunnel", t.name}},
                          observe::duration_bounds, h.counts,
                          static_cast<double>(h.sum_us) / 1e6);
        }

    out.family("porthole_client_bytes_total", "counter",
               "Bytes of visitors' streams through each tunnel (in: from visitors), as carried "
               "between the relay and the local service.");
    for (const auto& t : gauges.tunnels) {
        out.sample("porthole_client_bytes_total", {{"tunnel", t.name}, {"direction", "in"}},
                   t.counters->bytes.in);
        out.sample("porthole_client_bytes_total", {{"tunnel", t.name}, {"direction", "out"}},
                   t.counters->bytes.out);
    }

    out.family("porthole_client_local_connect_failures_total", "counter",
               "Connections to a tunnel's local service that failed, by tunnel and reason.");
    for (const auto& t : gauges.tunnels)
        for (std::size_t i = 0; i < local_failure_names.size(); ++i)
            out.sample("porthole_client_local_connect_failures_total",
                       {{"tunnel", t.name}, {"reason", local_failure_names[i]}},
                       t.counters->local_failures[i]);

    out.family("porthole_client_visitor_connections_opened_total", "counter",
               "Visitor streams the relay handed to this client, by tunnel.");
    for (const auto& t : gauges.tunnels)
        out.sample("porthole_client_visitor_connections_opened_total", {{"tunnel", t.name}},
                   t.visitors_total);

    out.family("porthole_client_reconnects_total", "counter",
               "Times the client connected to the relay again, by how the attempt before ended; "
               "while the relay stays unreachable, once per retry.");
    for (std::size_t i = 0; i < reconnect_reason_names.size(); ++i)
        out.sample("porthole_client_reconnects_total", {{"reason", reconnect_reason_names[i]}},
                   session.reconnects[i]);

    out.family("porthole_client_session_up", "gauge",
               "1 while the control session with the relay is established, else 0.");
    out.sample("porthole_client_session_up", {}, std::uint64_t{gauges.session_up ? 1u : 0u});
    if (gauges.session_up) {
        out.family("porthole_client_session_start_time_seconds", "gauge",
                   "When the control session up now was established, seconds since the epoch.");
        out.sample("porthole_client_session_start_time_seconds", {}, gauges.session_start);
    }
    if (gauges.rtt_seconds) {
        out.family("porthole_client_rtt_seconds", "gauge",
                   "The round trip of the last heartbeat to the relay.");
        out.sample("porthole_client_rtt_seconds", {}, *gauges.rtt_seconds);
    }

    out.family("porthole_client_tunnels", "gauge", "Tunnels open now, by kind.");
    static constexpr std::array<std::string_view, 3> kinds{"http", "tcp", "tls"};
    for (const auto kind : kinds) {
        std::uint64_t open = 0;
        for (const auto& t : gauges.tunnels) open += t.open && t.kind == kind ? 1 : 0;
        out.sample("porthole_client_tunnels", {{"kind", kind}}, open);
    }
    out.family("porthole_client_tunnel_up", "gauge",
               "1 while a tunnel of this client is open at the relay, else 0.");
    for (const auto& t : gauges.tunnels)
        out.sample("porthole_client_tunnel_up", {{"tunnel", t.name}, {"kind", t.kind}},
                   std::uint64_t{t.open ? 1u : 0u});

    out.family("porthole_client_visitor_connections", "gauge",
               "Visitor streams being carried now, by tunnel.");
    for (const auto& t : gauges.tunnels)
        out.sample("porthole_client_visitor_connections", {{"tunnel", t.name}}, t.visitors_open);
    out.family("porthole_client_data_pool_connections", "gauge",
               "Data connections to the relay waiting for a visitor, by state (idle: ready; "
               "connecting: being opened and proved).");
    out.sample("porthole_client_data_pool_connections", {{"state", "idle"}}, gauges.data_idle);
    out.sample("porthole_client_data_pool_connections", {{"state", "connecting"}},
               gauges.data_connecting);

    observe::write_process_metrics(out, process);
    return out.take();
}

}  // namespace porthole::client
