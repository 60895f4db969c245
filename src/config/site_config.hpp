#pragma once
// The reverse-proxy half of the relay's config: [[sites]] (HTTP, by host and path) and
// [[tcp_sites]] (L4, by listening address), each route ending in an upstream pool of members:
// http:// and https:// backends, unix: sockets and tunnel:NAME (the clients holding that name).
#include "config/cache_config.hpp"
#include "config/endpoint.hpp"
#include "config/error_pages.hpp"
#include "config/policy_config.hpp"

#include <tl/expected.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace porthole::config {

enum class lb_policy { round_robin, least_conn, random_two, ip_hash, cookie };
std::string_view to_string(lb_policy p);
std::optional<lb_policy> parse_lb_policy(std::string_view text);

struct upstream_member {
    enum class scheme { http, https, tcp, unix_socket, tunnel };
    scheme kind = scheme::http;
    std::string host;  // http, https, tcp: a name or an IP literal (no brackets); unix: the
                       // socket path; tunnel: the tunnel name
    std::uint16_t port = 0;  // http, https (80 / 443 when the URL has none), tcp (required)
    std::uint32_t weight = 1;  // 1..1000
    std::string url;  // as written, for logs and pages
    bool operator==(const upstream_member&) const = default;
};

// "http://10.0.0.5:8080", "https://app.internal:8443", "tcp://10.0.0.9:6379",
// "unix:/run/app.sock", "tunnel:shop".
// A path after the authority is refused (the route's path is the request's).
tl::expected<upstream_member, std::string> parse_member(std::string_view url);

enum class proxy_protocol { off, v1, v2 };

struct health_settings {
    std::string path;  // active HTTP check of backends; empty: none (tcp sites: a connect)
    bool active = false;  // tcp sites: health_interval set turns the connect check on
    std::chrono::milliseconds interval{5000};
    std::chrono::milliseconds timeout{2000};
    unsigned expect_low = 200, expect_high = 399;  // expected status, "200" or "2xx" or "200-399"
    unsigned rise = 2;  // consecutive successes that bring an ejected member back
    unsigned fall = 3;  // consecutive failures that eject it
};

struct upstream_settings {
    std::vector<upstream_member> members;
    lb_policy policy = lb_policy::round_robin;
    std::string cookie_name = "porthole_upstream";  // lb_policy = "cookie"
    health_settings health;
    // Passive ejection, every member kind: this many consecutive connect failures or 5xx
    // answers eject a member for `eject_time`, doubling each time it is ejected again (at most
    // 32 times as long); a success resets both.
    unsigned max_fails = 3;  // 0: never eject
    std::chrono::milliseconds eject_time{10000};
    std::chrono::milliseconds connect_timeout{5000};
    std::optional<std::chrono::milliseconds> upstream_timeout;  // off: responses may stream forever
    unsigned max_tries = 3;  // members tried for one request, the first included
    // Kept-alive connections to one backend: more than the concurrent requests it gets, or each
    // request over the cap closes its connection and a later one opens another (at 64
    // concurrent requests and a cap of 32, 3 in 10 requests paid a connect and a close).
    std::uint32_t max_idle_per_member = 256;
    std::string ca_file;  // https members: verified against this PEM; empty: the system store
    proxy_protocol send_proxy_protocol = proxy_protocol::off;
};

struct route_config {
    std::string path;  // whole-segment prefix; empty: every path
    bool strip_prefix = false;
    upstream_settings upstream;
    std::size_t line = 0;  // where the route starts in its file, for later checks
    std::vector<policy_config> policies;  // [[sites.routes.policies]], after the site's
    std::optional<cache_config> cache{};  // its own cache; else the site's, if any
};

struct site_config {
    std::vector<std::string> hosts;  // lowercased; "*.example.com" wildcards
    std::vector<route_config> routes;
    std::size_t line = 0;
    std::vector<policy_config> policies;  // [[sites.policies]]: every route's, first
    error_pages pages{};  // error_pages: bodies for the relay's own answers, by status
    std::optional<cache_config> cache{};  // one cache every route without its own shares
};

struct tcp_site_config {
    endpoint listen;
    upstream_settings upstream;  // tcp:// and unix: members: http, https and tunnel: ones are
                                 // refused
    bool accept_proxy_protocol = false;
    std::size_t line = 0;
};

struct site_set {
    std::vector<site_config> sites;
    std::vector<tcp_site_config> tcp_sites;
};

// Reads the `sites` and `tcp_sites` arrays of a parsed relay config file (other keys are the
// caller's). Errors name FILE:LINE and a fix: an unknown member scheme, an unknown key, a
// route that can never match (it follows one with the same or a shorter prefix of its path),
// a host claimed by two sites, a bad lb_policy.
tl::expected<site_set, std::string> load_sites(const toml::table& file, const std::string& path);

}  // namespace porthole::config
