#include "config/server_config.hpp"

#include "config/toml_source.hpp"
#include "http/host_route.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <fmt/format.h>

#include <filesystem>
#include "config/toml.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <sched.h>

namespace porthole::config {
namespace {

std::string where(const std::string& path, const toml::node& n) {
    return fmt::format("{}:{}", path, n.source().begin.line);
}

template <class T>
tl::expected<T, std::string> get(const std::string& path, std::string_view key,
                                 const toml::node& n, std::string_view expected_type) {
    if (auto v = n.value<T>()) return *v;
    return tl::unexpected(fmt::format("{}: '{}' must be {}", where(path, n), key, expected_type));
}

// [tunnel_policy]: policies = [[tunnel_policy.policies]] tables, forbid = ["TYPE", ...],
// error_pages = { STATUS = "FILE" }.
tl::expected<void, std::string> load_tunnel_policy(const toml::node& n, const std::string& path,
                                                   server_config& cfg) {
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(fmt::format(
            "{}: write [tunnel_policy] as a table, with [[tunnel_policy.policies]] and forbid",
            where(path, n)));
    for (auto&& [k, v] : *table) {
        const std::string_view key = k.str();
        if (key == "policies") {
            auto p = load_policies(v, path, "tunnel_policy.policies");
            if (!p) return tl::unexpected(p.error());
            cfg.tunnel_policies = std::move(*p);
        } else if (key == "forbid") {
            const auto* arr = v.as_array();
            if (!arr)
                return tl::unexpected(fmt::format("{}: 'forbid' must be an array of policy types",
                                                  where(path, v)));
            cfg.tunnel_policy_forbid.clear();
            for (auto&& item : *arr) {
                const auto type = item.value_exact<std::string>();
                if (!type || (!is_policy_type(*type) && *type != "cache"))
                    return tl::unexpected(fmt::format(
                        "{}: 'forbid' takes policy types ({}) and cache (an owner's --cache)",
                        where(path, item), policy_type_names()));
                cfg.tunnel_policy_forbid.push_back(*type);
            }
        } else if (key == "error_pages") {
            auto pages = load_error_pages(v, path);
            if (!pages) return tl::unexpected(pages.error());
            cfg.tunnel_error_pages = std::move(*pages);
        } else if (key == "cache") {
            auto cache = load_cache(v, path, "tunnel_policy.cache");
            if (!cache) return tl::unexpected(cache.error());
            cfg.tunnel_cache = *cache;
        } else {
            return tl::unexpected(
                unknown_key(where(path, v), key, " in [tunnel_policy]",
                            {"policies", "forbid", "error_pages", "cache"}));
        }
    }
    return {};
}

// The whole-number limits: key, field, allowed range.
struct limit_key {
    std::string_view name;
    std::uint32_t server_config::*field;
    std::int64_t low;
    std::int64_t high;
};

constexpr std::int64_t many = 1000000;
constexpr limit_key limit_keys[] = {
    {"max_tunnels_per_client", &server_config::max_tunnels_per_client, 1, many},
    {"max_tunnels_per_token", &server_config::max_tunnels_per_token, 1, many},
    {"max_connections_per_ip", &server_config::max_connections_per_ip, 1, many},
    {"max_connections_per_tunnel", &server_config::max_connections_per_tunnel, 1, many},
    {"max_pending_streams", &server_config::max_pending_streams, 1, many},
    {"max_new_connections_per_second", &server_config::max_new_connections_per_second, 1, many},
    {"max_header_bytes", &server_config::max_header_bytes, 1024, 1024 * 1024},
    {"max_unauthenticated", &server_config::max_unauthenticated, 1, many},
    {"max_unauthenticated_per_ip", &server_config::max_unauthenticated_per_ip, 1, many},
    {"max_sessions_per_token", &server_config::max_sessions_per_token, 1, many},
    {"max_control_frames_per_second", &server_config::max_control_frames_per_second, 1, many},
    {"metrics_tunnel_labels", &server_config::metrics_tunnel_labels, 0, 10000},
    {"threads", &server_config::threads, 1, 64},
};

const limit_key* find_limit(std::string_view key) {
    for (const auto& l : limit_keys)
        if (l.name == key) return &l;
    return nullptr;
}

// A trusted proxy: "10.0.0.0/8", "fd00::/8" or one address, as network text ("192.168.1.7/32").
tl::expected<std::string, std::string> proxy_network(const std::string& text) {
    namespace ip = boost::asio::ip;
    const auto bad = [&](std::string_view why) {
        return tl::unexpected(fmt::format("trusted_proxies entry '{}' {}", text, why));
    };
    if (text.find('%') != std::string::npos) return bad("has a zone id; write the address alone");
    const auto slash = text.find('/');
    boost::system::error_code ec;
    const auto address = ip::make_address(text.substr(0, slash), ec);
    if (ec)
        return bad("is not an address or a network; write one like \"10.0.0.0/8\", "
                   "\"192.168.1.7\" or \"fd00::/8\"");
    if (slash == std::string::npos)
        return address.is_v4() ? ip::network_v4(address.to_v4(), 32).to_string()
                               : ip::network_v6(address.to_v6(), 128).to_string();
    std::string network;
    std::string canonical;
    if (address.is_v4()) {
        const auto n = ip::make_network_v4(text, ec);
        network = n.to_string();
        canonical = n.canonical().to_string();
    } else {
        const auto n = ip::make_network_v6(text, ec);
        network = n.to_string();
        canonical = n.canonical().to_string();
    }
    if (ec) return bad(address.is_v4() ? "has a bad prefix length (0-32)"
                                       : "has a bad prefix length (0-128)");
    // Set host bits are likely a typo for a single address or a wider net: refuse to guess.
    if (network != canonical)
        return bad(fmt::format("has bits set past its prefix; write \"{}\" for the network or "
                               "\"{}\" for one address",
                               canonical, text.substr(0, slash)));
    return network;
}

// access_log = { path = "-" or FILE, format = "json" | "combined", query = "names" | "drop" |
// "full", anonymize_ip = false }
tl::expected<observe::access_log_settings, std::string> load_access_log(const toml::node& n,
                                                                        const std::string& path) {
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(fmt::format(
            "{}: write access_log as a table: access_log = {{ path = \"/var/log/porthole/"
            "access.log\", format = \"json\" }}",
            where(path, n)));
    observe::access_log_settings s;
    for (auto&& [k, v] : *table) {
        const std::string_view key = k.str();
        const std::string at = where(path, v);
        const auto text = v.value_exact<std::string>();
        if (key == "path") {
            if (!text || text->empty())
                return tl::unexpected(fmt::format(
                    "{}: access_log.path must be a file name, or \"-\" for standard output", at));
            s.path = *text;
        } else if (key == "format") {
            if (text && *text == "json") s.format = observe::log_format::json;
            else if (text && *text == "combined") s.format = observe::log_format::combined;
            else
                return tl::unexpected(fmt::format(
                    "{}: access_log.format '{}': use \"json\" or \"combined\"", at,
                    text.value_or("?")));
        } else if (key == "query") {
            if (text && *text == "names") s.query = observe::query_logging::names;
            else if (text && *text == "drop") s.query = observe::query_logging::drop;
            else if (text && *text == "full") s.query = observe::query_logging::full;
            else
                return tl::unexpected(fmt::format(
                    "{}: access_log.query '{}': use \"names\" (parameter names without their "
                    "values), \"drop\" or \"full\"",
                    at, text.value_or("?")));
        } else if (key == "anonymize_ip") {
            const auto b = v.value_exact<bool>();
            if (!b)
                return tl::unexpected(
                    fmt::format("{}: access_log.anonymize_ip must be true or false", at));
            s.anonymize_ip = *b;
        } else {
            return tl::unexpected(unknown_key(at, key, " in access_log",
                                              {"path", "format", "query", "anonymize_ip"}));
        }
    }
    if (s.path.empty())
        return tl::unexpected(fmt::format(
            "{}: access_log needs a path: a file name, or \"-\" for standard output",
            where(path, n)));
    return s;
}

}  // namespace

tl::expected<void, std::string> load_server_file(const std::string& path, server_config& cfg) {
    return read_file(path, "config file").and_then([&](const std::string& text) {
        return load_server_text(text, path, cfg);
    });
}

tl::expected<void, std::string> load_server_text(std::string_view text, const std::string& path,
                                                 server_config& cfg) {
    auto parsed = parse_toml(text, path);
    if (!parsed) return tl::unexpected(parsed.error());
    bool sites_read = false;  // one call reads both tables
    for (auto&& entry : *parsed) {
        const std::string_view key = entry.first.str();
        const toml::node& node = entry.second;  // a named reference: clang 14 cannot capture bindings
        const std::string at = where(path, node);
        auto str = [&]() { return get<std::string>(path, key, node, "a string"); };
        auto seconds = [&]() -> tl::expected<std::chrono::seconds, std::string> {
            auto v = get<std::int64_t>(path, key, node, "a whole number of seconds");
            if (v && (*v < 1 || *v > 86400))
                return tl::unexpected(fmt::format("{}: '{}' must be 1 to 86400 seconds", at, key));
            return v.map([](std::int64_t s) { return std::chrono::seconds(s); });
        };
        tl::expected<void, std::string> result;
        if (key == "domain") {
            result = str().and_then([&](std::string v) -> tl::expected<void, std::string> {
                if (!http::valid_domain(v))
                    return tl::unexpected(fmt::format("{}: domain '{}' is not a valid DNS name", at, v));
                cfg.domain = std::move(v);
                return {};
            });
        } else if (key == "http_addr" || key == "control_addr") {
            result = str().and_then([&](std::string v) -> tl::expected<void, std::string> {
                auto ep = parse_endpoint(v);
                if (!ep) return tl::unexpected(fmt::format("{}: {}: {}", at, key, ep.error()));
                (key == "http_addr" ? cfg.http_addr : cfg.control_addr) = *ep;
                return {};
            });
        } else if (key == "tcp_ports") {
            result = str().and_then([&](std::string v) -> tl::expected<void, std::string> {
                auto r = parse_port_range(v);
                if (!r) return tl::unexpected(fmt::format("{}: tcp_ports: {}", at, r.error()));
                cfg.tcp_ports = *r;
                return {};
            });
        } else if (key == "tokens") {
            const auto* arr = node.as_array();
            if (!arr) {
                result = tl::unexpected(fmt::format("{}: 'tokens' must be an array of strings", at));
            } else {
                for (auto&& item : *arr) {
                    auto t = get<std::string>(path, "tokens", item, "an array of strings")
                                 .and_then([&](std::string v) {
                                     return protocol::parse_token_entry(v).map_error(
                                         [&](std::string e) {
                                             return fmt::format("{}: {}", where(path, item), e);
                                         });
                                 });
                    if (!t) {
                        result = tl::unexpected(t.error());
                        break;
                    }
                    cfg.tokens.push_back(*t);
                    cfg.token_origins.push_back({where(path, item), {}, false});
                }
            }
        } else if (key == "tokens_file") {
            result = str().and_then([&](std::string v) { return load_tokens_file(v, cfg); });
        } else if (key == "admin_socket") {
            result = str().map([&](std::string v) { cfg.admin_socket = std::move(v); });
        } else if (key == "admin_addr") {
            result = str().and_then([&](std::string v) -> tl::expected<void, std::string> {
                auto ep = parse_endpoint(v);
                if (!ep) return tl::unexpected(fmt::format("{}: admin_addr: {}", at, ep.error()));
                cfg.admin_addr = *ep;
                cfg.admin_addr_at = at;
                return {};
            });
        } else if (key == "admin_token") {
            result = str().and_then([&](std::string v) -> tl::expected<void, std::string> {
                auto ok = check_admin_token(v, at + ": admin_token");
                if (ok) cfg.admin_token = std::move(v);
                return ok;
            });
        } else if (key == "admin_token_file") {
            result = str().and_then([&](const std::string& v) {
                return read_admin_token_file(v, at + ": admin_token_file").map([&](std::string t) {
                    cfg.admin_token = std::move(t);
                });
            });
        } else if (key == "admin_hosts") {
            const auto* arr = node.as_array();
            if (!arr) {
                result = tl::unexpected(fmt::format(
                    "{}: 'admin_hosts' must be an array of host names, like [\"relay.example.com\"]",
                    at));
            } else {
                cfg.admin_hosts.clear();
                for (auto&& item : *arr) {
                    auto name = get<std::string>(path, "admin_hosts", item, "an array of strings");
                    if (name && !http::valid_domain(*name))
                        name = tl::unexpected(fmt::format(
                            "{}: admin_hosts entry '{}' is not a DNS name", where(path, item), *name));
                    if (!name) {
                        result = tl::unexpected(name.error());
                        break;
                    }
                    cfg.admin_hosts.push_back(*name);
                }
            }
        } else if (const limit_key* limit = find_limit(key)) {
            auto v = get<std::int64_t>(path, key, node, "a whole number");
            if (v && (*v < limit->low || *v > limit->high))
                v = tl::unexpected(fmt::format("{}: '{}' must be {} to {}", at, key, limit->low,
                                               limit->high));
            result = v.map([&](std::int64_t n) { cfg.*limit->field = static_cast<std::uint32_t>(n); });
        } else if (key == "bound_names") {
            // bound_names = { myapp = "sha256:HEX" or "the token" }
            const auto* table = node.as_table();
            if (!table) {
                result = tl::unexpected(fmt::format(
                    "{}: 'bound_names' must be a table of name = \"token or sha256:HEX\"", at));
            } else {
                for (auto&& entry : *table) {
                    const std::string name(entry.first.str());
                    const toml::node& value = entry.second;
                    auto token = get<std::string>(path, name, value, "a token or sha256:HEX")
                                     .and_then([&](std::string t) {
                                         return protocol::parse_token_entry(t).map_error(
                                             [&](std::string e) {
                                                 return fmt::format("{}: {}", where(path, value), e);
                                             });
                                     });
                    if (!token) {
                        result = tl::unexpected(token.error());
                        break;
                    }
                    auto bound = http::subdomain_from_user(name);
                    if (!bound) {
                        result = tl::unexpected(
                            fmt::format("{}: bound name {}", where(path, value), bound.error()));
                        break;
                    }
                    cfg.bound_names.emplace_back(std::move(*bound), *token);
                }
            }
        } else if (key == "custom_domains") {
            // custom_domains = { "sha256:HEX" = ["*.customer.com", "app.example.org"] }
            const auto* table = node.as_table();
            if (!table) {
                result = tl::unexpected(fmt::format(
                    "{}: 'custom_domains' must be a table of \"token, verifier:HEX or "
                    "sha256:HEX\" = [\"app.example.com\", \"*.customer.com\"]",
                    at));
            } else {
                for (auto&& entry : *table) {
                    const std::string who(entry.first.str());
                    const toml::node& value = entry.second;
                    auto token = protocol::parse_token_entry(who);
                    if (!token) {
                        result = tl::unexpected(fmt::format(
                            "{}: custom_domains: {}", where(path, value), token.error()));
                        break;
                    }
                    const auto* list = value.as_array();
                    std::vector<std::string> patterns;
                    for (std::size_t i = 0; list && i < list->size(); ++i) {
                        const auto p = (*list)[i].value_exact<std::string>();
                        const std::string bare =
                            p && p->starts_with("*.") ? p->substr(2) : p.value_or("");
                        if (!p || bare.find('.') == std::string::npos ||
                            !http::valid_domain(bare)) {
                            result = tl::unexpected(fmt::format(
                                "{}: custom_domains: '{}' is not a domain (\"app.example.com\") "
                                "or a wildcard (\"*.customer.com\")",
                                where(path, (*list)[i]), p.value_or("?")));
                            break;
                        }
                        patterns.push_back(*p);
                    }
                    if (!result) break;
                    if (!list || patterns.empty()) {
                        result = tl::unexpected(fmt::format(
                            "{}: custom_domains: give the token a list of domains",
                            where(path, value)));
                        break;
                    }
                    cfg.custom_domains.emplace_back(*token, std::move(patterns));
                }
            }
        } else if (key == "reserved_names") {
            const auto* arr = node.as_array();
            if (!arr) {
                result = tl::unexpected(
                    fmt::format("{}: 'reserved_names' must be an array of strings", at));
            } else {
                cfg.reserved_names.clear();
                for (auto&& item : *arr) {
                    auto name = get<std::string>(path, "reserved_names", item, "an array of strings");
                    if (!name) {
                        result = tl::unexpected(name.error());
                        break;
                    }
                    cfg.reserved_names.push_back(*name);
                }
            }
        } else if (key == "https_addr") {
            result = str().and_then([&](std::string v) -> tl::expected<void, std::string> {
                auto ep = parse_endpoint(v);
                if (!ep) return tl::unexpected(fmt::format("{}: https_addr: {}", at, ep.error()));
                cfg.https_addr = *ep;
                return {};
            });
        } else if (key == "tls_self_signed_dir") {
            result = str().map([&](std::string v) { cfg.tls_self_signed_dir = std::move(v); });
        } else if (key == "redirect_https") {
            auto v = node.value<bool>();
            if (v)
                cfg.redirect_https = *v;
            else
                result = tl::unexpected(fmt::format("{}: 'redirect_https' must be true or false", at));
        } else if (key == "tls_certificates") {
            // [[tls_certificates]] cert = "...", key = "..."
            const auto* arr = node.as_array();
            if (!arr || !arr->is_array_of_tables()) {
                result = tl::unexpected(fmt::format(
                    "{}: write certificates as [[tls_certificates]] tables with cert and key", at));
            } else {
                for (auto&& item : *arr) {
                    const auto& t = *item.as_table();
                    auto cert = t["cert"].value<std::string>();
                    auto key_file = t["key"].value<std::string>();
                    if (!cert || !key_file) {
                        result = tl::unexpected(fmt::format(
                            "{}: each [[tls_certificates]] needs cert and key strings",
                            where(path, item)));
                        break;
                    }
                    cfg.tls_certs.push_back(*cert);
                    cfg.tls_keys.push_back(*key_file);
                }
            }
        } else if (key == "control_tls" || key == "control_cert" || key == "control_key") {
            result = str().map([&](std::string v) {
                (key == "control_tls" ? cfg.control_tls
                 : key == "control_cert" ? cfg.control_cert
                                         : cfg.control_key) = std::move(v);
            });
        } else if (key == "sites" || key == "tcp_sites") {
            if (!sites_read) {
                result = load_sites(*parsed, path).map([&](site_set s) {
                    cfg.sites = std::move(s);
                });
                sites_read = true;
            }
        } else if (key == "tunnel_policy") {
            result = load_tunnel_policy(node, path, cfg);
        } else if (key == "trusted_proxies") {
            const auto* arr = node.as_array();
            if (!arr) {
                result = tl::unexpected(fmt::format(
                    "{}: 'trusted_proxies' must be an array of networks, like [\"10.0.0.0/8\"]",
                    at));
            } else {
                cfg.trusted_proxies.clear();
                for (auto&& item : *arr) {
                    auto net =
                        get<std::string>(path, "trusted_proxies", item, "an array of strings")
                            .and_then([&](const std::string& v) {
                                return proxy_network(v).map_error([&](std::string e) {
                                    return fmt::format("{}: {}", where(path, item), e);
                                });
                            });
                    if (!net) {
                        result = tl::unexpected(net.error());
                        break;
                    }
                    cfg.trusted_proxies.push_back(std::move(*net));
                }
            }
        } else if (key == "accept_proxy_protocol") {
            auto v = node.value_exact<bool>();
            if (v)
                cfg.accept_proxy_protocol = *v;
            else
                result = tl::unexpected(
                    fmt::format("{}: 'accept_proxy_protocol' must be true or false", at));
        } else if (key == "metrics_addr") {
            result = str().and_then([&](std::string v) -> tl::expected<void, std::string> {
                auto ep = parse_endpoint(v);
                if (!ep) return tl::unexpected(fmt::format("{}: metrics_addr: {}", at, ep.error()));
                cfg.metrics_addr = *ep;
                return {};
            });
        } else if (key == "metrics_token_file") {
            result = str().map([&](std::string v) { cfg.metrics_token_file = std::move(v); });
        } else if (key == "acme") {
            if (!cfg.acme) cfg.acme.emplace();
            result = load_acme(node, path, *cfg.acme);
        } else if (key == "cluster") {
            result = load_cluster(node, path).map([&](cluster_config c) { cfg.cluster = std::move(c); });
        } else if (key == "access_log") {
            result = load_access_log(node, path).map([&](observe::access_log_settings s) {
                cfg.access_log = std::move(s);
            });
        } else if (key == "lease_grace") {
            result = seconds().map([&](auto s) { cfg.lease_grace = s; });
        } else if (key == "shutdown_timeout") {
            result = seconds().map([&](auto s) { cfg.shutdown_timeout = s; });
        } else if (key == "header_timeout") {
            result = seconds().map([&](auto s) { cfg.header_timeout = s; });
        } else if (key == "idle_timeout") {
            result = seconds().map([&](auto s) { cfg.idle_timeout = s; });
        } else if (key == "handshake_timeout") {
            result = seconds().map([&](auto s) { cfg.handshake_timeout = s; });
        } else {
            result = tl::unexpected(unknown_key(
                at, key, "",
                {"domain", "http_addr", "control_addr", "tcp_ports", "tokens", "tokens_file",
                 "lease_grace", "shutdown_timeout", "header_timeout", "idle_timeout",
                 "handshake_timeout", "reserved_names", "max_tunnels_per_client",
                 "max_tunnels_per_token", "max_connections_per_ip", "max_connections_per_tunnel",
                 "max_pending_streams", "max_new_connections_per_second", "max_header_bytes",
                 "max_unauthenticated", "max_unauthenticated_per_ip", "max_sessions_per_token",
                 "max_control_frames_per_second", "bound_names", "custom_domains", "control_tls",
                 "control_cert",
                 "control_key", "https_addr", "tls_certificates", "tls_self_signed_dir",
                 "redirect_https", "sites", "tcp_sites", "tunnel_policy", "trusted_proxies",
                 "accept_proxy_protocol", "metrics_addr", "metrics_token_file",
                 "metrics_tunnel_labels", "access_log", "admin_socket", "admin_addr",
                 "admin_token", "admin_token_file", "admin_hosts", "acme", "cluster", "threads"}));
        }
        if (!result) return result;
    }
    return {};
}

std::optional<tokens_file_line> read_tokens_file_line(std::string_view line) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') return std::nullopt;
    line.remove_prefix(first);
    tokens_file_line out;
    // A comment after the entry, separated by white space: "verifier:HEX  # laptop, added ..."
    for (std::size_t i = 1; i < line.size(); ++i) {
        if (line[i] == '#' && (line[i - 1] == ' ' || line[i - 1] == '\t')) {
            std::string_view comment = line.substr(i + 1);
            comment = comment.substr(0, comment.find(", added "));
            const auto c0 = comment.find_first_not_of(" \t");
            const auto c1 = comment.find_last_not_of(" \t\r");
            if (c0 != std::string_view::npos)
                out.label = std::string(comment.substr(c0, c1 - c0 + 1));
            line = line.substr(0, i);
            break;
        }
    }
    const auto last = line.find_last_not_of(" \t\r");
    out.entry = std::string(line.substr(0, last + 1));
    return out;
}

