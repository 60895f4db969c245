// The admin API's pure parts: the endpoints over a fake relay_control, the bearer token check,
// the CLI's tables, and the tokens file rewritten without a revoked token.
#include "admin/admin_server.hpp"
#include "admin/api.hpp"
#include "admin/tables.hpp"
#include "config/server_config.hpp"
#include "protocol/auth.hpp"
#include "relay/relay_admin.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace porthole::admin {
namespace {

using json = nlohmann::json;

class fake_relay final : public relay_control {
public:
    std::vector<client_info> clients() const override { return clients_; }
    std::vector<tunnel_info> tunnels() const override { return tunnels_; }
    sites_info sites() const override { return {}; }
    std::vector<token_info> tokens() const override { return {}; }
    std::string config_json() const override { return R"({"admin_token":"<redacted>"})"; }
    traffic_totals traffic() const override { return {}; }
    observe::recent_events& recent() override { return recent_; }
    kick_result kick(const std::string& id, const std::string& who) override {
        last_ = id + " by " + who;
        if (id == "00000000") return {outcome::conflict, "names more than one client", {}, {}};
        if (id != "3f2a9c1e") return {outcome::not_found, "no client", {}, {}};
        return {outcome::done, {}, "3f2a9c1e5b7d4a60c1e2f3a4b5c6d7e8", {"http:d7f2a"}};
    }
    std::vector<cache_info> caches() const override { return {{"shop.test", 10, 1}}; }
    std::size_t purge_cache(const std::string& url, bool prefix, const std::string&) override {
        last_ = (prefix ? "prefix " : "url ") + url;
        return 2;
    }
    release_result release(const std::string& name, const std::string&) override {
        last_ = name;
        return {outcome::conflict, "kick its client first"};
    }
    new_token add_token(const std::string& label, const std::string&) override {
        last_ = label;
        return {outcome::done, {}, "TOKEN", "5d41402abc4b2a76", "verifier:5d41"};
    }
    revoke_result revoke_token(const std::string& digest, const std::string&) override {
        last_ = digest;
        return {outcome::done, {}, digest, 2};
    }
    reload_result reload(const std::string&) override {
        ++reloads_;
        if (reloads_ == 1) return {outcome::done, "sites 1 added, 0 removed, 0 kept", 2};
        return {outcome::failed, "relay.toml:41: unknown key 'x'", 2};
    }
    void upgrade(const std::string&, std::chrono::seconds, const std::string&,
                 upgrade_done done) override {
        done({outcome::failed, "not in this test", 0, {}});
    }

