#include "config/site_config.hpp"

#include "config/server_config.hpp"
#include "config/toml_source.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace porthole::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using scheme = upstream_member::scheme;

const std::string file = "sites.toml";

// Line 1 is the line after R"( so line numbers in the tests read off the literal.
std::string_view body(std::string_view text) {
    if (text.starts_with('\n')) text.remove_prefix(1);
    return text;
}

tl::expected<site_set, std::string> load(std::string_view text) {
    auto parsed = parse_toml(body(text), file);
    if (!parsed) return tl::unexpected(parsed.error());
    return load_sites(*parsed, file);
}

// The error of a config that must fail, checked to start with FILE:LINE.
std::string error_at(std::string_view text, int line) {
    auto r = load(text);
    if (r) {
        ADD_FAILURE() << "loaded, expected an error at line " << line << ":\n" << body(text);
        return {};
    }
    const std::string prefix = file + ":" + std::to_string(line) + ": ";
    EXPECT_TRUE(r.error().starts_with(prefix)) << "expected " << prefix << " in: " << r.error();
    return r.error();
}

void expect_contains(const std::string& text, const std::string& part) {
    EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

std::string temp_file(const std::string& name, std::string_view content) {
    const fs::path path =
        fs::path(testing::TempDir()) / ("porthole_site_" + std::to_string(::getpid()) + name);
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
}

upstream_member member(std::string_view url) {
    auto m = parse_member(url);
    EXPECT_TRUE(m) << url << ": " << m.error();
    return m ? *m : upstream_member{};
}

std::string member_error(std::string_view url) {
    auto m = parse_member(url);
    EXPECT_FALSE(m) << url << " parsed";
    return m ? std::string() : m.error();
}

// parse_member

TEST(SiteMember, EveryScheme) {
    EXPECT_EQ(member("http://10.0.0.5:8080"),
              (upstream_member{scheme::http, "10.0.0.5", 8080, 1, "http://10.0.0.5:8080"}));
    EXPECT_EQ(member("http://App.Internal"),
              (upstream_member{scheme::http, "app.internal", 80, 1, "http://App.Internal"}));
    EXPECT_EQ(member("https://app.internal:8443"),
              (upstream_member{scheme::https, "app.internal", 8443, 1,
                               "https://app.internal:8443"}));
    EXPECT_EQ(member("https://app.internal").port, 443);
    EXPECT_EQ(member("http://web_1:3000/").host, "web_1");  // a trailing slash is no path
    EXPECT_EQ(member("tcp://10.0.0.9:6379"),
              (upstream_member{scheme::tcp, "10.0.0.9", 6379, 1, "tcp://10.0.0.9:6379"}));
    EXPECT_EQ(member("unix:/run/app.sock"),
              (upstream_member{scheme::unix_socket, "/run/app.sock", 0, 1, "unix:/run/app.sock"}));
    EXPECT_EQ(member("tunnel:shop-preview"),
              (upstream_member{scheme::tunnel, "shop-preview", 0, 1, "tunnel:shop-preview"}));
}

TEST(SiteMember, Ipv6InBrackets) {
    const auto m = member("http://[::1]:8080");
    EXPECT_EQ(m.host, "::1");
    EXPECT_EQ(m.port, 8080);
    EXPECT_EQ(member("https://[FD00:0::7]").host, "fd00::7");
    EXPECT_EQ(member("https://[fd00::7]").port, 443);
    EXPECT_EQ(member("tcp://[2001:db8::1]:5432").host, "2001:db8::1");
}

TEST(SiteMember, UnknownSchemeIsNamedWithTheKnownOnes) {
    const auto e = member_error("ftp://files:21");
    expect_contains(e, "'ftp'");
    for (const char* known : {"http://", "https://", "tcp://", "unix:", "tunnel:"})
        expect_contains(e, known);
    expect_contains(member_error("10.0.0.5:8080"), "no scheme");
}

TEST(SiteMember, PathAfterTheAuthorityPointsAtStripPrefix) {
    const auto e = member_error("http://h:1/x");
    expect_contains(e, "path");
    expect_contains(e, "strip_prefix");
    member_error("http://h:1?x=1");
    member_error("tcp://h:1/");
}

TEST(SiteMember, Rejects) {
    expect_contains(member_error("http://user:pw@h:1"), "user");
    expect_contains(member_error("http://:8080"), "no host");
    expect_contains(member_error("http://"), "no host");
    expect_contains(member_error("http://h:0"), "port");
    expect_contains(member_error("http://h:65536"), "port");
    expect_contains(member_error("http://h:http"), "port");
    expect_contains(member_error("http://h:"), "port");
    expect_contains(member_error("tcp://10.0.0.9"), "needs a port");
    expect_contains(member_error("unix:run/app.sock"), "absolute");
    expect_contains(member_error("unix://run/app.sock"), "one slash");
    expect_contains(member_error("unix:/" + std::string(200, 'a')), "longer");
    expect_contains(member_error("tunnel:Shop"), "a tunnel member is tunnel:NAME");
    expect_contains(member_error("tunnel:a.b"), "a tunnel member is tunnel:NAME");
    expect_contains(member_error("tunnel:"), "a tunnel member is tunnel:NAME");
    expect_contains(member_error("http://::1:8080"), "brackets");
    expect_contains(member_error("http://[10.0.0.1]:80"), "IPv6");
    expect_contains(member_error("http://[::1"), "IPv6");
    expect_contains(member_error("http://[::1]x"), ":PORT");
    expect_contains(member_error("http://bad host"), "host");
}

TEST(SiteMember, LbPolicyNames) {
    for (const auto p : {lb_policy::round_robin, lb_policy::least_conn, lb_policy::random_two,
                         lb_policy::ip_hash, lb_policy::cookie})
        EXPECT_EQ(parse_lb_policy(to_string(p)), p);
    EXPECT_EQ(to_string(lb_policy::least_conn), "least_conn");
    EXPECT_FALSE(parse_lb_policy("roundrobin"));
    EXPECT_FALSE(parse_lb_policy(""));
}

// A complete file

TEST(SiteConfig, EveryKey) {
    const std::string ca = temp_file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    const std::string text = R"(
[[sites]]
hosts = ["Shop.Example.com.", "*.shop.example.com", "10.1.2.3", "[::1]"]
lb_policy = "least_conn"
health_interval = "10s"
max_tries = 2
[[sites.routes]]
path = "/api/"
strip_prefix = true
upstream = ["http://10.0.0.5:8080", { url = "http://10.0.0.6:8080", weight = 3 }]
lb_policy = "cookie"
cookie_name = "shop_backend"
health_path = "/healthz"
health_interval = 3
health_timeout = "500ms"
health_status = "2xx"
rise = 4
fall = 5
max_fails = 6
eject_time = "1m"
connect_timeout = "2s"
upstream_timeout = "30s"
max_tries = 4
max_idle_per_member = 0
ca_file = ")" + ca + R"("
send_proxy_protocol = "v2"
[[sites.routes]]
upstream = ["tunnel:shop-preview", "https://10.0.0.7:8443", "unix:/run/app.sock"]

[[tcp_sites]]
listen = "0.0.0.0:5432"
upstream = ["tcp://10.0.0.9:5432", { url = "unix:/run/pg.sock", weight = 2 }]
lb_policy = "ip_hash"
health_interval = "2s"
health_timeout = "1s"
rise = 1
fall = 2
max_fails = 7
eject_time = 20
connect_timeout = "750ms"
max_tries = 1
accept_proxy_protocol = true
send_proxy_protocol = "v1"
)";
    auto r = load(text);
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->sites.size(), 1u);
    const site_config& site = r->sites[0];
    EXPECT_EQ(site.line, 1u);
    EXPECT_EQ(site.hosts,
              (std::vector<std::string>{"shop.example.com", "*.shop.example.com", "10.1.2.3",
                                        "::1"}));
    ASSERT_EQ(site.routes.size(), 2u);

    const route_config& api = site.routes[0];
    EXPECT_EQ(api.line, 6u);
    EXPECT_EQ(api.path, "/api");
    EXPECT_TRUE(api.strip_prefix);
    const upstream_settings& u = api.upstream;
    ASSERT_EQ(u.members.size(), 2u);
    EXPECT_EQ(u.members[0], (upstream_member{scheme::http, "10.0.0.5", 8080, 1,
                                             "http://10.0.0.5:8080"}));
    EXPECT_EQ(u.members[1], (upstream_member{scheme::http, "10.0.0.6", 8080, 3,
                                             "http://10.0.0.6:8080"}));
    EXPECT_EQ(u.policy, lb_policy::cookie);
    EXPECT_EQ(u.cookie_name, "shop_backend");
    EXPECT_EQ(u.health.path, "/healthz");
    EXPECT_FALSE(u.health.active);
    EXPECT_EQ(u.health.interval, 3s);
    EXPECT_EQ(u.health.timeout, 500ms);
    EXPECT_EQ(u.health.expect_low, 200u);
    EXPECT_EQ(u.health.expect_high, 299u);
    EXPECT_EQ(u.health.rise, 4u);
    EXPECT_EQ(u.health.fall, 5u);
    EXPECT_EQ(u.max_fails, 6u);
    EXPECT_EQ(u.eject_time, 60s);
    EXPECT_EQ(u.connect_timeout, 2s);
    EXPECT_EQ(u.upstream_timeout, std::optional<std::chrono::milliseconds>(30s));
    EXPECT_EQ(u.max_tries, 4u);
    EXPECT_EQ(u.max_idle_per_member, 0u);
    EXPECT_EQ(u.ca_file, ca);
    EXPECT_EQ(u.send_proxy_protocol, proxy_protocol::v2);

    const route_config& rest = site.routes[1];
    EXPECT_EQ(rest.line, 26u);
    EXPECT_EQ(rest.path, "");
    EXPECT_FALSE(rest.strip_prefix);
    ASSERT_EQ(rest.upstream.members.size(), 3u);
    EXPECT_EQ(rest.upstream.members[0].kind, scheme::tunnel);
    EXPECT_EQ(rest.upstream.members[1].kind, scheme::https);
    EXPECT_EQ(rest.upstream.members[2].kind, scheme::unix_socket);
    EXPECT_EQ(rest.upstream.policy, lb_policy::least_conn);  // the site's
    EXPECT_EQ(rest.upstream.health.interval, 10s);
    EXPECT_EQ(rest.upstream.max_tries, 2u);
    EXPECT_EQ(rest.upstream.max_idle_per_member, 256u);  // the default
    EXPECT_FALSE(rest.upstream.upstream_timeout);

    ASSERT_EQ(r->tcp_sites.size(), 1u);
    const tcp_site_config& tcp = r->tcp_sites[0];
    EXPECT_EQ(tcp.line, 29u);
    EXPECT_EQ(tcp.listen, (endpoint{"0.0.0.0", 5432}));
    EXPECT_TRUE(tcp.accept_proxy_protocol);
    const upstream_settings& t = tcp.upstream;
    ASSERT_EQ(t.members.size(), 2u);
    EXPECT_EQ(t.members[0], (upstream_member{scheme::tcp, "10.0.0.9", 5432, 1,
                                             "tcp://10.0.0.9:5432"}));
    EXPECT_EQ(t.members[1].weight, 2u);
    EXPECT_EQ(t.members[1].host, "/run/pg.sock");
    EXPECT_EQ(t.policy, lb_policy::ip_hash);
    EXPECT_TRUE(t.health.active);
    EXPECT_EQ(t.health.interval, 2s);
    EXPECT_EQ(t.health.timeout, 1s);
    EXPECT_EQ(t.health.rise, 1u);
    EXPECT_EQ(t.health.fall, 2u);
    EXPECT_EQ(t.max_fails, 7u);
    EXPECT_EQ(t.eject_time, 20s);
    EXPECT_EQ(t.connect_timeout, 750ms);
    EXPECT_EQ(t.max_tries, 1u);
    EXPECT_EQ(t.send_proxy_protocol, proxy_protocol::v1);
    std::filesystem::remove(ca);
}