tl::expected<void, std::string> load_tokens_file(const std::string& path, server_config& cfg) {
    std::ifstream in(path);
    if (!in) return tl::unexpected(fmt::format("{}: cannot open the tokens file", path));
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const auto read = read_tokens_file_line(line);
        if (!read) continue;
        auto key = protocol::parse_token_entry(read->entry);
        if (!key) return tl::unexpected(fmt::format("{}:{}: {}", path, number, key.error()));
        cfg.tokens.push_back(*key);
        cfg.token_origins.push_back({fmt::format("{}:{}", path, number), read->label, true});
    }
    cfg.tokens_file = path;
    return {};
}

std::uint32_t usable_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    return static_cast<std::uint32_t>(std::clamp(n, 1, 64));
}

std::string default_admin_socket() {
    if (const char* dir = std::getenv("RUNTIME_DIRECTORY"); dir && *dir) {
        std::string first(dir);
        first = first.substr(0, first.find(':'));  // several directories are colon-separated
        return first + "/admin.sock";
    }
    if (const char* dir = std::getenv("XDG_RUNTIME_DIR"); dir && *dir)
        return std::string(dir) + "/porthole/admin.sock";
    return {};
}

tl::expected<void, std::string> check_admin_token(const std::string& token, const std::string& at) {
    if (token.size() < 32)
        return tl::unexpected(fmt::format(
            "{} has {} characters: use at least 32 (head -c 32 /dev/urandom | base64)", at,
            token.size()));
    return {};
}

