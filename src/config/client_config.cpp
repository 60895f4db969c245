#include "config/client_config.hpp"

#include "config/owner_policies.hpp"
#include "config/toml_source.hpp"
#include "http/host_route.hpp"
#include "http/path_route.hpp"

#include <fmt/format.h>
#include "config/toml.hpp"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace porthole::config {
namespace {

std::string at(const std::string& path, const toml::node& n) {
    return fmt::format("{}:{}", path, n.source().begin.line);
}

tl::expected<std::string, std::string> string_of(const std::string& path, std::string_view key,
                                                 const toml::node& n) {
    if (auto v = n.value<std::string>()) return *v;
    return tl::unexpected(fmt::format("{}: '{}' must be a string", at(path, n), key));
}

// A target given as a port number or a "HOST:PORT" string.
tl::expected<endpoint, std::string> target_of(const std::string& path, const toml::node& n) {
    std::string text;
    if (auto port = n.value<std::int64_t>())
        text = std::to_string(*port);
    else if (auto s = n.value<std::string>())
        text = *s;
    else
        return tl::unexpected(fmt::format("{}: 'target' must be a port or a string", at(path, n)));
    auto ep = parse_target(text);
    if (!ep) return tl::unexpected(fmt::format("{}: target: {}", at(path, n), ep.error()));
    return *ep;
}

tl::expected<http_route, std::string> route_of(const std::string& path, const toml::node& n) {
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(fmt::format("{}: each route is a table: {{ path = \"/api\", target = "
                                          "8000 }}",
                                          at(path, n)));
    http_route r;
    bool has_path = false, has_target = false;
    for (auto&& [key_node, value] : *table) {
        const std::string_view key = key_node.str();
        if (key == "path") {
            auto v = string_of(path, key, value);
            if (!v) return tl::unexpected(v.error());
            if (!http::valid_path_prefix(*v))
                return tl::unexpected(fmt::format(
                    "{}: route path '{}' must start with '/' and hold no query or spaces",
                    at(path, value), *v));
            r.path = *v;
            has_path = true;
        } else if (key == "target") {
            auto ep = target_of(path, value);
            if (!ep) return tl::unexpected(ep.error());
            r.target = *ep;
            has_target = true;
        } else {
            return tl::unexpected(unknown_key(at(path, value), key, " in a route", {"path", "target"}));
        }
    }
    if (!has_path || !has_target)
        return tl::unexpected(fmt::format("{}: a route needs both path and target", at(path, n)));
    return r;
}

tl::expected<bool, std::string> bool_of(const std::string& path, std::string_view key,
                                        const toml::node& n) {
    if (auto v = n.value<bool>()) return *v;
    return tl::unexpected(fmt::format("{}: '{}' must be true or false", at(path, n), key));
}

tl::expected<std::size_t, std::string> size_of(const std::string& path, std::string_view key,
                                               const toml::node& n) {
    std::string text;
    if (auto v = n.value<std::int64_t>())
        text = std::to_string(*v);
    else if (auto s = n.value<std::string>())
        text = *s;
    auto size = parse_size(text);
    if (!size) return tl::unexpected(fmt::format("{}: {}: {}", at(path, n), key, size.error()));
    return *size;
}

tl::expected<tunnel_spec, std::string> tunnel_of(const std::string& path, const std::string& name,
                                                 const toml::table& table) {
    tunnel_spec t;
    t.name = name;
    const std::string where = at(path, table);
    const auto* type = table.get("type");
    if (!type)
        return tl::unexpected(fmt::format("{}: tunnel '{}' needs type = \"http\" or \"tcp\"",
                                          where, name));
    auto type_text = string_of(path, "type", *type);
    if (!type_text) return tl::unexpected(type_text.error());
    if (*type_text == "http")
        t.kind = protocol::tunnel_kind::http;
    else if (*type_text == "tcp")
        t.kind = protocol::tunnel_kind::tcp;
    else if (*type_text == "tls")
        t.kind = protocol::tunnel_kind::tls;
    else
        return tl::unexpected(fmt::format("{}: type '{}' is not http, tcp or tls", at(path, *type),
                                          *type_text));
    const auto* target = table.get("target");
    if (!target)
        return tl::unexpected(fmt::format("{}: tunnel '{}' needs target = \"PORT\" or "
                                          "\"HOST:PORT\"",
                                          where, name));
    auto ep = target_of(path, *target);
    if (!ep) return tl::unexpected(ep.error());
    t.target = *ep;

    bool cache = false;
    for (auto&& [key_node, node] : table) {
        const std::string_view key = key_node.str();
        if (key == "type" || key == "target") continue;
        const bool http = t.kind == protocol::tunnel_kind::http;
        const bool named = http || t.kind == protocol::tunnel_kind::tls;
        if (key == "subdomain" && named) {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            if (!t.subdomain.empty())
                return tl::unexpected(fmt::format(
                    "{}: a tunnel has a subdomain or a domain, not both", at(path, node)));
            auto name = http::subdomain_from_user(*v);
            if (!name)
                return tl::unexpected(fmt::format("{}: subdomain {}", at(path, node), name.error()));
            t.subdomain = std::move(*name);
        } else if (key == "domain" && named) {
            // A custom domain rides in the name field: a name with a dot is one.
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            if (!t.subdomain.empty())
                return tl::unexpected(fmt::format(
                    "{}: a tunnel has a subdomain or a domain, not both", at(path, node)));
            auto domain = http::custom_domain_from_user(*v);
            if (!domain)
                return tl::unexpected(fmt::format("{}: domain {}", at(path, node), domain.error()));
            t.subdomain = std::move(*domain);
        } else if (key == "group" && named) {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            if (v->empty())
                return tl::unexpected(fmt::format(
                    "{}: group is empty; use a long random key shared by the group's clients",
                    at(path, node)));
            t.group = *v;
            t.group_at = at(path, node);
        } else if (key == "routes" && http) {
            const auto* list = node.as_array();
            if (!list)
                return tl::unexpected(fmt::format(
                    "{}: routes must be a list: routes = [{{ path = \"/api\", target = 8000 }}]",
                    at(path, node)));
            for (const auto& item : *list) {
                auto route = route_of(path, item);
                if (!route) return tl::unexpected(route.error());
                t.routes.push_back(std::move(*route));
            }
        } else if (key == "policies" && http) {
            auto text = policies_from_file(node, path, name);
            if (!text) return tl::unexpected(text.error());
            t.policies = std::move(*text);
        } else if (key == "cache" && http) {
            const auto on = node.value_exact<bool>();
            if (!on)
                return tl::unexpected(fmt::format(
                    "{}: cache must be true or false (true: the relay caches this tunnel's "
                    "responses and serves them while the client is away)",
                    at(path, node)));
            cache = *on;
        } else if (key == "host_header" && http) {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            t.host_header = *v;
        } else if (key == "remote_port" && !named) {
            auto v = node.value<std::int64_t>();
            if (!v || *v < 1 || *v > 65535)
                return tl::unexpected(fmt::format("{}: remote_port must be a port number 1-65535",
                                                  at(path, node)));
            t.remote_port = static_cast<std::uint16_t>(*v);
        } else if (key == "subdomain" || key == "host_header" || key == "routes" ||
                   key == "remote_port" || key == "group" || key == "policies" ||
                   key == "domain" || key == "cache") {
            return tl::unexpected(fmt::format(
                "{}: '{}' does not apply to a {} tunnel ({})", at(path, node), key, *type_text,
                key == "remote_port" ? "only tcp tunnels have a public port"
                : key == "subdomain" || key == "group" || key == "domain"
                    ? "only http and tls tunnels have a name"
                : key == "policies" || key == "cache"
                    ? "the relay does not read a tcp or tls tunnel's bytes"
                                    : "only http tunnels read HTTP"));
        } else {
            const std::string in = fmt::format(" in a {} tunnel", *type_text);
            return tl::unexpected(
                http    ? unknown_key(at(path, node), key, in,
                                      {"type", "target", "subdomain", "domain", "group",
                                       "host_header", "routes", "policies", "cache"})
                : named ? unknown_key(at(path, node), key, in,
                                      {"type", "target", "subdomain", "domain", "group"})
                        : unknown_key(at(path, node), key, in, {"type", "target", "remote_port"}));
        }
    }
    if (!t.group.empty() && t.subdomain.empty())
        return tl::unexpected(fmt::format(
            "{}: a tunnel group needs a name: add subdomain = \"NAME\" (the name the group "
            "shares)",
            t.group_at));
    if (cache) t.policies = with_cache(t.policies);
    return t;
}

}  // namespace