TEST(SiteConfig, NoSitesIsEmpty) {
    auto r = load("domain = \"example.com\"\n");
    ASSERT_TRUE(r) << r.error();
    EXPECT_TRUE(r->sites.empty());
    EXPECT_TRUE(r->tcp_sites.empty());
}

TEST(SiteConfig, Defaults) {
    auto r = load(R"(
[[sites]]
hosts = ["a.example.com"]
upstream = ["http://10.0.0.5"]
[[tcp_sites]]
listen = "127.0.0.1:0"
upstream = ["tcp://10.0.0.9:5432"]
)");
    ASSERT_TRUE(r) << r.error();
    const upstream_settings& u = r->sites.at(0).routes.at(0).upstream;
    EXPECT_EQ(u.policy, lb_policy::round_robin);
    EXPECT_EQ(u.cookie_name, "porthole_upstream");
    EXPECT_TRUE(u.health.path.empty());
    EXPECT_EQ(u.health.expect_low, 200u);
    EXPECT_EQ(u.health.expect_high, 399u);
    EXPECT_EQ(u.max_fails, 3u);
    EXPECT_EQ(u.max_tries, 3u);
    EXPECT_EQ(u.send_proxy_protocol, proxy_protocol::off);
    EXPECT_FALSE(r->tcp_sites.at(0).upstream.health.active);
    EXPECT_FALSE(r->tcp_sites.at(0).accept_proxy_protocol);
}

