#include "config/site_config.hpp"

#include "config/toml_source.hpp"
#include "http/host_route.hpp"
#include "http/token_char.hpp"
#include "http/path_route.hpp"

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>
#include "config/toml.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>

namespace porthole::config {
namespace {

using scheme = upstream_member::scheme;
using std::chrono::milliseconds;

constexpr std::string_view known_schemes = "http://, https://, tcp://, unix: or tunnel:";
constexpr std::size_t max_unix_path = 107;  // sun_path holds 108 bytes with the NUL

enum class site_kind { http, tcp };

std::optional<std::string> ip_literal(std::string_view text) {
    if (text.find('%') != std::string_view::npos) return std::nullopt;  // no zone ids in a Host
    boost::system::error_code ec;
    const auto a = boost::asio::ip::make_address(std::string(text), ec);
    if (ec) return std::nullopt;
    return a.to_string();
}

// A backend's name: DNS labels, '_' allowed as container runtimes name services with it.
bool valid_backend_host(std::string_view host) {
    if (host.empty() || host.size() > 253) return false;
    while (true) {
        const auto label = host.substr(0, host.find('.'));
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
            !std::all_of(label.begin(), label.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
            }))
            return false;
        if (label.size() == host.size()) return true;
        host.remove_prefix(label.size() + 1);
    }
}

std::optional<std::uint16_t> port_number(std::string_view s) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v == 0 || v > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(v);
}

std::string text_of(milliseconds d) {
    if (d.count() % 60000 == 0) return fmt::format("{}m", d.count() / 60000);
    if (d.count() % 1000 == 0) return fmt::format("{}s", d.count() / 1000);
    return fmt::format("{}ms", d.count());
}

using http::token_char;

// A pool's settings while its site and route tables are read: a route starts from a copy of
// its site's.
struct settings_draft {
    upstream_settings settings;
    std::string health_at;  // where health_interval or health_timeout was last set
    bool timeout_set = false;  // health_timeout given: else it follows a short health_interval
};

// The keys of one file's sites, with FILE:LINE for every node.
class site_reader {
public:
    explicit site_reader(const std::string& path) : path_(path) {}

    tl::expected<site_set, std::string> read(const toml::table& file);

private:
    std::string at(const toml::node& n) const {
        return fmt::format("{}:{}", path_, n.source().begin.line);
    }
    tl::unexpected<std::string> must_be(const toml::node& n, std::string_view key,
                                        std::string_view what) const {
        return tl::unexpected(fmt::format("{}: '{}' must be {}", at(n), key, what));
    }

    tl::expected<std::string, std::string> string(const toml::node& n, std::string_view key) const;
    tl::expected<bool, std::string> boolean(const toml::node& n, std::string_view key) const;
    tl::expected<unsigned, std::string> whole(const toml::node& n, std::string_view key,
                                              std::int64_t low, std::int64_t high) const;
    tl::expected<milliseconds, std::string> duration(const toml::node& n,
                                                     std::string_view key) const;

    tl::expected<bool, std::string> apply_setting(site_kind kind, std::string_view key,
                                                  const toml::node& n, settings_draft& d) const;
    tl::expected<void, std::string> check_settings(const settings_draft& d,
                                                   const std::string& route_at) const;
    tl::expected<std::vector<upstream_member>, std::string> members(site_kind kind,
                                                                    const toml::node& n) const;
    tl::expected<upstream_member, std::string> member(site_kind kind, const toml::node& n) const;
    tl::expected<std::vector<std::string>, std::string> hosts(const toml::node& n) const;
    tl::expected<std::string, std::string> route_path(const toml::node& n) const;

    tl::expected<site_config, std::string> site(const toml::table& t);
    tl::expected<route_config, std::string> route(const toml::table& t,
                                                  const settings_draft& defaults) const;
    tl::expected<tcp_site_config, std::string> tcp_site(const toml::table& t);

    const std::string& path_;
    std::map<std::string, std::size_t> host_lines_;  // host -> line of the site claiming it
    std::map<std::string, std::size_t> listen_lines_;
};

tl::expected<std::string, std::string> site_reader::string(const toml::node& n,
                                                           std::string_view key) const {
    if (auto v = n.value_exact<std::string>()) return *v;
    return must_be(n, key, "a string");
}

tl::expected<bool, std::string> site_reader::boolean(const toml::node& n,
                                                     std::string_view key) const {
    if (auto v = n.value_exact<bool>()) return *v;
    return must_be(n, key, "true or false");
}