tl::expected<std::string, std::string> read_admin_token_file(const std::string& path,
                                                             const std::string& at) {
    auto text = read_file(path, "token file");
    if (!text) return tl::unexpected(fmt::format("{}: {}", at, text.error()));
    std::string token = text->substr(0, text->find('\n'));
    const auto first = token.find_first_not_of(" \t\r");
    const auto last = token.find_last_not_of(" \t\r");
    token = first == std::string::npos ? std::string() : token.substr(first, last - first + 1);
    auto ok = check_admin_token(token, fmt::format("{}: the token in {}", at, path));
    if (!ok) return tl::unexpected(ok.error());
    return token;
}

bool server_config::control_tls_enabled() const {
    return control_tls == "on" || (control_tls == "auto" && !is_loopback_host(control_addr.host));
}

namespace {

bool same_directory(const std::string& a, const std::string& b) {
    const auto normal = [](const std::string& p) {
        auto n = std::filesystem::path(p).lexically_normal();
        return n.has_filename() ? n : n.parent_path();
    };
    return normal(a) == normal(b);
}

}  // namespace

tl::expected<void, std::string> validate(const server_config& cfg) {
    // Each cache's disk tier in a directory of its own: two would evict each other's files.
    std::vector<const cache_disk_config*> disks;
    const auto add_disk = [&](const std::optional<cache_config>& c) { if (c && c->enabled && c->disk) disks.push_back(&*c->disk); };
    add_disk(cfg.tunnel_cache);
    for (const auto& s : cfg.sites.sites) {
        add_disk(s.cache);
        for (const auto& r : s.routes) add_disk(r.cache);
    }
    for (std::size_t i = 0; i < disks.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (same_directory(disks[i]->path, disks[j]->path))
                return tl::unexpected(fmt::format(
                    "{}: cache disk path {} is also the one at {}: give each cache its own "
                    "directory",
                    disks[i]->at, disks[i]->path, disks[j]->at));
    if (cfg.control_tls != "auto" && cfg.control_tls != "on" && cfg.control_tls != "off")
        return tl::unexpected(fmt::format("--control-tls '{}': use auto, on or off", cfg.control_tls));
    if (cfg.tls_certs.size() != cfg.tls_keys.size())
        return tl::unexpected(std::string("give one --tls-key for each --tls-cert, in the same order"));
    if (!cfg.https_addr && (!cfg.tls_certs.empty() || !cfg.tls_self_signed_dir.empty()))
        return tl::unexpected(std::string("certificates for visitors need --https-addr"));
    if (cfg.redirect_https && (!cfg.https_addr || (cfg.tls_certs.empty() &&
                                                   cfg.tls_self_signed_dir.empty() && !cfg.acme)))
        return tl::unexpected(std::string(
            "--redirect-https needs --https-addr with --tls-cert/--tls-key, --tls-self-signed or "
            "--acme-email"));
    if (cfg.acme && !cfg.https_addr)
        return tl::unexpected(std::string(
            "acme (--acme-email) gets certificates for visitors' HTTPS: it needs --https-addr "
            "(443 on a public relay)"));
    if (cfg.acme && (cfg.domain == "localhost" || cfg.domain.find('.') == std::string::npos))
        return tl::unexpected(fmt::format(
            "acme (--acme-email): a CA certifies only public DNS names, and --domain is '{}': "
            "set --domain to the name whose DNS points at this relay",
            cfg.domain));
    if (cfg.control_cert.empty() != cfg.control_key.empty())
        return tl::unexpected(std::string("--control-cert and --control-key go together"));
    if (!http::valid_domain(cfg.domain))
        return tl::unexpected(fmt::format("--domain '{}' is not a valid DNS name", cfg.domain));
    if (!cfg.tokens_required() && !is_loopback_host(cfg.control_addr.host))
        return tl::unexpected(fmt::format(
            "refusing to accept clients on {} without a token: pass --token or --tokens-file, "
            "or listen on 127.0.0.1",
            cfg.control_addr.to_string()));
    if (cfg.admin_addr) {
        const std::string at = cfg.admin_addr_at.empty() ? "--admin-addr" : cfg.admin_addr_at;
        if (cfg.admin_token.empty())
            return tl::unexpected(fmt::format(
                "{}: admin_addr {} needs admin_token or admin_token_file (--admin-token-file): a "
                "TCP admin port is open to everyone who reaches it",
                at, cfg.admin_addr->to_string()));
        const auto same = [&](const endpoint& e) {
            return e.port == cfg.admin_addr->port && e.host == cfg.admin_addr->host;
        };
        if (same(cfg.http_addr) || (cfg.control_enabled && same(cfg.control_addr)) ||
            (cfg.https_addr && same(*cfg.https_addr)))
            return tl::unexpected(fmt::format(
                "admin_addr {} is also {}", cfg.admin_addr->to_string(),
                same(cfg.http_addr) ? "http_addr" : cfg.https_addr && same(*cfg.https_addr)
                                                        ? "https_addr"
                                                        : "control_addr"));
    }
    if (cfg.metrics_addr && cfg.metrics_token_file.empty() &&
        !is_loopback_host(cfg.metrics_addr->host))
        return tl::unexpected(fmt::format(
            "metrics_addr {} is not loopback: set metrics_token_file (Prometheus sends it as a "
            "bearer token), or listen on 127.0.0.1",
            cfg.metrics_addr->to_string()));
    if (cfg.trusted_proxies.empty()) {
        // A PROXY header names any address its sender likes: only known balancers may send one.
        const std::string why =
            "needs trusted_proxies, the load balancers that may send a PROXY header (from anyone "
            "else it would let them claim any address): add trusted_proxies = [\"10.0.0.0/8\"]";
        if (cfg.accept_proxy_protocol)
            return tl::unexpected(fmt::format("accept_proxy_protocol {}", why));
        for (const auto& t : cfg.sites.tcp_sites)
            if (t.accept_proxy_protocol)
                return tl::unexpected(fmt::format("tcp site {}: accept_proxy_protocol {}",
                                                  t.listen.to_string(), why));
    }
    return {};
}

}  // namespace porthole::config