TEST(SiteConfig, RoutesInheritSiteDefaults) {
    auto r = load(R"(
[[sites]]
hosts = ["a.example.com"]
upstream = ["http://10.0.0.1"]
lb_policy = "random_two"
health_path = "/up"
upstream_timeout = "1m"
max_fails = 9
[[sites.routes]]
path = "/api"
upstream = ["http://10.0.0.2"]
max_fails = 1
upstream_timeout = "off"
[[sites.routes]]
path = "/static"
)");
    ASSERT_TRUE(r) << r.error();
    const auto& routes = r->sites.at(0).routes;
    ASSERT_EQ(routes.size(), 2u);
    EXPECT_EQ(routes[0].upstream.members.at(0).host, "10.0.0.2");
    EXPECT_EQ(routes[0].upstream.members.size(), 1u);
    EXPECT_EQ(routes[0].upstream.policy, lb_policy::random_two);
    EXPECT_EQ(routes[0].upstream.health.path, "/up");
    EXPECT_EQ(routes[0].upstream.max_fails, 1u);
    EXPECT_FALSE(routes[0].upstream.upstream_timeout);
    // No upstream of its own: the site's members.
    EXPECT_EQ(routes[1].upstream.members.at(0).host, "10.0.0.1");
    EXPECT_EQ(routes[1].upstream.max_fails, 9u);
    EXPECT_EQ(routes[1].upstream.upstream_timeout, std::optional<std::chrono::milliseconds>(1min));
}