std::optional<std::string> group_without_token(const tunnel_spec& t, const endpoint& server,
                                               bool has_token) {
    if (t.group.empty() || has_token || is_loopback_host(server.host)) return std::nullopt;
    return fmt::format(
        "{}tunnel group without a token: on a relay that other machines reach, anyone who knew "
        "the group key could join it and take its visitors; give a token (--token, token_file) "
        "from the relay's tokens file",
        t.group_at.empty() ? std::string("--group: ") : t.group_at + ": ");
}

tl::expected<client_file, std::string> load_client_file(const std::string& path) {
    return read_file(path, "config file").and_then([&](const std::string& text) {
        return load_client_text(text, path);
    });
}

tl::expected<client_file, std::string> load_client_text(std::string_view text,
                                                        const std::string& path) {
    auto table = parse_toml(text, path);
    if (!table) return tl::unexpected(table.error());
    client_file file;
    for (auto&& [key_node, node] : *table) {
        const std::string_view key = key_node.str();
        if (key == "server") {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            auto list = parse_server_list(*v);
            if (!list)
                return tl::unexpected(fmt::format("{}: server: {}", at(path, node), list.error()));
            file.server = std::move(*list);
        } else if (key == "token" || key == "token_file") {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            if (file.token || file.token_file)
                return tl::unexpected(
                    fmt::format("{}: give token or token_file, not both", at(path, node)));
            if (key == "token")
                file.token = *v;
            else if (v->empty())
                return tl::unexpected(fmt::format("{}: token_file is empty", at(path, node)));
            else
                file.token_file = (std::filesystem::path(path).parent_path() / *v).string();
        } else if (key == "inspect") {
            auto v = bool_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            file.inspect.enabled = *v;
        } else if (key == "inspect_addr") {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            auto ep = parse_endpoint(*v);
            if (!ep)
                return tl::unexpected(fmt::format("{}: inspect_addr: {}", at(path, node), ep.error()));
            file.inspect.addr = *ep;
        } else if (key == "inspect_body_limit") {
            auto v = size_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            file.inspect.body_limit = *v;
        } else if (key == "inspect_memory") {
            auto v = size_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            file.inspect.memory = *v;
        } else if (key == "tunnels") {
            const auto* tunnels = node.as_table();
            if (!tunnels)
                return tl::unexpected(fmt::format("{}: 'tunnels' must hold [tunnels.NAME] tables",
                                                  at(path, node)));
            for (auto&& [name_node, tunnel_node] : *tunnels) {
                const auto* t = tunnel_node.as_table();
                if (!t)
                    return tl::unexpected(fmt::format("{}: tunnels.{} must be a table",
                                                      at(path, tunnel_node), name_node.str()));
                auto spec = tunnel_of(path, std::string(name_node.str()), *t);
                if (!spec) return tl::unexpected(spec.error());
                file.tunnels.push_back(std::move(*spec));
            }
        } else {
            return tl::unexpected(
                unknown_key(at(path, node), key, "",
                            {"server", "token", "token_file", "inspect", "inspect_addr",
                             "inspect_body_limit", "inspect_memory", "tunnels"}));
        }
    }
    std::sort(file.tunnels.begin(), file.tunnels.end(), [](const auto& a, const auto& b) {
        return a.name < b.name;
    });
    return file;
}

