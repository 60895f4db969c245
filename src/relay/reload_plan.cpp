#include "relay/reload_plan.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

namespace porthole::relay {
namespace {

bool same_members(const config::upstream_settings& a, const config::upstream_settings& b) {
    return a.members == b.members && a.policy == b.policy;
}

bool same_tcp_sites(const std::vector<config::tcp_site_config>& a,
                    const std::vector<config::tcp_site_config>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].listen != b[i].listen || !same_members(a[i].upstream, b[i].upstream) ||
            a[i].accept_proxy_protocol != b[i].accept_proxy_protocol)
            return false;
    return true;
}

}  // namespace

reload_plan plan_reload(const config::server_config& old, const config::server_config& next) {
    reload_plan p;
    const auto check = [&](bool same, std::string_view key) {
        if (!same) p.needs_restart.emplace_back(key);
    };
    check(old.domain == next.domain, "domain");
    check(old.http_addr == next.http_addr, "http_addr");
    check(old.control_addr == next.control_addr, "control_addr");
    check(old.tcp_ports.low == next.tcp_ports.low && old.tcp_ports.high == next.tcp_ports.high,
          "tcp_ports");
    check(old.https_addr == next.https_addr, "https_addr");
    // Certificates are read again on every reload (renewed files keep their paths); only
    // whether the control port speaks TLS at all needs a restart.
    check(old.control_tls == next.control_tls, "control_tls");
    check(old.lease_grace == next.lease_grace, "lease_grace");
    check(old.acme == next.acme, "acme");
    check(old.cluster == next.cluster, "cluster");
    check(same_tcp_sites(old.sites.tcp_sites, next.sites.tcp_sites), "tcp_sites");
    check(old.metrics_addr == next.metrics_addr, "metrics_addr");
    check(old.metrics_token_file == next.metrics_token_file, "metrics_token_file");
    check(old.metrics_tunnel_labels == next.metrics_tunnel_labels, "metrics_tunnel_labels");
    check(old.threads == next.threads, "threads");
    check(old.access_log == next.access_log, "access_log");
    // The handshake gate and each session's data pool are sized when they are made.
    check(old.max_unauthenticated == next.max_unauthenticated, "max_unauthenticated");
    // Whether a client needs a token at all: an open relay closing, or the reverse.
    check(old.tokens_required() == next.tokens_required(), "tokens_file");
    check(old.admin_socket == next.admin_socket, "admin_socket");
    check(old.admin_addr == next.admin_addr && old.admin_token == next.admin_token &&
              old.admin_hosts == next.admin_hosts,
          "admin_addr");
    check(old.max_unauthenticated_per_ip == next.max_unauthenticated_per_ip,
          "max_unauthenticated_per_ip");

    const std::set<protocol::verifier> before(old.tokens.begin(), old.tokens.end());
    const std::set<protocol::verifier> after(next.tokens.begin(), next.tokens.end());
    for (const auto& t : before)
        if (!after.contains(t)) p.tokens_removed.push_back(t);
    for (const auto& t : after)
        if (!before.contains(t)) ++p.tokens_added;

    std::set<std::string> old_sites, new_sites;
    for (const auto& s : old.sites.sites) old_sites.insert(s.hosts.front());
    for (const auto& s : next.sites.sites) new_sites.insert(s.hosts.front());
    for (const auto& h : new_sites) (old_sites.contains(h) ? p.sites_kept : p.sites_added)++;
    for (const auto& h : old_sites)
        if (!new_sites.contains(h)) ++p.sites_removed;
    return p;
}

std::string restart_message(const reload_plan& p) {
    return fmt::format("{} changed: restart the relay to apply {}, or run porthole admin upgrade, "
                       "which does without refusing a visitor (the running config stays)",
                       fmt::join(p.needs_restart, ", "),
                       p.needs_restart.size() == 1 ? "it" : "them");
}

}  // namespace porthole::relay