TEST(SiteConfig, SiteLevelUpstreamIsOneRouteForEveryPath) {
    auto r = load(R"(
[[sites]]
hosts = ["a.example.com"]
upstream = "unix:/run/a.sock"
max_tries = 5
)");
    ASSERT_TRUE(r) << r.error();
    const auto& routes = r->sites.at(0).routes;
    ASSERT_EQ(routes.size(), 1u);
    EXPECT_EQ(routes[0].path, "");
    EXPECT_EQ(routes[0].line, 1u);
    EXPECT_EQ(routes[0].upstream.members.at(0).kind, scheme::unix_socket);
    EXPECT_EQ(routes[0].upstream.max_tries, 5u);
}

TEST(SiteConfig, Durations) {
    auto interval = [](std::string_view value) -> tl::expected<std::chrono::milliseconds,
                                                               std::string> {
        auto r = load(fmt::format(
            "[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\"]\nhealth_timeout = "
            "\"1ms\"\nhealth_interval = {}\n",
            value));
        return r.map(
            [](const site_set& s) { return s.sites[0].routes[0].upstream.health.interval; });
    };
    EXPECT_EQ(interval("7"), 7s);
    EXPECT_EQ(interval("\"250ms\""), 250ms);
    EXPECT_EQ(interval("\"2s\""), 2s);
    EXPECT_EQ(interval("\"1m\""), 1min);
    EXPECT_EQ(interval("\"1h\""), 1h);
    for (const char* bad : {"0", "-1", "1.5", "\"2x\"", "\"s\"", "\"\"", "\"0s\"", "\"25h\"",
                            "true", "\" 2s\""}) {
        auto r = interval(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_TRUE(r.error().starts_with("sites.toml:5: 'health_interval' must be")) << r.error();
    }
}

TEST(SiteConfig, HealthTimeoutMustBeShorterThanInterval) {
    auto e = error_at(R"(
[[sites]]
hosts = ["a.com"]
[[sites.routes]]
upstream = ["http://h"]
health_interval = "2s"
health_timeout = "2s"
)",
                      6);  // keys are read in name order: the timeout's line is the last set
    expect_contains(e, "health_timeout (2s) must be shorter than health_interval (2s)");
    // Without health_timeout, the default (2s) shrinks to half of a shorter interval.
    auto shorter = load(R"(
[[sites]]
hosts = ["a.com"]
health_interval = "1s"
upstream = ["http://h"]
)");
    ASSERT_TRUE(shorter) << shorter.error();
    EXPECT_EQ(shorter->sites[0].routes[0].upstream.health.timeout, std::chrono::milliseconds(500));
}

TEST(SiteConfig, HealthStatus) {
    auto status = [](std::string_view value) -> tl::expected<std::pair<unsigned, unsigned>,
                                                             std::string> {
        auto r = load(fmt::format(
            "[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\"]\nhealth_status = {}\n",
            value));
        return r.map([](const site_set& s) {
            const auto& h = s.sites[0].routes[0].upstream.health;
            return std::pair{h.expect_low, h.expect_high};
        });
    };
    EXPECT_EQ(status("\"200\""), (std::pair{200u, 200u}));
    EXPECT_EQ(status("204"), (std::pair{204u, 204u}));
    EXPECT_EQ(status("\"2xx\""), (std::pair{200u, 299u}));
    EXPECT_EQ(status("\"200-399\""), (std::pair{200u, 399u}));
    for (const char* bad : {"\"6xx\"", "\"20\"", "\"399-200\"", "\"200-\"", "\"abc\"", "\"099\"",
                            "\"200-600\"", "1.0"}) {
        auto r = status(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_TRUE(r.error().starts_with("sites.toml:4: 'health_status' must be")) << r.error();
    }
}

// Hosts

TEST(SiteConfig, AStarSiteTakesEveryOtherHost) {
    auto r = load("[[sites]]\nhosts = [\"*\"]\nupstream = [\"http://h\"]\n"
                  "[[sites]]\nhosts = [\"a.example\"]\nupstream = [\"http://h\"]\n");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->sites[0].hosts, std::vector<std::string>{"*"});
}