tl::expected<unsigned, std::string> site_reader::whole(const toml::node& n, std::string_view key,
                                                       std::int64_t low, std::int64_t high) const {
    const auto v = n.value_exact<std::int64_t>();
    if (!v || *v < low || *v > high)
        return must_be(n, key, fmt::format("a whole number from {} to {}", low, high));
    return static_cast<unsigned>(*v);
}

// Whole seconds, or a string: "500ms", "2s", "1m", "1h".
tl::expected<milliseconds, std::string> site_reader::duration(const toml::node& n,
                                                              std::string_view key) const {
    const auto ms = duration_value(n);
    if (!ms)
        return must_be(n, key,
                       "a duration: whole seconds, or a string like \"500ms\", \"2s\" or \"1m\"");
    if (*ms < milliseconds(1)) return must_be(n, key, "from 1ms to 24h");
    return *ms;
}

// One key of a pool's settings, at a site or a route. False: not a settings key.
tl::expected<bool, std::string> site_reader::apply_setting(site_kind kind, std::string_view key,
                                                           const toml::node& n,
                                                           settings_draft& d) const {
    upstream_settings& s = d.settings;
    const bool tcp = kind == site_kind::tcp;
    if (tcp && (key == "cookie_name" || key == "health_path" || key == "health_status" ||
                key == "upstream_timeout" || key == "max_idle_per_member" || key == "ca_file"))
        return tl::unexpected(fmt::format(
            "{}: '{}' is for HTTP [[sites]], not [[tcp_sites]]{}", at(n), key,
            key == "health_path" || key == "health_status"
                ? "; a tcp site's check is a TCP connect, on when health_interval is set"
                : ""));
    tl::expected<void, std::string> done;
    if (key == "lb_policy") {
        done = string(n, key).and_then([&](const std::string& v)
                                           -> tl::expected<void, std::string> {
            const auto p = parse_lb_policy(v);
            if (!p)
                return tl::unexpected(fmt::format(
                    "{}: lb_policy '{}' is unknown; use round_robin, least_conn, random_two, "
                    "ip_hash or cookie",
                    at(n), v));
            if (tcp && *p == lb_policy::cookie)
                return tl::unexpected(fmt::format(
                    "{}: lb_policy 'cookie' needs HTTP; a tcp site may use round_robin, "
                    "least_conn, random_two or ip_hash",
                    at(n)));
            s.policy = *p;
            return {};
        });
    } else if (key == "cookie_name") {
        done = string(n, key).and_then([&](std::string v) -> tl::expected<void, std::string> {
            if (v.empty() || !std::all_of(v.begin(), v.end(), token_char))
                return tl::unexpected(fmt::format(
                    "{}: cookie_name '{}' is not a cookie name; use letters, digits and "
                    "!#$%&'*+-.^_`|~",
                    at(n), v));
            s.cookie_name = std::move(v);
            return {};
        });
    } else if (key == "health_path") {
        done = string(n, key).and_then([&](std::string v) -> tl::expected<void, std::string> {
            // It is sent in a request line: no spaces, no control characters.
            if (!v.starts_with('/') || !std::all_of(v.begin(), v.end(), [](char c) {
                    return c > ' ' && c < 0x7F;
                }))
                return tl::unexpected(fmt::format(
                    "{}: health_path '{}' must be a request path like \"/healthz\"", at(n), v));
            s.health.path = std::move(v);
            return {};
        });
    } else if (key == "health_interval" || key == "health_timeout") {
        done = duration(n, key).map([&](milliseconds v) {
            if (key == "health_interval") {
                s.health.interval = v;
                // The default timeout shrinks to half an interval shorter than itself.
                if (!d.timeout_set) s.health.timeout = std::min(health_settings{}.timeout, v / 2);
                if (tcp) s.health.active = true;
            } else {
                s.health.timeout = v;
                d.timeout_set = true;
            }
            d.health_at = at(n);
        });
    } else if (key == "health_status") {
        done = [&]() -> tl::expected<void, std::string> {
            const auto bad = [&] {
                return must_be(n, key, "a status like \"200\", \"2xx\" or \"200-399\"");
            };
            std::string v;
            if (const auto i = n.value_exact<std::int64_t>())
                v = std::to_string(*i);
            else if (const auto t = n.value_exact<std::string>())
                v = *t;
            else
                return bad();
            unsigned low = 0, high = 0;
            if (v.size() == 3 && v[0] >= '1' && v[0] <= '5' && v.substr(1) == "xx") {
                low = static_cast<unsigned>(v[0] - '0') * 100;
                high = low + 99;
            } else {
                const auto dash = v.find('-');
                const auto status = [](std::string_view t) -> std::optional<unsigned> {
                    unsigned c = 0;
                    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), c);
                    if (t.size() != 3 || ec != std::errc{} || p != t.data() + t.size() || c < 100 ||
                        c > 599)
                        return std::nullopt;
                    return c;
                };
                const auto a = status(std::string_view(v).substr(0, dash));
                const auto b = dash == std::string::npos
                                   ? a
                                   : status(std::string_view(v).substr(dash + 1));
                if (!a || !b || *a > *b) return bad();
                low = *a;
                high = *b;
            }
            s.health.expect_low = low;
            s.health.expect_high = high;
            return {};
        }();
    } else if (key == "rise" || key == "fall") {
        done = whole(n, key, 1, 100).map([&](unsigned v) {
            (key == "rise" ? s.health.rise : s.health.fall) = v;
        });
    } else if (key == "max_fails") {
        done = whole(n, key, 0, 100).map([&](unsigned v) { s.max_fails = v; });
    } else if (key == "eject_time") {
        done = duration(n, key).map([&](milliseconds v) { s.eject_time = v; });
    } else if (key == "connect_timeout") {
        done = duration(n, key).map([&](milliseconds v) { s.connect_timeout = v; });
    } else if (key == "upstream_timeout") {
        if (n.value_exact<std::string>() == "off")  // a route may turn off its site's
            s.upstream_timeout.reset();
        else
            done = duration(n, key).map([&](milliseconds v) { s.upstream_timeout = v; });
    } else if (key == "max_tries") {
        done = whole(n, key, 1, 10).map([&](unsigned v) { s.max_tries = v; });
    } else if (key == "max_idle_per_member") {
        done = whole(n, key, 0, 10000).map([&](unsigned v) { s.max_idle_per_member = v; });
    } else if (key == "ca_file") {
        done = string(n, key).and_then([&](std::string v) -> tl::expected<void, std::string> {
            if (v.empty() || !std::ifstream(v, std::ios::binary))
                return tl::unexpected(fmt::format(
                    "{}: ca_file '{}' cannot be read; give the PEM file of the CA that signs the "
                    "https backends' certificates",
                    at(n), v));
            s.ca_file = std::move(v);
            return {};
        });
    } else if (key == "send_proxy_protocol") {
        done = string(n, key).and_then([&](const std::string& v)
                                           -> tl::expected<void, std::string> {
            if (v == "off")
                s.send_proxy_protocol = proxy_protocol::off;
            else if (v == "v1")
                s.send_proxy_protocol = proxy_protocol::v1;
            else if (v == "v2")
                s.send_proxy_protocol = proxy_protocol::v2;
            else
                return tl::unexpected(fmt::format(
                    "{}: send_proxy_protocol '{}' is unknown; use \"off\", \"v1\" or \"v2\"", at(n),
                    v));
            return {};
        });
    } else {
        return false;
    }
    if (!done) return tl::unexpected(done.error());
    return true;
}