    std::vector<client_info> clients_;
    std::vector<tunnel_info> tunnels_;
    observe::recent_events recent_;
    std::string last_;
    int reloads_ = 0;
};

api_answer ask(relay_control& r, std::string_view method, std::string_view path,
               std::string_view body = {}, std::string_view limit = {}) {
    return handle(r, api_request{method, path, body, limit, "uid 0 (pid 1)"});
}

TEST(AdminApi, ListsStopAtTheLimit) {
    fake_relay r;
    for (int i = 0; i < 3; ++i) {
        client_info c;
        c.id = fmt::format("{:032}", i);
        c.connected_since = 1746093731;
        c.rtt_ms = 12.5;
        r.clients_.push_back(c);
    }
    auto a = ask(r, "GET", "/api/clients");
    ASSERT_EQ(a.status, 200);
    auto doc = json::parse(a.body);
    EXPECT_EQ(doc["clients"].size(), 3u);
    EXPECT_FALSE(doc["truncated"]);
    EXPECT_EQ(doc["clients"][0]["connected_since"], "2025-05-01T10:02:11Z");
    EXPECT_EQ(doc["clients"][0]["token"], nullptr);
    a = ask(r, "GET", "/api/clients", {}, "2");
    doc = json::parse(a.body);
    EXPECT_EQ(doc["clients"].size(), 2u);
    EXPECT_TRUE(doc["truncated"]);
    EXPECT_EQ(ask(r, "GET", "/api/clients", {}, "x").status, 400);
    EXPECT_EQ(ask(r, "GET", "/api/clients", {}, "-1").status, 400);
}

TEST(AdminApi, RecentIsNewestFirstAndStopsAtTheLimit) {
    fake_relay r;
    auto a = ask(r, "GET", "/api/recent");
    ASSERT_EQ(a.status, 200);
    EXPECT_EQ(json::parse(a.body),
              json::parse(R"({"events":[],"truncated":false,"capacity":256})"));
    const auto now = std::chrono::system_clock::now();
    r.recent_.add({.reason = "no_tunnel", .status = 404, .target = "/a?q=1"}, now);
    r.recent_.add({.kind = observe::event_kind::error, .reason = "timeout", .status = 504}, now);
    r.recent_.add({.reason = "basic_auth", .status = 401, .target = "/c"}, now);
    auto doc = json::parse(ask(r, "GET", "/api/recent").body);
    ASSERT_EQ(doc["events"].size(), 3u);
    EXPECT_EQ(doc["events"][0]["seq"], 3);
    EXPECT_EQ(doc["events"][1]["kind"], "error");
    EXPECT_EQ(doc["events"][2]["path"], "/a");
    doc = json::parse(ask(r, "GET", "/api/recent", {}, "1").body);
    ASSERT_EQ(doc["events"].size(), 1u);
    EXPECT_EQ(doc["events"][0]["reason"], "basic_auth");
    EXPECT_TRUE(doc["truncated"]);
}

TEST(AdminApi, RecentIsOrderedByWhenEachHappenedNotByArrival) {
    fake_relay r;
    const auto t0 = std::chrono::system_clock::now();
    r.recent_.add({.reason = "no_tunnel", .status = 404, .target = "/first"}, t0);
    r.recent_.add({.reason = "ip_deny", .status = 403, .target = "/third"},
                  t0 + std::chrono::milliseconds(2));
    // Another loop's event: it happened between the two, and arrives last.
    observe::recent_event late;
    late.time = t0 + std::chrono::milliseconds(1);
    late.reason = "basic_auth";
    late.status = 401;
    late.path = "/second";
    r.recent_.add_kept(std::move(late));
    const auto doc = json::parse(ask(r, "GET", "/api/recent").body);
    ASSERT_EQ(doc["events"].size(), 3u);
    EXPECT_EQ(doc["events"][0]["path"], "/third");
    EXPECT_EQ(doc["events"][1]["path"], "/second");
    EXPECT_EQ(doc["events"][1]["seq"], 3);
    EXPECT_EQ(doc["events"][2]["path"], "/first");
    const auto one = json::parse(ask(r, "GET", "/api/recent", {}, "1").body);
    EXPECT_EQ(one["events"][0]["path"], "/third");
}

TEST(AdminApi, CacheStatsAndPurges) {
    fake_relay r;
    auto a = ask(r, "GET", "/api/cache");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(json::parse(a.body)["caches"][0]["name"], "shop.test");
    const auto purge = [&](std::string_view url, std::string_view prefix) {
        return handle(r, api_request{"DELETE", "/api/cache", {}, {}, "uid 0", url, prefix});
    };
    a = purge("https://shop.test/a", {});
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(json::parse(a.body)["purged"], 2);
    EXPECT_EQ(r.last_, "url https://shop.test/a");
    EXPECT_EQ(purge({}, "shop.test/img/").status, 200);
    EXPECT_EQ(r.last_, "prefix shop.test/img/");
    EXPECT_EQ(purge({}, {}).status, 400);
    EXPECT_EQ(purge("a", "b").status, 400);
}

TEST(AdminApi, KickStatuses) {
    fake_relay r;
    auto a = ask(r, "DELETE", "/api/clients/3f2a9c1e");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(json::parse(a.body)["tunnels"], json::array({"http:d7f2a"}));
    EXPECT_EQ(r.last_, "3f2a9c1e by uid 0 (pid 1)");
    EXPECT_EQ(ask(r, "DELETE", "/api/clients/3f2a9c1f").status, 404);
    EXPECT_EQ(ask(r, "DELETE", "/api/clients/00000000").status, 409);
    EXPECT_EQ(ask(r, "DELETE", "/api/clients/3f2a9c1").status, 400);  // 7 digits
    EXPECT_EQ(ask(r, "DELETE", "/api/clients/3F2A9C1E").status, 400);
    EXPECT_EQ(ask(r, "DELETE", "/api/leases/shop").status, 409);
    EXPECT_EQ(ask(r, "DELETE", "/api/leases/").status, 400);
}

TEST(AdminApi, Tokens) {
    fake_relay r;
    auto a = ask(r, "POST", "/api/tokens", R"({"label":"ci-runner"})");
    EXPECT_EQ(a.status, 201);
    EXPECT_EQ(json::parse(a.body)["token"], "TOKEN");
    EXPECT_EQ(r.last_, "ci-runner");
    EXPECT_EQ(ask(r, "POST", "/api/tokens", "").status, 201);
    EXPECT_EQ(ask(r, "POST", "/api/tokens", "[1]").status, 400);
    EXPECT_EQ(ask(r, "POST", "/api/tokens", R"({"label":"two\nlines"})").status, 400);
    EXPECT_EQ(ask(r, "POST", "/api/tokens", R"({"label":5})").status, 400);
    a = ask(r, "DELETE", "/api/tokens/5d41402abc4b");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(json::parse(a.body)["sessions_closed"], 2);
    EXPECT_EQ(ask(r, "DELETE", "/api/tokens/5d41402abc4").status, 400);  // 11 digits
}

TEST(AdminApi, ReloadAnswersWithItsOutcomeAndUnknownPathsAre404) {
    fake_relay r;
    auto a = ask(r, "POST", "/api/reload", "{}");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(json::parse(a.body)["generation"], 2);
    EXPECT_EQ(json::parse(a.body)["changes"], "sites 1 added, 0 removed, 0 kept");
    a = ask(r, "POST", "/api/reload", "{}");
    EXPECT_EQ(a.status, 422);
    EXPECT_EQ(json::parse(a.body)["error"], "relay.toml:41: unknown key 'x'");
    EXPECT_EQ(ask(r, "GET", "/api/nothing").status, 404);
    EXPECT_EQ(ask(r, "PUT", "/api/clients/3f2a9c1e").status, 405);
    EXPECT_EQ(ask(r, "GET", "/api/config").body, "{\"admin_token\":\"<redacted>\"}\n");
}

TEST(AdminBearer, MatchesOnlyTheWholeToken) {
    const bearer_check check("an-admin-token-of-forty-characters-0123");
    EXPECT_TRUE(check("Bearer an-admin-token-of-forty-characters-0123"));
    EXPECT_TRUE(check("bearer an-admin-token-of-forty-characters-0123"));
    EXPECT_FALSE(check("Bearer an-admin-token-of-forty-characters-012"));
    EXPECT_FALSE(check("Bearer an-admin-token-of-forty-characters-01234"));
    EXPECT_FALSE(check("Basic an-admin-token-of-forty-characters-0123"));
    EXPECT_FALSE(check("an-admin-token-of-forty-characters-0123"));
    EXPECT_FALSE(check(""));
    EXPECT_FALSE(check("Bearer "));
    const bearer_check empty("");
    EXPECT_FALSE(empty("Bearer "));
}

TEST(AdminTables, ColumnsLineUp) {
    EXPECT_EQ(format_table({{"ID", "ADDRESS"}, {"3f2a9c1e", "1.2.3.4:5"}, {"a", "b"}}),
              "ID        ADDRESS\n3f2a9c1e  1.2.3.4:5\na         b\n");
}

TEST(AdminTables, Durations) {
    EXPECT_EQ(short_duration(45), "45s");
    EXPECT_EQ(short_duration(134), "2m14s");
    EXPECT_EQ(short_duration(8040), "2h14m");
    EXPECT_EQ(short_duration(200000), "2d7h");
    EXPECT_EQ(short_duration(-5), "0s");
    EXPECT_EQ(parse_rfc3339("2025-05-01T10:02:11Z"), 1746093731);
    EXPECT_EQ(rfc3339(1746093731), "2025-05-01T10:02:11Z");
    EXPECT_EQ(parse_rfc3339("2025-05-01 10:02:11Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2025-05-01T10:02:1xZ"), std::nullopt);
}

TEST(AdminTables, Clients) {
    const auto doc = json::parse(R"({"clients":[{"id":"3f2a9c1e5b7d4a60c1e2f3a4b5c6d7e8",
        "address":"203.0.113.7:51234","agent":"porthole/0.2.0","protocol":4,"token":null,
        "connected_since":"2025-05-01T10:02:11Z","rtt_ms":12.4,"tunnels":["http:d7f2a","tcp:20417"],
        "data_pool":{"idle":8,"waiting":0}}],"truncated":false})");
    EXPECT_EQ(clients_table(doc, 1746093731 + 8040),
              "ID        ADDRESS            AGENT           SINCE  RTT    TUNNELS\n"
              "3f2a9c1e  203.0.113.7:51234  porthole/0.2.0  2h14m  12 ms  http:d7f2a, tcp:20417\n");
}