TEST(SiteConfig, HostsAreNormalized) {
    auto r = load(R"(
[[sites]]
hosts = ["WWW.Example.COM.", "*.Apps.Example.com", "192.168.1.7", "::FFFF:10.0.0.1", "localhost"]
upstream = ["http://h"]
)");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->sites[0].hosts,
              (std::vector<std::string>{"www.example.com", "*.apps.example.com", "192.168.1.7",
                                        "::ffff:10.0.0.1", "localhost"}));
}

TEST(SiteConfig, BadHosts) {
    for (const char* bad : {"", "a..com", "*.*.a.com", "a.*.com", "**", "*.", "*a.com",
                            "shop.com:8080", "under_score.com", "-a.com", "a b.com", "[10.0.0.1]",
                            "*.10.0.0.1", "http://a.com"}) {
        const std::string text = fmt::format(
            "[[sites]]\nupstream = [\"http://h\"]\nhosts = [\n  \"ok.com\",\n  \"{}\"\n]\n", bad);
        auto e = error_at(text, 5);
        expect_contains(e, fmt::format("host '{}'", bad));
    }
    expect_contains(
        error_at("[[sites]]\nupstream = [\"http://h\"]\nhosts = [\"A.com\", \"a.com.\"]\n", 3),
        "listed twice");
}

TEST(SiteConfig, HostClaimedByTwoSites) {
    auto e = error_at(R"(
[[sites]]
hosts = ["a.example.com", "b.example.com"]
upstream = ["http://h1"]

[[sites]]
hosts = ["c.example.com", "B.example.com"]
upstream = ["http://h2"]
)",
                      5);
    expect_contains(e, "'b.example.com'");
    expect_contains(e, "line 1");
    expect_contains(e, "line 5");
}

TEST(SiteConfig, WildcardAndExactInTwoSitesIsFine) {
    auto r = load(R"(
[[sites]]
hosts = ["*.a.com"]
upstream = ["http://h1"]
[[sites]]
hosts = ["x.a.com", "a.com"]
upstream = ["http://h2"]
)");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->sites.size(), 2u);
    auto e = error_at(R"(
[[sites]]
hosts = ["*.a.com"]
upstream = ["http://h1"]
[[sites]]
hosts = ["*.A.com"]
upstream = ["http://h2"]
)",
                      4);
    expect_contains(e, "'*.a.com'");
}

TEST(SiteConfig, SiteNeedsHostsAndUpstream) {
    expect_contains(error_at("[[sites]]\nupstream = [\"http://h\"]\n", 1), "no hosts");
    expect_contains(error_at("[[sites]]\nhosts = []\nupstream = [\"http://h\"]\n", 2), "empty");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\n", 1), "no upstream");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = []\n", 3), "empty");
    expect_contains(error_at(R"(
[[sites]]
hosts = ["a.com"]
[[sites.routes]]
path = "/a"
upstream = ["http://h"]
[[sites.routes]]
path = "/b"
)",
                             6),
                    "this route has no upstream");
}

// Routes

TEST(SiteConfig, RouteAfterTheSamePathCanNeverMatch) {
    auto e = error_at(R"(
[[sites]]
hosts = ["a.com"]
upstream = ["http://h"]
[[sites.routes]]
path = "/api"
[[sites.routes]]
path = "/api/"
)",
                      6);
    EXPECT_EQ(e, "sites.toml:6: this route can never match: the route at line 4 (path \"/api\") "
                 "takes every request it would get; put the more specific route first");
}

TEST(SiteConfig, RouteUnderAnEarlierPrefixCanNeverMatch) {
    auto e = error_at(R"(
[[sites]]
hosts = ["a.com"]
upstream = ["http://h"]
[[sites.routes]]
path = "/static"
[[sites.routes]]
path = "/api"
[[sites.routes]]
path = "/api/v1"
)",
                      8);
    expect_contains(e, "the route at line 6 (path \"/api\")");
    // "/apix" is not under "/api".
    auto r = load(R"(
[[sites]]
hosts = ["a.com"]
upstream = ["http://h"]
[[sites.routes]]
path = "/api"
[[sites.routes]]
path = "/apix"
[[sites.routes]]
)");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->sites[0].routes.size(), 3u);
}