tl::expected<std::size_t, std::string> parse_size(std::string_view text) {
    std::size_t i = 0;
    std::uint64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && n < (1ULL << 50))
        n = n * 10 + static_cast<unsigned>(text[i++] - '0');
    std::string_view unit = text.substr(i);
    while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    static constexpr std::pair<std::string_view, std::uint64_t> units[] = {
        {"", 1},          {"B", 1},         {"KB", 1000},       {"KiB", 1024},
        {"MB", 1000000},  {"MiB", 1 << 20}, {"GB", 1000000000}, {"GiB", 1ULL << 30}};
    if (i == 0 || n >= (1ULL << 50))
        return tl::unexpected(fmt::format("'{}' is not a size; write bytes or e.g. 64KiB, 32MiB",
                                          text));
    for (const auto& [name, factor] : units)
        if (unit == name) return static_cast<std::size_t>(n * factor);
    return tl::unexpected(fmt::format("unknown unit '{}' in '{}' (use B, KB, KiB, MB, MiB, GB, GiB)",
                                      unit, text));
}

tl::expected<http_route, std::string> parse_route(std::string_view text) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos)
        return tl::unexpected(fmt::format("'{}' is not PATH=TARGET (e.g. /api=8000)", text));
    const std::string path(text.substr(0, eq));
    if (!http::valid_path_prefix(path))
        return tl::unexpected(
            fmt::format("route path '{}' must start with '/' and hold no query or spaces", path));
    auto target = parse_target(text.substr(eq + 1));
    if (!target) return tl::unexpected(fmt::format("route target: {}", target.error()));
    return http_route{path, *target};
}

