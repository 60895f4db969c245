#pragma once
// A route: where a request that matched a site's host and path goes. An ordered policy chain
// runs first (each step may answer the request itself), then the upstream pool takes it.
#include "cache/http_cache.hpp"
#include "policy/chain.hpp"
#include "upstream/upstream_pool.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace porthole::route {

struct route {
    std::string path;  // whole-segment prefix; empty: every path
    bool strip_prefix = false;
    policy::chain policies;  // the site's steps, then the route's own
    std::shared_ptr<upstream::pool> pool;
    std::shared_ptr<cache::http_cache> cache;  // null: responses pass uncached
    // A tunnel whose owner asked for the cache (--cache): what it stores may also be served
    // while the client is away, as stale_when_offline would.
    bool serve_offline = false;
    // Where its requests are counted: the site's index in the config, or the tunnel name's
    // label slot (observe::label_slots).
    std::uint32_t metric_slot = 0;
    // No tunnel member and no policy whose state is the first loop's alone (a cache and the
    // state of shared_by_loops steps are the relay's): any of the relay's event loops may serve
    // it (a relay with `threads` > 1); other routes are served by the first loop.
    bool any_loop = false;
};

}  // namespace porthole::route