tl::expected<void, std::string> site_reader::check_settings(const settings_draft& d,
                                                            const std::string& route_at) const {
    const auto& h = d.settings.health;
    if (h.timeout >= h.interval)
        return tl::unexpected(fmt::format(
            "{}: health_timeout ({}) must be shorter than health_interval ({}); a check ends "
            "before the next begins",
            d.health_at.empty() ? route_at : d.health_at, text_of(h.timeout), text_of(h.interval)));
    if (d.settings.members.empty())
        return tl::unexpected(fmt::format(
            "{}: this route has no upstream; add upstream = [\"http://HOST:PORT\"]", route_at));
    return {};
}

tl::expected<upstream_member, std::string> site_reader::member(site_kind kind,
                                                               const toml::node& n) const {
    std::optional<std::string> url;
    std::uint32_t weight = 1;
    if (const auto* t = n.as_table()) {
        for (auto&& [k, v] : *t) {
            const std::string_view key = k.str();
            if (key == "url") {
                auto s = string(v, key);
                if (!s) return tl::unexpected(s.error());
                url = *s;
            } else if (key == "weight") {
                auto w = whole(v, key, 1, 1000);
                if (!w) return tl::unexpected(w.error());
                weight = *w;
            } else {
                return tl::unexpected(
                    unknown_key(at(v), key, " in an upstream member", {"url", "weight"}));
            }
        }
        if (!url)
            return tl::unexpected(fmt::format(
                "{}: an upstream member table needs url, like {{ url = \"http://HOST:PORT\", "
                "weight = 2 }}",
                at(n)));
    } else if (auto s = n.value_exact<std::string>()) {
        url = *s;
    } else {
        return must_be(n, "upstream", "member URLs or { url = \"...\", weight = N } tables");
    }
    auto m = parse_member(*url);
    if (!m) return tl::unexpected(fmt::format("{}: upstream {}", at(n), m.error()));
    m->weight = weight;
    if (kind == site_kind::http && m->kind == scheme::tcp)
        return tl::unexpected(fmt::format(
            "{}: upstream '{}': tcp:// members are for [[tcp_sites]]; an HTTP site's members are "
            "http://, https://, unix: or tunnel:",
            at(n), *url));
    if (kind == site_kind::tcp && (m->kind == scheme::http || m->kind == scheme::https))
        return tl::unexpected(fmt::format(
            "{}: upstream '{}' is an HTTP backend; a [[tcp_sites]] member is tcp://HOST:PORT or "
            "unix:/PATH",
            at(n), *url));
    if (kind == site_kind::tcp && m->kind == scheme::tunnel)
        return tl::unexpected(fmt::format(
            "{}: upstream '{}': tunnel: members are for HTTP sites; a TCP tunnel is reached on "
            "its own port (porthole tcp PORT --remote-port N)",
            at(n), *url));
    return m;
}

