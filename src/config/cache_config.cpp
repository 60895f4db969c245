#include "config/cache_config.hpp"

#include "config/client_config.hpp"
#include "config/toml_source.hpp"

#include <fmt/format.h>

namespace porthole::config {

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
    for (auto&& [k, v] : *table) {
        const std::string_view key = k.str();
        const std::string at = at_of(v);
        if (key == "enabled" || key == "store_set_cookie" || key == "stale_when_offline") {
            const auto b = v.value_exact<bool>();
            if (!b)
                return tl::unexpected(
                    fmt::format("{}: {}.{} must be true or false", at, where, key));
            (key == "enabled" ? c.enabled
             : key == "store_set_cookie" ? c.store_set_cookie
                                         : c.stale_when_offline) = *b;
        } else if (key == "memory" || key == "max_object") {
            const auto text = v.value_exact<std::string>();
            const auto size = text ? parse_size(*text) : tl::unexpected(std::string("no text"));
            if (!size || *size == 0)
                return tl::unexpected(fmt::format(
                    "{}: {}.{} must be a size such as \"256MiB\" or \"8MiB\"", at, where, key));
            (key == "memory" ? c.memory : c.max_object) = *size;
        } else if (key == "default_ttl") {
            const auto ttl = duration_value(v, std::chrono::hours(24 * 365));
            if (!ttl)
                return tl::unexpected(fmt::format(
                    "{}: {}.default_ttl must be a duration such as \"10m\" (at most a year)", at,
                    where));
            c.default_ttl = static_cast<std::uint64_t>(ttl->count() / 1000);
        } else if (key == "disk") {
            return tl::unexpected(fmt::format(
                "{}: {}.disk: this relay caches in memory only; remove the disk table and size "
                "the memory tier with memory = \"...\"",
                at, where));
        } else {
            return tl::unexpected(unknown_key(at, key, fmt::format(" in {}", where),
                                              {"enabled", "memory", "max_object", "default_ttl",
                                               "store_set_cookie", "stale_when_offline"}));
        }
    }
    if (c.max_object > c.memory)
        return tl::unexpected(fmt::format("{}: {}.max_object is larger than {}.memory",
                                          at_of(n), where, where));
    return c;
}

}  // namespace porthole::config
