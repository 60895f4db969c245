#include "config/cache_config.hpp"

#include "config/client_config.hpp"
#include "config/toml_source.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace porthole::config {

namespace {

constexpr std::string_view disk_example = "{ path = \"/var/cache/porthole/site\", size = \"10GiB\" }";

tl::expected<cache_disk_config, std::string> load_disk(const toml::node& n, const std::string& at,
                                                       std::string_view where) {
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(
            fmt::format("{}: {}.disk must be a table such as {}", at, where, disk_example));
    cache_disk_config d;
    d.at = at;
    for (auto&& [k, v] : *table) {
        const std::string_view key = k.str();
        const auto text = v.value_exact<std::string>();
        if (key == "path") {
            if (!text || text->empty() || !text->starts_with('/'))
                return tl::unexpected(fmt::format(
                    "{}: {}.disk.path must be an absolute directory path such as "
                    "\"/var/cache/porthole/site\"",
                    at, where));
            d.path = *text;
        } else if (key == "size") {
            const auto size = text ? parse_size(*text) : tl::unexpected(std::string("no text"));
            if (!size || *size == 0)
                return tl::unexpected(fmt::format(
                    "{}: {}.disk.size must be a size such as \"10GiB\"", at, where));
            d.size = *size;
        } else {
            return tl::unexpected(
                unknown_key(at, key, fmt::format(" in {}.disk", where), {"path", "size"}));
        }
    }
    if (d.path.empty())
        return tl::unexpected(fmt::format("{}: {}.disk needs a path, as in {}", at, where,
                                          disk_example));
    return d;
}

}  // namespace

tl::expected<cache_config, std::string> load_cache(const toml::node& n, const std::string& path,
                                                   std::string_view where) {
    const auto at_of = [&](const toml::node& v) {
        return fmt::format("{}:{}", path, v.source().begin.line);
    };
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(fmt::format(
            "{}: {} must be a table such as {{ memory = \"256MiB\", default_ttl = \"0s\" }}",
            at_of(n), where));
    cache_config c;
    bool max_object_given = false;
    for (auto&& [k, v] : *table) {
        const std::string_view key = k.str();
        const std::string at = at_of(v);
        if (key == "enabled" || key == "store_set_cookie" || key == "stale_when_offline" ||
            key == "opt_in") {
            const auto b = v.value_exact<bool>();
            if (!b)
                return tl::unexpected(
                    fmt::format("{}: {}.{} must be true or false", at, where, key));
            if (key == "opt_in" && where != "tunnel_policy.cache")
                return tl::unexpected(fmt::format(
                    "{}: {}.opt_in is for [tunnel_policy] cache (tunnels whose owner runs "
                    "--cache); a site's cache is on with its table",
                    at, where));
            (key == "enabled"            ? c.enabled
             : key == "store_set_cookie" ? c.store_set_cookie
             : key == "opt_in"           ? c.opt_in
                                         : c.stale_when_offline) = *b;
        } else if (key == "memory" || key == "max_object") {
            const auto text = v.value_exact<std::string>();
            const auto size = text ? parse_size(*text) : tl::unexpected(std::string("no text"));
            if (!size || *size == 0)
                return tl::unexpected(fmt::format(
                    "{}: {}.{} must be a size such as \"256MiB\" or \"8MiB\"", at, where, key));
            (key == "memory" ? c.memory : c.max_object) = *size;
            if (key == "max_object") max_object_given = true;
        } else if (key == "default_ttl") {
            const auto ttl = duration_value(v, std::chrono::hours(24 * 365));
            if (!ttl)
                return tl::unexpected(fmt::format(
                    "{}: {}.default_ttl must be a duration such as \"10m\" (at most a year)", at,
                    where));
            c.default_ttl = static_cast<std::uint64_t>(ttl->count() / 1000);
        } else if (key == "disk") {
            auto disk = load_disk(v, at, where);
            if (!disk) return tl::unexpected(disk.error());
            c.disk = std::move(*disk);
        } else {
            return tl::unexpected(unknown_key(at, key, fmt::format(" in {}", where),
                                              {"enabled", "memory", "max_object", "default_ttl",
                                               "store_set_cookie", "stale_when_offline", "opt_in",
                                               "disk"}));
        }
    }
    // The default max_object shrinks to a smaller budget; one written out must fit.
    if (!max_object_given) {
        c.max_object = std::min(c.max_object, c.memory);
        if (c.disk) c.max_object = std::min(c.max_object, c.disk->size);
    }
    if (c.max_object > c.memory)
        return tl::unexpected(fmt::format("{}: {}.max_object is larger than {}.memory",
                                          at_of(n), where, where));
    if (c.disk && c.max_object > c.disk->size)
        return tl::unexpected(fmt::format("{}: {}.max_object is larger than {}.disk.size",
                                          at_of(n), where, where));
    return c;
}

}  // namespace porthole::config