TEST(AdminTables, TunnelsWithLeases) {
    const auto doc = json::parse(R"({"tunnels":[{"name":"d7f2a","kind":"http","state":"serving",
        "url":"http://d7f2a.localhost:8080","group":null,"members":[{"client":"3f2a9c1e",
        "since":"2025-05-01T10:02:11Z"}],"open_connections":3},{"name":"shop","kind":"name",
        "state":"leased","lease_until":"2025-05-01T10:03:11Z"}],"truncated":true})");
    EXPECT_EQ(tunnels_table(doc, 1746093731),
              "NAME   KIND  STATE               CLIENTS   CONNS  URL\n"
              "d7f2a  http  serving             3f2a9c1e  3      http://d7f2a.localhost:8080\n"
              "shop   name  leased (1m0s left)  -         -      -\n"
              "(more not shown: the list stops at its limit)\n");
}

TEST(AdminTables, SitesAndTokens) {
    const auto sites = json::parse(R"({"sites":[{"hosts":["shop.example.com"],"routes":[{"path":
        "/api","lb_policy":"least_conn","members":[{"url":"http://10.0.0.5:8080","weight":1,
        "health":"healthy","active":2,"fails":0,"ejected_until":null}]}]}],"tcp_sites":[]})");
    EXPECT_EQ(sites_table(sites),
              "SITE              PATH  POLICY      MEMBER                HEALTH   ACTIVE  FAILS\n"
              "shop.example.com  /api  least_conn  http://10.0.0.5:8080  healthy  2       0\n");
    const auto tokens = json::parse(R"({"tokens":[{"digest":"5d41402abc4b2a76","source":
        "/var/lib/porthole/tokens:3","label":"laptop","sessions":2}]})");
    EXPECT_EQ(tokens_table(tokens),
              "DIGEST            LABEL   SESSIONS  SOURCE\n"
              "5d41402abc4b2a76  laptop  2         /var/lib/porthole/tokens:3\n");
}