TEST(SiteConfig, RouteAfterOneWithoutPathCanNeverMatch) {
    auto e = error_at(R"(
[[sites]]
hosts = ["a.com"]
upstream = ["http://h"]
[[sites.routes]]
path = "/"
[[sites.routes]]
path = "/api"
)",
                      6);
    expect_contains(e, "the route at line 4 (no path");
    error_at(R"(
[[sites]]
hosts = ["a.com"]
upstream = ["http://h"]
[[sites.routes]]
[[sites.routes]]
)",
             5);
}

TEST(SiteConfig, BadPaths) {
    for (const char* bad : {"api", "/api?x=1", "/a#b", "/a/../b", "/..", "/a/./b", "/a b", ""}) {
        const std::string text = fmt::format(
            "[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\"]\n[[sites.routes]]\n"
            "path = \"{}\"\n",
            bad);
        expect_contains(error_at(text, 5), fmt::format("path '{}'", bad));
    }
    auto r = load("[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\"]\n[[sites.routes]]\n"
                  "path = \"/a/..b/c//\"\n");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->sites[0].routes[0].path, "/a/..b/c");
}

// Members in files

TEST(SiteConfig, MemberErrorsNameTheirLine) {
    auto e = error_at(R"(
[[sites]]
hosts = ["a.com"]
upstream = [
  "http://10.0.0.1",
  "gopher://10.0.0.2",
]
)",
                      5);
    expect_contains(e, "'gopher'");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h:1/x\"]\n", 3),
                    "strip_prefix");
    expect_contains(
        error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"tcp://10.0.0.9:5432\"]\n", 3),
        "[[tcp_sites]]");
    expect_contains(
        error_at("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\nupstream = [\"http://h\"]\n", 3),
        "HTTP backend");
    expect_contains(
        error_at("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\nupstream = [\"https://h:443\"]\n", 3),
        "HTTP backend");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\", "
                             "\"http://H:80\"]\n",
                             3),
                    "same member");
}

TEST(SiteConfig, MemberTables) {
    expect_contains(error_at(R"(
[[sites]]
hosts = ["a.com"]
upstream = [
  { url = "http://h", wieght = 2 },
]
)",
                             4),
                    "did you mean 'weight'");
    for (const char* w : {"0", "1001", "\"3\""})
        expect_contains(
            error_at(fmt::format("[[sites]]\nhosts = [\"a.com\"]\n"
                                 "upstream = [{{ url = \"http://h\", weight = {} }}]\n",
                                 w),
                     3),
            "'weight' must be a whole number from 1 to 1000");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [{ weight = 2 }]\n", 3),
                    "needs url");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [5]\n", 3),
                    "'upstream' must be");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = 5\n", 3),
                    "'upstream' must be");
}

// Keys and types

TEST(SiteConfig, UnknownKeysSuggestTheKnownOne) {
    expect_contains(error_at(R"(
[[sites]]
hosts = ["a.com"]
upstream = ["http://h"]
lb_polcy = "least_conn"
)",
                             4),
                    "unknown key 'lb_polcy' in [[sites]]; did you mean 'lb_policy'?");
    expect_contains(error_at(R"(
[[sites]]
hosts = ["a.com"]
[[sites.routes]]
upstream = ["http://h"]
strip_prefx = true
)",
                             5),
                    "did you mean 'strip_prefix'?");
    expect_contains(error_at(R"(
[[tcp_sites]]
listen = "0.0.0.0:1"
upstream = ["tcp://h:1"]
max_trys = 2
)",
                             4),
                    "in [[tcp_sites]]; did you mean 'max_tries'?");
    auto e = error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\"]\ncolour = 1\n", 4);
    expect_contains(e, "(known: hosts, routes, upstream");
}

TEST(SiteConfig, KeysInTheWrongTable) {
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\"]\n"
                             "path = \"/a\"\n",
                             4),
                    "[[sites.routes]]");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nupstream = [\"http://h\"]\n"
                             "accept_proxy_protocol = true\n",
                             4),
                    "top-level");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\n[[sites.routes]]\n"
                             "upstream = [\"http://h\"]\nhosts = [\"b.com\"]\n",
                             5),
                    "belongs to the [[sites]] table");
    for (const char* key : {"health_path = \"/h\"", "cookie_name = \"c\"", "ca_file = \"x\"",
                            "health_status = \"2xx\"", "upstream_timeout = 3",
                            "max_idle_per_member = 1"})
        expect_contains(error_at(fmt::format("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\n"
                                             "upstream = [\"tcp://h:1\"]\n{}\n",
                                             key),
                                 4),
                        "is for HTTP [[sites]]");
    expect_contains(error_at("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\nupstream = [\"tcp://h:1\"]\n"
                             "hosts = [\"a.com\"]\n",
                             4),
                    "listen address alone");
    expect_contains(error_at("sites = 3\n", 1), "[[sites]] tables");
    expect_contains(error_at("tcp_sites = [1]\n", 1), "[[tcp_sites]] tables");
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\nroutes = 3\n", 3),
                    "[[sites.routes]] tables");
}