tl::expected<std::vector<upstream_member>, std::string> site_reader::members(
    site_kind kind, const toml::node& n) const {
    std::vector<upstream_member> out;
    const auto* arr = n.as_array();
    if (!arr) {
        if (!n.is_string())
            return must_be(n, "upstream", "an array of members, like [\"http://10.0.0.5:8080\"]");
        auto m = member(kind, n);
        if (!m) return tl::unexpected(m.error());
        out.push_back(std::move(*m));
        return out;
    }
    if (arr->empty())
        return tl::unexpected(fmt::format(
            "{}: 'upstream' is empty; give at least one member, like [\"http://10.0.0.5:8080\"]",
            at(n)));
    for (auto&& item : *arr) {
        auto m = member(kind, item);
        if (!m) return tl::unexpected(m.error());
        const auto same = std::find_if(out.begin(), out.end(), [&](const upstream_member& o) {
            return o.kind == m->kind && o.host == m->host && o.port == m->port;
        });
        if (same != out.end())
            return tl::unexpected(fmt::format(
                "{}: upstream '{}' is the same member as '{}'; list it once and give it a weight",
                at(item), m->url, same->url));
        out.push_back(std::move(*m));
    }
    return out;
}

tl::expected<std::vector<std::string>, std::string> site_reader::hosts(const toml::node& n) const {
    const auto* arr = n.as_array();
    if (!arr) return must_be(n, "hosts", "an array of host names, like [\"shop.example.com\"]");
    std::vector<std::string> out;
    for (auto&& item : *arr) {
        const auto text = item.value_exact<std::string>();
        if (!text) return must_be(item, "hosts", "an array of host names (strings)");
        std::string host = http::lowercase(*text);
        if (host.ends_with('.')) host.pop_back();
        const auto bad = [&](std::string_view why) {
            return tl::unexpected(fmt::format(
                "{}: host '{}' {}; a host is a name like shop.example.com, a wildcard like "
                "*.example.com or an IP address",
                at(item), *text, why));
        };
        if (host.starts_with('[') && host.ends_with(']')) {
            const auto ip = ip_literal(std::string_view(host).substr(1, host.size() - 2));
            if (!ip || ip->find(':') == std::string::npos) return bad("is not an IPv6 address");
            host = *ip;
        } else if (const auto ip = ip_literal(host)) {
            host = *ip;
        } else if (*text == "*") {
            // every Host no other site has (route_table::find_site tries it last)
        } else if (host.starts_with("*.")) {
            const std::string_view rest = std::string_view(host).substr(2);
            if (!http::valid_domain(rest) || ip_literal(rest))
                return bad("is not a wildcard: '*.' and then a DNS name");
        } else if (host.find(':') != std::string::npos && host.find(':') == host.rfind(':')) {
            return tl::unexpected(fmt::format(
                "{}: host '{}' has a port; write the name alone, a site answers it on every "
                "listener",
                at(item), *text));
        } else if (host.find('*') != std::string::npos) {
            return bad("has a '*' that is not one leading \"*.\"");
        } else if (!http::valid_domain(host)) {
            return bad("is not a DNS name");
        }
        if (std::find(out.begin(), out.end(), host) != out.end())
            return tl::unexpected(
                fmt::format("{}: host '{}' is listed twice in this site", at(item), host));
        out.push_back(std::move(host));
    }
    if (out.empty())
        return tl::unexpected(fmt::format(
            "{}: 'hosts' is empty; a site needs at least one, like [\"shop.example.com\"]", at(n)));
    return out;
}