TEST(AdminTokensFile, RevokedTokenLinesGoOthersStay) {
    const auto v = protocol::verifier_of(protocol::key_of_token("gone"));
    const auto hex = protocol::to_hex(v);
    const std::string text = "# clients\nkept-token  # laptop\nverifier:" + hex +
                             "  # ci, added 2025-05-01T10:00Z\ngone\n\n# end\n";
    EXPECT_EQ(relay::without_token(text, v), "# clients\nkept-token  # laptop\n\n# end\n");
    EXPECT_EQ(relay::without_token("gone", v), "");
    EXPECT_EQ(relay::without_token("other", v), "other");
}

TEST(AdminTokensFile, LineCommentsAreLabels) {
    auto line = config::read_tokens_file_line("verifier:ab  # ci-runner, added 2025-05-01T10:00Z");
    ASSERT_TRUE(line);
    EXPECT_EQ(line->entry, "verifier:ab");
    EXPECT_EQ(line->label, "ci-runner");
    line = config::read_tokens_file_line("  tok#en\t# laptop ");
    ASSERT_TRUE(line);
    EXPECT_EQ(line->entry, "tok#en");
    EXPECT_EQ(line->label, "laptop");
    EXPECT_FALSE(config::read_tokens_file_line("   # only a comment"));
    EXPECT_FALSE(config::read_tokens_file_line("  "));
}

TEST(AdminConfig, AdminKeysAndTheirErrors) {
    config::server_config cfg;
    ASSERT_TRUE(config::load_server_text("admin_socket = \"\"\nadmin_addr = \"127.0.0.1:7836\"\n"
                                         "admin_hosts = [\"relay.example.com\"]\n",
                                         "relay.toml", cfg));
    EXPECT_EQ(cfg.admin_socket, std::optional<std::string>(""));
    EXPECT_EQ(cfg.admin_addr_at, "relay.toml:2");
    auto ok = config::validate(cfg);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().rfind("relay.toml:2: admin_addr 127.0.0.1:7836 needs admin_token", 0), 0u)
        << ok.error();
    auto bad = config::load_server_text("\nadmin_token = \"twelve chars\"\n", "relay.toml", cfg);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), "relay.toml:2: admin_token has 12 characters: use at least 32 "
                           "(head -c 32 /dev/urandom | base64)");
    ASSERT_TRUE(config::load_server_text("admin_token = \"0123456789abcdef0123456789abcdef\"\n",
                                         "relay.toml", cfg));
    EXPECT_TRUE(config::validate(cfg));
    cfg.admin_addr = cfg.http_addr;
    ok = config::validate(cfg);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error(), "admin_addr 127.0.0.1:8080 is also http_addr");
    bad = config::load_server_text("admin_hosts = [\"not a name\"]\n", "relay.toml", cfg);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("relay.toml:1: admin_hosts entry"), std::string::npos);
}

TEST(AdminConfig, TokensFileSetMeansTokensRequired) {
    config::server_config cfg;
    EXPECT_FALSE(cfg.tokens_required());
    cfg.tokens_file = "/var/lib/porthole/tokens";
    EXPECT_TRUE(cfg.tokens_required());
    cfg.control_addr = {"0.0.0.0", 7835};
    EXPECT_TRUE(config::validate(cfg));
}

}  // namespace
}  // namespace porthole::admin