TEST(SiteConfig, WrongTypesAndRanges) {
    struct bad_value {
        const char* line;
        const char* message;
    };
    for (const auto& [line, message] : std::initializer_list<bad_value>{
             {"lb_policy = 1", "'lb_policy' must be a string"},
             {"lb_policy = \"fastest\"", "lb_policy 'fastest' is unknown; use round_robin"},
             {"cookie_name = \"a;b\"", "cookie_name 'a;b' is not a cookie name"},
             {"cookie_name = \"\"", "cookie_name '' is not a cookie name"},
             {"health_path = \"healthz\"", "health_path 'healthz' must be a request path"},
             {"health_path = \"/a b\"", "health_path '/a b' must be a request path"},
             {"rise = 0", "'rise' must be a whole number from 1 to 100"},
             {"fall = 101", "'fall' must be a whole number from 1 to 100"},
             {"max_fails = 101", "'max_fails' must be a whole number from 0 to 100"},
             {"max_tries = 11", "'max_tries' must be a whole number from 1 to 10"},
             {"max_tries = \"2\"", "'max_tries' must be a whole number from 1 to 10"},
             {"max_idle_per_member = 10001", "'max_idle_per_member' must be a whole number from 0"},
             {"max_idle_per_member = -1", "'max_idle_per_member' must be a whole number from 0"},
             {"eject_time = \"forever\"", "'eject_time' must be a duration"},
             {"connect_timeout = false", "'connect_timeout' must be a duration"},
             {"upstream_timeout = \"on\"", "'upstream_timeout' must be a duration"},
             {"send_proxy_protocol = \"v3\"", "send_proxy_protocol 'v3' is unknown"},
             {"send_proxy_protocol = true", "'send_proxy_protocol' must be a string"},
             {"ca_file = 7", "'ca_file' must be a string"},
         }) {
        const std::string text =
            fmt::format("[[sites]]\nupstream = [\"http://h\"]\n{}\nhosts = [\"a.com\"]\n", line);
        expect_contains(error_at(text, 3), message);
    }
    expect_contains(error_at("[[sites]]\nhosts = [\"a.com\"]\n[[sites.routes]]\n"
                             "upstream = [\"http://h\"]\nstrip_prefix = \"yes\"\n",
                             5),
                    "'strip_prefix' must be true or false");
}

TEST(SiteConfig, UnreadableCaFileIsNamed) {
    const std::string missing =
        (fs::path(testing::TempDir()) / "porthole_no_such_ca.pem").string();
    auto e = error_at(fmt::format("[[sites]]\nhosts = [\"a.com\"]\n[[sites.routes]]\n"
                                  "upstream = [\"https://h\"]\nca_file = \"{}\"\n",
                                  missing),
                      5);
    expect_contains(e, "ca_file '" + missing + "' cannot be read");
}

// TCP sites

TEST(SiteConfig, TcpSites) {
    auto r = load(R"(
[[tcp_sites]]
listen = "[::]:6379"
upstream = ["tcp://[::1]:6379"]
[[tcp_sites]]
listen = "127.0.0.1:0"
upstream = ["unix:/run/cache.sock"]
[[tcp_sites]]
listen = "127.0.0.1:0"
upstream = ["unix:/run/cache2.sock"]
)");
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->tcp_sites.size(), 3u);  // port 0 twice: each gets its own port
    EXPECT_EQ(r->tcp_sites[0].listen, (endpoint{"::", 6379}));
    EXPECT_EQ(r->tcp_sites[0].upstream.members[0].host, "::1");
    EXPECT_EQ(r->tcp_sites[2].line, 7u);
}

TEST(SiteConfig, TcpSiteErrors) {
    auto e = error_at(R"(
[[tcp_sites]]
listen = "0.0.0.0:5432"
upstream = ["tcp://10.0.0.9:5432"]

[[tcp_sites]]
listen = "0.0.0.0:5432"
upstream = ["tcp://10.0.0.10:5432"]
)",
                      5);
    expect_contains(e, "0.0.0.0:5432 is taken by the tcp site at line 1");
    expect_contains(error_at("[[tcp_sites]]\nupstream = [\"tcp://h:1\"]\n", 1), "no listen");
    expect_contains(error_at("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\n", 1), "no upstream");
    expect_contains(error_at("[[tcp_sites]]\nlisten = \"5432\"\nupstream = [\"tcp://h:1\"]\n", 2),
                    "listen:");
    expect_contains(error_at("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\nupstream = [\"tcp://h:1\"]\n"
                             "lb_policy = \"cookie\"\n",
                             4),
                    "needs HTTP");
    expect_contains(error_at("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\nupstream = [\"tcp://h:1\"]\n"
                             "accept_proxy_protocol = 1\n",
                             4),
                    "'accept_proxy_protocol' must be true or false");
    expect_contains(error_at("[[tcp_sites]]\nlisten = \"0.0.0.0:1\"\nupstream = [\"tunnel:db\"]\n",
                             3),
                    "tunnel: members are for HTTP sites");
}

