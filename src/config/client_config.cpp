#include "config/client_config.hpp"

#include "config/toml_source.hpp"
#include "http/host_route.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cstdlib>

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
    std::string target_text;
    if (auto port = target->value<std::int64_t>())
        target_text = std::to_string(*port);
    else if (auto s = target->value<std::string>())
        target_text = *s;
    else
        return tl::unexpected(fmt::format("{}: 'target' must be a port or a string",
                                          at(path, *target)));
    auto ep = parse_target(target_text);
    if (!ep) return tl::unexpected(fmt::format("{}: target: {}", at(path, *target), ep.error()));
    t.target = *ep;

    for (auto&& [key_node, node] : table) {
        const std::string_view key = key_node.str();
        if (key == "type" || key == "target") continue;
        const bool http = t.kind == protocol::tunnel_kind::http;
        const bool named = http || t.kind == protocol::tunnel_kind::tls;
        if (key == "subdomain" && named) {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            if (!http::valid_name(*v))
                return tl::unexpected(fmt::format(
                    "{}: subdomain '{}' is not a valid name (a-z, 0-9, '-', 1-63 characters)",
                    at(path, node), *v));
            t.subdomain = *v;
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
        } else {
            return tl::unexpected(fmt::format(
                "{}: unknown key '{}' in a {} tunnel (known: type, target, {})", at(path, node),
                key, *type_text,
                http ? "subdomain, host_header" : named ? "subdomain" : "remote_port"));
        }
    }
    return t;
}

}  // namespace

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
            auto ep = parse_endpoint(*v);
            if (!ep) return tl::unexpected(fmt::format("{}: server: {}", at(path, node), ep.error()));
            file.server = *ep;
        } else if (key == "token") {
            auto v = string_of(path, key, node);
            if (!v) return tl::unexpected(v.error());
            file.token = *v;
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
            return tl::unexpected(fmt::format(
                "{}: unknown key '{}' (known: server, token, [tunnels.NAME])", at(path, node), key));
        }
    }
    std::sort(file.tunnels.begin(), file.tunnels.end(), [](const auto& a, const auto& b) {
        return a.name < b.name;
    });
    return file;
}

std::string default_client_file() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        return std::string(xdg) + "/porthole/porthole.toml";
    const char* home = std::getenv("HOME");
    return std::string(home ? home : ".") + "/.config/porthole/porthole.toml";
}

}  // namespace porthole::config