std::string default_client_file() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        return std::string(xdg) + "/porthole/porthole.toml";
    const char* home = std::getenv("HOME");
    return std::string(home ? home : ".") + "/.config/porthole/porthole.toml";
}

tl::expected<file_token, std::string> read_token_file(const std::string& path) {
    constexpr std::size_t size_limit = 64 * 1024;  // a token, not a document
    const auto failed = [&](std::string_view why) {
        return tl::unexpected(fmt::format("{}: cannot read the token file: {}", path, why));
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return failed(std::generic_category().message(errno));
    struct fd_closer {
        int fd;
        ~fd_closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failed(std::generic_category().message(errno));
    if (S_ISDIR(st.st_mode)) return failed("it is a directory");
    std::string text;
    char chunk[4096];
    for (;;) {
        const auto n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failed(std::generic_category().message(errno));
        if (n == 0) break;
        text.append(chunk, static_cast<std::size_t>(n));
        if (text.size() > size_limit) return failed("it is larger than 64 KiB");
    }
    auto token = token_in_text(text, path);
    if (!token) return tl::unexpected(token.error());
    file_token result{std::move(*token), {}};
    // A pipe (--token-file <(pass show relay)) has no meaningful permission bits.
    if (S_ISREG(st.st_mode) && others_may_read(st.st_mode))
        result.warning =
            fmt::format("{}: the token file is readable by other users (mode {:04o}); chmod 600 {}",
                        path, st.st_mode & 0777, path);
    return result;
}

tl::expected<std::string, std::string> token_in_text(std::string_view text,
                                                     const std::string& path) {
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        const auto first = line.find_first_not_of(" \t\r");
        if (first == std::string_view::npos || line[first] == '#') continue;
        const auto last = line.find_last_not_of(" \t\r");
        return std::string(line.substr(first, last - first + 1));
    }
    return tl::unexpected(
        fmt::format("{}: the token file holds no token (only blank lines and # comments)", path));
}

bool others_may_read(unsigned mode) { return (mode & (S_IRGRP | S_IROTH)) != 0; }

std::string command_line_token_warning(const endpoint& address, std::string_view instead) {
    if (is_loopback_host(address.host)) return {};
    return fmt::format("--token is visible to every user of this machine (ps, /proc/PID/cmdline); "
                       "use {} instead",
                       instead);
}

}  // namespace porthole::config