// A route's prefix, normalized: no trailing slash; "/" is every path, written "".
tl::expected<std::string, std::string> site_reader::route_path(const toml::node& n) const {
    auto text = string(n, "path");
    if (!text) return text;
    const std::string& p = *text;
    const auto bad = [&](std::string_view why) {
        return tl::unexpected(fmt::format("{}: path '{}' {}", at(n), p, why));
    };
    if (!p.starts_with('/')) return bad("must start with '/', like \"/api\"");
    if (p.find_first_of("?#") != std::string::npos)
        return bad("has a query; a route matches the request's path alone");
    if (!http::valid_path_prefix(p)) return bad("has a space or a control character");
    for (std::size_t start = 1; start <= p.size();) {
        const auto end = std::min(p.find('/', start), p.size());
        const std::string_view segment = std::string_view(p).substr(start, end - start);
        if (segment == ".." || segment == ".")
            return bad("has a '.' or '..' segment; write the path as requests reach it");
        start = end + 1;
    }
    std::string out = p;
    while (out.size() > 1 && out.ends_with('/')) out.pop_back();
    if (out == "/") out.clear();
    return out;
}

tl::expected<route_config, std::string> site_reader::route(const toml::table& t,
                                                           const settings_draft& defaults) const {
    route_config r;
    r.line = t.source().begin.line;
    settings_draft d = defaults;
    for (auto&& [k, v] : t) {
        const std::string_view key = k.str();
        const toml::node& node = v;
        tl::expected<void, std::string> done;
        if (key == "path") {
            done = route_path(node).map([&](std::string p) { r.path = std::move(p); });
        } else if (key == "strip_prefix") {
            done = boolean(node, key).map([&](bool b) { r.strip_prefix = b; });
        } else if (key == "upstream") {
            done = members(site_kind::http, node).map([&](auto m) {
                d.settings.members = std::move(m);
            });
        } else if (key == "hosts") {
            done = tl::unexpected(fmt::format(
                "{}: 'hosts' belongs to the [[sites]] table, not to one of its routes", at(node)));
        } else if (key == "cache") {
            done = load_cache(node, path_, "cache").map([&](auto c) { r.cache = c; });
        } else if (key == "policies") {
            done = load_policies(node, path_, "sites.routes.policies").map([&](auto p) {
                r.policies = std::move(p);
            });
        } else {
            auto applied = apply_setting(site_kind::http, key, node, d);
            if (!applied) return tl::unexpected(applied.error());
            if (!*applied)
                done = tl::unexpected(unknown_key(
                    at(node), key, " in [[sites.routes]]",
                    {"path", "strip_prefix", "upstream", "policies", "cache", "lb_policy",
                     "cookie_name",
                     "health_path",
                     "health_interval", "health_timeout", "health_status", "rise", "fall",
                     "max_fails", "eject_time", "connect_timeout", "upstream_timeout", "max_tries",
                     "max_idle_per_member", "ca_file", "send_proxy_protocol"}));
        }
        if (!done) return tl::unexpected(done.error());
    }
    auto checked = check_settings(d, fmt::format("{}:{}", path_, r.line));
    if (!checked) return tl::unexpected(checked.error());
    r.upstream = std::move(d.settings);
    return r;
}

