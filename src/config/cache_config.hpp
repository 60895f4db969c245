#pragma once
// cache = { ... }: a route's shared HTTP cache (docs/caching.md), in a [[sites]] table (every
// route of the site shares one), a [[sites.routes]] table (its own), or `tunnel_cache` at the
// top level (one for every tunnel's route).
#include <tl/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace porthole::config {

// disk = { path = "...", size = "10GiB" }: the disk tier (docs/caching.md).
struct cache_disk_config {
    std::string path;                  // a directory the relay owns, one per cache
    std::size_t size = 1ull << 30;     // bytes of files kept, least recently used evicted
    std::string at;                    // FILE:LINE of the table, for errors
    bool operator==(const cache_disk_config& o) const { return path == o.path && size == o.size; }
};

struct cache_config {
    bool enabled = true;                // a table turns it on unless it says enabled = false
    std::size_t memory = 256u << 20;    // memory: bytes for every stored response
    std::size_t max_object = 8u << 20;  // max_object: larger responses pass uncached
    std::uint64_t default_ttl = 0;      // seconds given to storable responses that state none
    bool store_set_cookie = false;      // store responses that set cookies
    bool stale_when_offline = false;    // serve stale while no upstream can be reached
    bool opt_in = false;  // tunnel_policy.cache: only tunnels whose owner asks (--cache)
    std::optional<cache_disk_config> disk{};
    bool operator==(const cache_config&) const = default;
};

// A `cache` table at `where` ("cache", "tunnel_cache") -> its settings; errors name FILE:LINE.
tl::expected<cache_config, std::string> load_cache(const toml::node& n, const std::string& path,
                                                   std::string_view where);

}  // namespace porthole::config
