#include "relay/site_builder.hpp"

#include "cache/http_cache.hpp"
#include "policy/chain.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace porthole::relay {

tl::expected<void, std::string> build_sites(const config::site_set& sites,
                                            upstream::tunnel_source* tunnels,
                                            const policy::jwks_sources& jwks,
                                            route::route_table& table, bool first_loop) {
    for (const auto& s : sites.sites) {
        const auto site_index = static_cast<std::uint32_t>(table.sites().size());
        route::site built{s.hosts, {}, s.pages, site_index};
        // One of each site-wide step for all its routes: a site's rate limit counts them together.
        const policy::chain site_policies = policy::build_chain(s.policies, &jwks);
        std::shared_ptr<cache::http_cache> site_cache;
        const bool site_cached = s.cache && s.cache->enabled;
        if (site_cached && first_loop) {
            auto made = cache::make_cache(*s.cache);
            if (!made) return tl::unexpected(fmt::format("site {}: {}", s.hosts.front(), made.error()));
            site_cache = std::move(*made);
        }
        for (const auto& r : s.routes) {
            auto route = std::make_shared<route::route>();
            route->path = r.path;
            route->strip_prefix = r.strip_prefix;
            route->metric_slot = site_index;
            route->policies = site_policies;
            for (auto& p : policy::build_chain(r.policies, &jwks))
                route->policies.push_back(std::move(p));
            const std::string name = r.path.empty() ? s.hosts.front()
                                                    : fmt::format("{}{}", s.hosts.front(), r.path);
            auto pool = upstream::pool::make(name, r.upstream, tunnels);
            if (!pool) return tl::unexpected(fmt::format("site {}: {}", name, pool.error()));
            route->pool = std::move(*pool);
            route->cache = site_cache;
            bool cached = site_cached;
            if (r.cache && !r.cache->enabled) {
                route->cache = nullptr;
                cached = false;
            } else if (r.cache) {
                cached = true;
                if (first_loop) {
                    auto made = cache::make_cache(*r.cache);
                    if (!made)
                        return tl::unexpected(fmt::format("site {}: {}", name, made.error()));
                    route->cache = std::move(*made);
                }
            }
            // A cache is made on the first loop; another loop's route takes it from there
            // (worker::build), and serves only once it has.
            route->any_loop =
                (first_loop || !cached) && !policy::keeps_first_loop_state(route->policies) &&
                std::none_of(r.upstream.members.begin(), r.upstream.members.end(), [](const auto& m) {
                    return m.kind == config::upstream_member::scheme::tunnel;
                });
            built.routes.push_back(std::move(route));
        }
        table.add(std::move(built));
    }
    return {};
}

void start_checks(const route::route_table& table, const boost::asio::any_io_executor& ex) {
    for (const auto& s : table.sites())
        for (const auto& r : s->routes) r->pool->start_checks(ex);
}

void stop_pools(const route::route_table& table) {
    for (const auto& s : table.sites())
        for (const auto& r : s->routes) r->pool->stop();
}

void replace_sites(std::shared_ptr<route::route_table>& current,
                   std::shared_ptr<route::route_table> next,
                   std::vector<observe::request_counts>& site_counts,
                   const boost::asio::any_io_executor& ex) {
    std::vector<observe::request_counts> carried(next->sites().size());
    for (std::size_t i = 0; i < next->sites().size(); ++i)
        for (std::size_t j = 0; j < current->sites().size() && j < site_counts.size(); ++j)
            if (current->sites()[j]->hosts.front() == next->sites()[i]->hosts.front())
                carried[i] = site_counts[j];
    stop_pools(*current);
    current = std::move(next);
    site_counts = std::move(carried);
    start_checks(*current, ex);
}

}  // namespace porthole::relay