tl::expected<site_config, std::string> site_reader::site(const toml::table& t) {
    site_config s;
    s.line = t.source().begin.line;
    const std::string site_at = fmt::format("{}:{}", path_, s.line);
    settings_draft defaults;
    bool has_hosts = false;
    for (auto&& [k, v] : t) {
        const std::string_view key = k.str();
        const toml::node& node = v;
        tl::expected<void, std::string> done;
        if (key == "routes") {
            continue;  // after the defaults they inherit
        } else if (key == "hosts") {
            done = hosts(node).map([&](auto h) { s.hosts = std::move(h); });
            has_hosts = true;
        } else if (key == "policies") {
            done = load_policies(node, path_, "sites.policies").map([&](auto p) {
                s.policies = std::move(p);
            });
        } else if (key == "error_pages") {
            done = load_error_pages(node, path_).map([&](auto p) { s.pages = std::move(p); });
        } else if (key == "cache") {
            done = load_cache(node, path_, "cache").map([&](auto c) { s.cache = c; });
        } else if (key == "upstream") {
            done = members(site_kind::http, node).map([&](auto m) {
                defaults.settings.members = std::move(m);
            });
        } else if (key == "path" || key == "strip_prefix") {
            done = tl::unexpected(fmt::format(
                "{}: '{}' belongs to a [[sites.routes]] table; a site-level upstream serves every "
                "path",
                at(node), key));
        } else if (key == "accept_proxy_protocol") {
            done = tl::unexpected(fmt::format(
                "{}: accept_proxy_protocol for HTTP sites is one top-level key for the HTTP and "
                "HTTPS listeners, not a [[sites]] key",
                at(node)));
        } else {
            auto applied = apply_setting(site_kind::http, key, node, defaults);
            if (!applied) return tl::unexpected(applied.error());
            if (!*applied)
                done = tl::unexpected(unknown_key(
                    at(node), key, " in [[sites]]",
                    {"hosts", "routes", "upstream", "policies", "error_pages", "cache",
                     "lb_policy",
                     "cookie_name",
                     "health_path",
                     "health_interval", "health_timeout", "health_status", "rise", "fall",
                     "max_fails", "eject_time", "connect_timeout", "upstream_timeout", "max_tries",
                     "max_idle_per_member", "ca_file", "send_proxy_protocol"}));
        }
        if (!done) return tl::unexpected(done.error());
    }
    if (!has_hosts)
        return tl::unexpected(fmt::format(
            "{}: this site has no hosts; add hosts = [\"shop.example.com\"]", site_at));

    if (const auto* routes = t.get("routes")) {
        const auto* arr = routes->as_array();
        if (!arr || !arr->is_array_of_tables() || arr->empty())
            return tl::unexpected(fmt::format(
                "{}: write a site's routes as [[sites.routes]] tables", at(*routes)));
        for (auto&& item : *arr) {
            auto r = route(*item.as_table(), defaults);
            if (!r) return tl::unexpected(r.error());
            for (const auto& earlier : s.routes) {
                const bool shadowed =
                    earlier.path.empty() || r->path == earlier.path ||
                    (r->path.size() > earlier.path.size() && r->path.starts_with(earlier.path) &&
                     r->path[earlier.path.size()] == '/');
                if (shadowed)
                    return tl::unexpected(fmt::format(
                        "{}:{}: this route can never match: the route at line {} ({}) takes "
                        "every request it would get; put the more specific route first",
                        path_, r->line, earlier.line,
                        earlier.path.empty() ? std::string("no path: every request")
                                             : fmt::format("path \"{}\"", earlier.path)));
            }
            s.routes.push_back(std::move(*r));
        }
    } else if (!defaults.settings.members.empty()) {
        auto checked = check_settings(defaults, site_at);
        if (!checked) return tl::unexpected(checked.error());
        s.routes.push_back(route_config{"", false, std::move(defaults.settings), s.line, {}});
    } else {
        return tl::unexpected(fmt::format(
            "{}: this site has no upstream; add upstream = [\"http://HOST:PORT\"] or "
            "[[sites.routes]] tables",
            site_at));
    }

    for (const auto& h : s.hosts) {
        const auto [claimed, fresh] = host_lines_.emplace(h, s.line);
        if (!fresh)
            return tl::unexpected(fmt::format(
                "{}: host '{}' is claimed by the site at line {} and by this one at line {}; "
                "give each host to one site",
                site_at, h, claimed->second, s.line));
    }
    return s;
}

