#include "config/cluster_config.hpp"

#include "cluster/redis_link.hpp"
#include "config/toml_source.hpp"

#include <fmt/format.h>

#include <filesystem>

#include <sys/stat.h>

namespace porthole::config {

namespace {

constexpr std::size_t min_secret = 32;

bool valid_node_id(std::string_view id) {
    return !id.empty() && id.size() <= 63 && id.front() != '-' && id.back() != '-' &&
           std::all_of(id.begin(), id.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
           });
}

// A file's first line, trimmed; refused when others may read it (it is a shared secret).
tl::expected<std::string, std::string> read_secret(const std::string& file, const std::string& at,
                                                   std::string_view key) {
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077) != 0)
        return tl::unexpected(fmt::format(
            "{}: cluster.{} {} may be read by other users (mode {:04o}): chmod 600 {}", at, key,
            file, st.st_mode & 0777, file));
    auto text = read_file(file, "secret file");
    if (!text) return tl::unexpected(fmt::format("{}: cluster.{}: {}", at, key, text.error()));
    std::string line = text->substr(0, text->find('\n'));
    const auto first = line.find_first_not_of(" \t\r");
    const auto last = line.find_last_not_of(" \t\r");
    line = first == std::string::npos ? std::string() : line.substr(first, last - first + 1);
    if (line.empty())
        return tl::unexpected(fmt::format("{}: cluster.{}: {} is empty", at, key, file));
    return line;
}

}  // namespace

tl::expected<cluster_config, std::string> load_cluster(const toml::node& n,
                                                       const std::string& path) {
    const auto at_of = [&](const toml::node& v) {
        return fmt::format("{}:{}", path, v.source().begin.line);
    };
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(fmt::format(
            "{}: write cluster as a table: cluster = {{ redis = \"redis://127.0.0.1:6379/0\", "
            "node_id = \"relay-a\", advertise = \"10.0.0.1:7837\", secret_file = \"...\" }}",
            at_of(n)));
    cluster_config c;
    c.at = at_of(n);
    const auto relative = [&](const std::string& file) {
        if (std::filesystem::path(file).is_relative())
            return (std::filesystem::path(path).parent_path() / file).string();
        return file;
    };
    bool link_given = false;
    for (auto&& [k, v] : *table) {
        const std::string_view key = k.str();
        const std::string at = at_of(v);
        const auto text = v.value_exact<std::string>();
        if (!text)
            return tl::unexpected(fmt::format("{}: cluster.{} must be a string", at, key));
        if (key == "redis") {
            auto parsed = cluster::parse_redis_url(*text);
            if (!parsed) return tl::unexpected(fmt::format("{}: cluster.redis: {}", at, parsed.error()));
            c.redis = *text;
        } else if (key == "node_id") {
            if (!valid_node_id(*text))
                return tl::unexpected(fmt::format(
                    "{}: cluster.node_id '{}' must be 1 to 63 of a-z, 0-9 and '-', like "
                    "\"relay-a\"",
                    at, *text));
            c.node_id = *text;
        } else if (key == "advertise" || key == "link_addr") {
            auto ep = parse_endpoint(*text);
            if (!ep) return tl::unexpected(fmt::format("{}: cluster.{}: {}", at, key, ep.error()));
            (key == "advertise" ? c.advertise : c.link_addr) = *ep;
            if (key == "link_addr") link_given = true;
        } else if (key == "secret_file") {
            auto secret = read_secret(relative(*text), at, key);
            if (!secret) return tl::unexpected(secret.error());
            if (secret->size() < min_secret)
                return tl::unexpected(fmt::format(
                    "{}: cluster.secret_file: the secret is {} characters; give at least {} "
                    "(openssl rand -hex 32 > FILE)",
                    at, secret->size(), min_secret));
            c.secret = std::move(*secret);
        } else if (key == "redis_password_file") {
            auto password = read_secret(relative(*text), at, key);
            if (!password) return tl::unexpected(password.error());
            c.redis_password = std::move(*password);
        } else {
            return tl::unexpected(unknown_key(at, key, " in cluster",
                                              {"redis", "node_id", "advertise", "link_addr",
                                               "secret_file", "redis_password_file"}));
        }
    }
    for (const auto& [key, given] : {std::pair{"redis", !c.redis.empty()},
                                     std::pair{"node_id", !c.node_id.empty()},
                                     std::pair{"advertise", c.advertise.port != 0},
                                     std::pair{"secret_file", !c.secret.empty()}})
        if (!given)
            return tl::unexpected(fmt::format("{}: cluster needs {} (cluster = {{ redis, node_id, "
                                              "advertise, secret_file }})",
                                              c.at, key));
    if (!link_given) c.link_addr = endpoint{"0.0.0.0", c.advertise.port};
    return c;
}

}  // namespace porthole::config
