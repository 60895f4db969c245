#pragma once
// The route table of the configured sites: each route's policy chain, upstream pool and cache,
// and whether any event loop may serve it.
#include "config/site_config.hpp"
#include "policy/jwks_fetch.hpp"
#include "route/route_table.hpp"
#include "upstream/upstream_pool.hpp"

#include <tl/expected.hpp>

#include <string>

namespace porthole::relay {

// Fails on an https member's CA file or a cache's disk tier. `tunnels` opens the streams of
// tunnel members. `first_loop`: the relay's first event loop, which alone makes the caches
// (the other loops hand those routes to it).
tl::expected<void, std::string> build_sites(const config::site_set& sites,
                                            upstream::tunnel_source* tunnels,
                                            const policy::jwks_sources& jwks,
                                            route::route_table& table, bool first_loop);

}  // namespace porthole::relay