tl::expected<tcp_site_config, std::string> site_reader::tcp_site(const toml::table& t) {
    tcp_site_config s;
    s.line = t.source().begin.line;
    const std::string site_at = fmt::format("{}:{}", path_, s.line);
    settings_draft d;
    bool has_listen = false;
    for (auto&& [k, v] : t) {
        const std::string_view key = k.str();
        const toml::node& node = v;
        tl::expected<void, std::string> done;
        if (key == "listen") {
            done = string(node, key).and_then([&](const std::string& text)
                                                  -> tl::expected<void, std::string> {
                auto ep = parse_endpoint(text);
                if (!ep) return tl::unexpected(fmt::format("{}: listen: {}", at(node), ep.error()));
                s.listen = *ep;
                return {};
            });
            has_listen = true;
        } else if (key == "upstream") {
            done = members(site_kind::tcp, node).map([&](auto m) {
                d.settings.members = std::move(m);
            });
        } else if (key == "accept_proxy_protocol") {
            done = boolean(node, key).map([&](bool b) { s.accept_proxy_protocol = b; });
        } else if (key == "hosts" || key == "routes" || key == "path") {
            done = tl::unexpected(fmt::format(
                "{}: '{}' is for HTTP [[sites]]; a tcp site is chosen by its listen address alone",
                at(node), key));
        } else if (key == "policies") {
            done = tl::unexpected(fmt::format(
                "{}: policies judge HTTP requests; they are for [[sites]], not [[tcp_sites]]",
                at(node)));
        } else {
            auto applied = apply_setting(site_kind::tcp, key, node, d);
            if (!applied) return tl::unexpected(applied.error());
            if (!*applied)
                done = tl::unexpected(unknown_key(
                    at(node), key, " in [[tcp_sites]]",
                    {"listen", "upstream", "lb_policy", "health_interval", "health_timeout", "rise",
                     "fall", "max_fails", "eject_time", "connect_timeout", "max_tries",
                     "accept_proxy_protocol", "send_proxy_protocol"}));
        }
        if (!done) return tl::unexpected(done.error());
    }
    if (!has_listen)
        return tl::unexpected(fmt::format(
            "{}: this tcp site has no listen address; add listen = \"0.0.0.0:PORT\"", site_at));
    if (d.settings.members.empty())
        return tl::unexpected(fmt::format(
            "{}: this tcp site has no upstream; add upstream = [\"tcp://HOST:PORT\"]", site_at));
    auto checked = check_settings(d, site_at);
    if (!checked) return tl::unexpected(checked.error());
    if (s.listen.port != 0) {  // port 0: each binds its own free port
        const auto [taken, fresh] = listen_lines_.emplace(s.listen.to_string(), s.line);
        if (!fresh)
            return tl::unexpected(fmt::format(
                "{}: listen address {} is taken by the tcp site at line {}; give each tcp site "
                "its own address",
                site_at, s.listen.to_string(), taken->second));
    }
    s.upstream = std::move(d.settings);
    return s;
}

tl::expected<site_set, std::string> site_reader::read(const toml::table& file) {
    site_set out;
    if (const auto* sites = file.get("sites")) {
        const auto* arr = sites->as_array();
        if (!arr || !arr->is_array_of_tables())
            return tl::unexpected(fmt::format(
                "{}: write sites as [[sites]] tables with hosts and upstream", at(*sites)));
        for (auto&& item : *arr) {
            auto s = site(*item.as_table());
            if (!s) return tl::unexpected(s.error());
            out.sites.push_back(std::move(*s));
        }
    }
    if (const auto* tcp_sites = file.get("tcp_sites")) {
        const auto* arr = tcp_sites->as_array();
        if (!arr || !arr->is_array_of_tables())
            return tl::unexpected(fmt::format(
                "{}: write tcp sites as [[tcp_sites]] tables with listen and upstream",
                at(*tcp_sites)));
        for (auto&& item : *arr) {
            auto s = tcp_site(*item.as_table());
            if (!s) return tl::unexpected(s.error());
            out.tcp_sites.push_back(std::move(*s));
        }
    }
    return out;
}

}  // namespace

std::string_view to_string(lb_policy p) {
    switch (p) {
        case lb_policy::round_robin: return "round_robin";
        case lb_policy::least_conn: return "least_conn";
        case lb_policy::random_two: return "random_two";
        case lb_policy::ip_hash: return "ip_hash";
        case lb_policy::cookie: return "cookie";
    }
    return "round_robin";
}

