#pragma once
// The route table of the configured sites: each route's policy chain, upstream pool and cache,
// and whether any event loop may serve it.
#include "config/site_config.hpp"
#include "observe/request_counts.hpp"
#include "policy/jwks_fetch.hpp"
#include "route/route_table.hpp"
#include "upstream/upstream_pool.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <tl/expected.hpp>

#include <memory>
#include <string>
#include <vector>

namespace porthole::relay {

// Fails on an https member's CA file or a cache's disk tier. `tunnels` opens the streams of
// tunnel members. `first_loop`: the relay's first event loop, which alone makes the caches
// (the other loops hand those routes to it).
tl::expected<void, std::string> build_sites(const config::site_set& sites,
                                            upstream::tunnel_source* tunnels,
                                            const policy::jwks_sources& jwks,
                                            route::route_table& table, bool first_loop);

// Each route's pool: health checks begun on `ex`, or stopped (requests under way keep theirs).
void start_checks(const route::route_table& table, const boost::asio::any_io_executor& ex);
void stop_pools(const route::route_table& table);

// A reload's table takes over from `current` on this loop: the old pools stop, the new ones
// begin their checks, and each site's request counts carry over to the site with the same first
// host (counts of sites the reload removed are dropped).
void replace_sites(std::shared_ptr<route::route_table>& current,
                   std::shared_ptr<route::route_table> next,
                   std::vector<observe::request_counts>& site_counts,
                   const boost::asio::any_io_executor& ex);

}  // namespace porthole::relay