// The relay's file: sites beside the other keys

class SiteServerConfig : public testing::Test {
protected:
    tl::expected<void, std::string> load(std::string_view text) {
        return load_server_text(body(text), "relay.toml", cfg);
    }
    server_config cfg;
};

TEST_F(SiteServerConfig, SitesBesideOtherKeys) {
    auto r = load(R"(
domain = "tunnel.example.com"
accept_proxy_protocol = true
trusted_proxies = ["10.0.0.0/8", "192.168.1.7", "::1/128", "FD00::/8", "2001:db8::1"]

[[sites]]
hosts = ["shop.example.com"]
upstream = ["http://10.0.0.5:8080"]

[[tcp_sites]]
listen = "0.0.0.0:5432"
upstream = ["tcp://10.0.0.9:5432"]
)");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(cfg.domain, "tunnel.example.com");
    EXPECT_TRUE(cfg.accept_proxy_protocol);
    EXPECT_EQ(cfg.trusted_proxies,
              (std::vector<std::string>{"10.0.0.0/8", "192.168.1.7/32", "::1/128", "fd00::/8",
                                        "2001:db8::1/128"}));
    ASSERT_EQ(cfg.sites.sites.size(), 1u);
    EXPECT_EQ(cfg.sites.sites[0].line, 5u);
    EXPECT_EQ(cfg.sites.sites[0].hosts.at(0), "shop.example.com");
    ASSERT_EQ(cfg.sites.tcp_sites.size(), 1u);
    EXPECT_EQ(cfg.sites.tcp_sites[0].listen.port, 5432);
}

TEST_F(SiteServerConfig, Defaults) {
    EXPECT_FALSE(cfg.accept_proxy_protocol);
    EXPECT_TRUE(cfg.trusted_proxies.empty());
    EXPECT_TRUE(cfg.sites.sites.empty());
    ASSERT_TRUE(load("domain = \"example.com\"\n"));
    EXPECT_TRUE(cfg.sites.tcp_sites.empty());
}

TEST_F(SiteServerConfig, SiteErrorsCarryTheirLine) {
    auto r = load(R"(
domain = "example.com"
[[sites]]
hosts = ["a.com"]
upstream = ["ftp://h"]
)");
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().starts_with("relay.toml:4: upstream 'ftp://h': unknown scheme 'ftp'"))
        << r.error();
}

TEST_F(SiteServerConfig, BadTrustedProxyIsNamed) {
    for (const char* bad : {"10.0.0.0/33", "10.0.0.1/8", "fd00::/129", "example.com", "10.0.0.0/",
                            "10.0.0.0/x", "fe80::1%eth0", ""}) {
        auto r = load(fmt::format(
            "domain = \"example.com\"\ntrusted_proxies = [\n  \"10.0.0.0/8\",\n  \"{}\",\n]\n",
            bad));
        ASSERT_FALSE(r) << bad;
        EXPECT_TRUE(r.error().starts_with(
            fmt::format("relay.toml:4: trusted_proxies entry '{}'", bad)))
            << r.error();
    }
    auto r = load("trusted_proxies = \"10.0.0.0/8\"\n");
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().starts_with("relay.toml:1: 'trusted_proxies' must be")) << r.error();
    r = load("trusted_proxies = [8]\n");
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().starts_with("relay.toml:1: 'trusted_proxies' must be")) << r.error();
    r = load("accept_proxy_protocol = \"yes\"\n");
    ASSERT_FALSE(r);
    EXPECT_TRUE(
        r.error().starts_with("relay.toml:1: 'accept_proxy_protocol' must be true or false"))
        << r.error();
}

TEST_F(SiteServerConfig, MisspeltTopLevelKeysSuggestTheNewOnes) {
    auto r = load("[[tcp_site]]\nlisten = \"0.0.0.0:1\"\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("did you mean 'tcp_sites'?"), std::string::npos) << r.error();
    r = load("accept_proxy_protocl = true\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("did you mean 'accept_proxy_protocol'?"), std::string::npos)
        << r.error();
}

}  // namespace
}  // namespace porthole::config