std::optional<lb_policy> parse_lb_policy(std::string_view text) {
    for (const auto p : {lb_policy::round_robin, lb_policy::least_conn, lb_policy::random_two,
                         lb_policy::ip_hash, lb_policy::cookie})
        if (to_string(p) == text) return p;
    return std::nullopt;
}

tl::expected<upstream_member, std::string> parse_member(std::string_view url) {
    const auto bad = [&](std::string_view why) {
        return tl::unexpected(fmt::format("'{}': {}", url, why));
    };
    upstream_member m;
    m.url = std::string(url);
    if (url.starts_with("unix:")) {
        const std::string_view socket = url.substr(5);
        if (socket.starts_with("//"))
            return bad("a unix socket is written with one slash, like unix:/run/app.sock");
        if (!socket.starts_with('/') || socket.size() < 2)
            return bad("a unix socket path is absolute, like unix:/run/app.sock");
        if (socket.size() > max_unix_path)
            return bad(fmt::format("the socket path is longer than the {} bytes a unix address "
                                   "holds",
                                   max_unix_path));
        if (std::any_of(socket.begin(), socket.end(),
                        [](char c) { return static_cast<unsigned char>(c) < ' '; }))
            return bad("the socket path has a control character");
        m.kind = scheme::unix_socket;
        m.host = std::string(socket);
        return m;
    }
    if (url.starts_with("tunnel:")) {
        auto name = http::subdomain_from_user(url.substr(7));
        if (!name)
            return bad(fmt::format("{}; a tunnel member is tunnel:NAME, like tunnel:shop",
                                   name.error()));
        m.kind = scheme::tunnel;
        m.host = std::move(*name);
        return m;
    }
    const auto sep = url.find("://");
    if (sep == std::string_view::npos)
        return bad(fmt::format("no scheme; a member starts with {}", known_schemes));
    const std::string scheme_name = http::lowercase(url.substr(0, sep));
    if (scheme_name == "http")
        m.kind = scheme::http;
    else if (scheme_name == "https")
        m.kind = scheme::https;
    else if (scheme_name == "tcp")
        m.kind = scheme::tcp;
    else
        return bad(fmt::format("unknown scheme '{}'; a member starts with {}", scheme_name,
                               known_schemes));
    std::string_view authority = url.substr(sep + 3);
    if (m.kind != scheme::tcp && authority.ends_with('/')) authority.remove_suffix(1);
    if (authority.find_first_of("/?#") != std::string_view::npos)
        return bad("a member is an address without a path: the route's path is the request's "
                   "(set strip_prefix to drop the route's prefix)");
    if (authority.find('@') != std::string_view::npos)
        return bad("a member may not carry a user name or password (user@host)");
    std::string_view host = authority;
    std::string_view port;
    bool has_port = false;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return bad("an IPv6 host is written [::1]");
        host = authority.substr(1, close - 1);
        const std::string_view rest = authority.substr(close + 1);
        if (!rest.empty() && !rest.starts_with(':'))
            return bad("after an IPv6 host in brackets comes :PORT or nothing");
        has_port = !rest.empty();
        port = has_port ? rest.substr(1) : rest;
        const auto ip = ip_literal(host);
        if (!ip || ip->find(':') == std::string::npos)
            return bad(fmt::format("'{}' is not an IPv6 address", host));
        m.host = *ip;
    } else {
        const auto colon = authority.find(':');
        if (colon != std::string_view::npos &&
            authority.find(':', colon + 1) != std::string_view::npos)
            return bad("write an IPv6 host in brackets, like http://[::1]:8080");
        host = authority.substr(0, colon);
        has_port = colon != std::string_view::npos;
        if (has_port) port = authority.substr(colon + 1);
        m.host = http::lowercase(host);
        if (m.host.empty()) return bad("no host");
        if (!valid_backend_host(m.host))
            return bad(fmt::format("'{}' is not a host name or an IP address", host));
    }
    if (has_port) {
        const auto p = port_number(port);
        if (!p) return bad(fmt::format("'{}' is not a port (1-65535)", port));
        m.port = *p;
    } else if (m.kind == scheme::tcp) {
        return bad("a tcp:// member needs a port, like tcp://10.0.0.9:5432");
    } else {
        m.port = m.kind == scheme::https ? 443 : 80;
    }
    return m;
}

tl::expected<site_set, std::string> load_sites(const toml::table& file, const std::string& path) {
    return site_reader(path).read(file);
}

}  // namespace porthole::config
