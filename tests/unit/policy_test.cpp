#include "config/policy_config.hpp"
#include "config/server_config.hpp"
#include "http/header_edits.hpp"
#include "policy/fixed_answers.hpp"
#include "policy/header_rules.hpp"
#include "policy/rate_limit.hpp"
#include "site_policy_text.hpp"

#include <gtest/gtest.h>

namespace porthole::policy {
namespace {

using namespace std::chrono_literals;

config::rate_limit_settings limit(std::uint32_t count, std::chrono::nanoseconds period,
                                  std::uint32_t burst, std::size_t max_keys = 1000) {
    config::rate_limit_settings s;
    s.count = count;
    s.period = period;
    s.burst = burst;
    s.max_keys = max_keys;
    return s;
}

TEST(RateLimit, ExactlyTheBurstPassesAtOnceThenOnePerInterval) {
    rate_limit r(limit(10, 1s, 5));
    const auto t0 = rate_limit::clock::time_point{} + 1h;
    int passed = 0;
    for (int i = 0; i < 1000; ++i) passed += r.take("k", t0) ? 0 : 1;
    EXPECT_EQ(passed, 5);
    EXPECT_TRUE(r.take("k", t0 + 99ms));
    EXPECT_FALSE(r.take("k", t0 + 100ms));  // one interval later: one more
    EXPECT_TRUE(r.take("k", t0 + 100ms));
    EXPECT_FALSE(r.take("other", t0));  // keys are independent
}

TEST(RateLimit, A429SaysWhenToComeBack) {
    rate_limit r(limit(1, 1min, 2));
    const auto t0 = rate_limit::clock::time_point{} + 1h;
    EXPECT_FALSE(r.take("k", t0));
    EXPECT_FALSE(r.take("k", t0));
    const auto refused = r.take("k", t0 + 1s);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 429u);
    EXPECT_NE(refused->fields.find("Retry-After: 59\r\n"), std::string::npos) << refused->fields;
    EXPECT_NE(refused->fields.find("RateLimit-Limit: 2\r\n"), std::string::npos);
    EXPECT_NE(refused->fields.find("RateLimit-Remaining: 0\r\n"), std::string::npos);
    EXPECT_NE(refused->fields.find("RateLimit-Reset: 119\r\n"), std::string::npos);
}

TEST(RateLimit, TheKeyTableStaysWithinMaxKeys) {
    rate_limit r(limit(1, 1h, 1, 100));
    const auto t0 = rate_limit::clock::time_point{} + 1h;
    for (int i = 0; i < 10000; ++i) r.take("key" + std::to_string(i), t0);
    EXPECT_LE(r.keys(), 100u);
    // Keys whose bucket is full again are the first to go.
    rate_limit idle(limit(1, 1s, 1, 2));
    idle.take("a", t0);
    idle.take("b", t0 + 2s);
    idle.take("c", t0 + 2s);
    EXPECT_FALSE(idle.take("a", t0 + 2s));  // forgotten, so it passes again
}

TEST(ParseRate, UnitsAndErrors) {
    EXPECT_EQ(config::parse_rate("100/min")->first, 100u);
    EXPECT_EQ(config::parse_rate("100/min")->second, std::chrono::minutes(1));
    EXPECT_EQ(config::parse_rate("5/s")->second, std::chrono::seconds(1));
    EXPECT_EQ(config::parse_rate("5/h")->second, std::chrono::hours(1));
    EXPECT_EQ(config::parse_rate("5/day")->second, std::chrono::hours(24));
    for (const char* bad : {"", "100", "0/s", "-1/s", "1.5/s", "10/fortnight", "x/s", "10/"})
        EXPECT_FALSE(config::parse_rate(bad)) << bad;
}

TEST(HeaderEdits, RemovedFieldsGoAndAddedOnesComeLastKeepingEveryOtherByte) {
    http::header_edits e;
    e.remove = {"server", "x-drop"};
    e.add = {{"X-New", "1"}};
    const std::string head =
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Keep:  spaced \r\nx-drop: a\r\nX-Drop: b\r\n\r\n";
    EXPECT_EQ(http::edit_head(head, e, "Set-Cookie: a=b\r\n"),
              "HTTP/1.1 200 OK\r\nX-Keep:  spaced \r\nX-New: 1\r\nSet-Cookie: a=b\r\n\r\n");
}

http::message_head request(std::string target, std::vector<http::field> fields = {}) {
    http::message_head h;
    h.method = "GET";
    h.target = std::move(target);
    h.fields = std::move(fields);
    return h;
}

request_context context(const http::message_head& h, std::string_view host = "shop.example:8080") {
    return request_context{h,      host, "192.0.2.7", boost::asio::ip::make_address("192.0.2.7"),
                           false,  0,    "",          {}, {}, {}, UINT64_MAX, 0, {}};
}

TEST(ValueTemplate, VariablesAreFilledPerRequest) {
    const auto h = request("/a/b?x=1&y=2");
    auto r = context(h);
    EXPECT_EQ(value_template("{scheme}://{host}{path} from {remote_addr}").expand(r),
              "http://shop.example:8080/a/b from 192.0.2.7");
    EXPECT_EQ(value_template("https://new.example{uri}").expand_location(r),
              "https://new.example/a/b?x=1&y=2");
    EXPECT_EQ(value_template("https://{host}/v2{path}{query}").expand_location(r),
              "https://shop.example/v2/a/b?x=1&y=2");
    EXPECT_EQ(value_template("{unknown} {").expand(r), "{unknown} {");
}

TEST(HeaderRules, SetReplacesAddAppendsAndARequestIdIsAddedOnce) {
    config::header_settings s;
    s.request_set = {{"X-Env", "prod"}};
    s.request_add = {{"X-Via", "{remote_addr}"}};
    s.response_remove = {"server"};
    header_rules rules(s);
    const auto h = request("/", {{"X-Env", "dev"}});
    auto r = context(h);
    EXPECT_FALSE(rules.on_request(r));
    EXPECT_TRUE(r.request.removes("X-ENV"));
    ASSERT_EQ(r.request.add.size(), 3u);
    EXPECT_EQ(r.request.add[0].value, "prod");
    EXPECT_EQ(r.request.add[1].value, "192.0.2.7");
    EXPECT_EQ(r.request.add[2].name, "X-Request-Id");
    EXPECT_EQ(r.request.add[2].value.size(), 32u);
    EXPECT_TRUE(r.response.removes("Server"));

    const auto sent = request("/", {{"X-Request-Id", "abc"}});
    auto kept = context(sent);
    EXPECT_FALSE(rules.on_request(kept));
    EXPECT_EQ(request_id(kept), "abc");
    for (const auto& f : kept.request.add) EXPECT_NE(f.name, "X-Request-Id");
}

TEST(FixedAnswers, MaxBodyJudgesContentLengthAndLimitsTheRest) {
    max_body m(config::max_body_settings{1024});
    const auto big = request("/", {{"Content-Length", "1025"}});
    auto r = context(big);
    auto a = m.on_request(r);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->status, 413u);
    const auto chunked = request("/", {{"Transfer-Encoding", "chunked"}});
    auto c = context(chunked);
    EXPECT_FALSE(m.on_request(c));
    EXPECT_EQ(c.body_limit, 1024u);
}

TEST(FixedAnswers, HttpsOnlyKeepsThePathAndNamesANonDefaultPort) {
    https_only p(config::https_only_settings{308});
    const auto h = request("/x?y");
    auto plain = context(h);
    plain.https_port = 8443;
    auto a = p.on_request(plain);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->fields, "Location: https://shop.example:8443/x?y\r\n");
    auto secure = context(h);
    secure.https = true;
    EXPECT_FALSE(p.on_request(secure));
    const std::string bytes = response_of(*a, false, false);
    EXPECT_EQ(bytes.substr(0, 32), "HTTP/1.1 308 Permanent Redirect\r");
    EXPECT_EQ(bytes.find("Content-Type"), std::string::npos);
    EXPECT_EQ(bytes.find("Connection: close"), std::string::npos);
}

std::string config_error(const std::string& policy_table) {
    return test::site_policy_error(policy_table);
}

TEST(PolicyConfig, ErrorsNameTheLineAndAFix) {
    EXPECT_NE(config_error("type = \"rate_limt\"\n").find("p.toml:5: unknown policy type"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"ip_allow\"\n").find("needs cidrs"), std::string::npos);
    EXPECT_NE(config_error("type = \"ip_allow\"\ncidrs = [\"10.0.0.0/33\"]\n").find("p.toml:6:"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"headers\"\nrequest_set = { Host = \"x\" }\n")
                  .find("cannot be edited"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"headers\"\nrequest_set = { X = \"{nope}\" }\n")
                  .find("unknown variable '{nope}'"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"basic_auth\"\nusers = [\"carol:plain\"]\n").find("plaintext"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"basic_auth\"\nusers = [\"m:$apr1$x$y\"]\n").find("htpasswd -B"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"rate_limit\"\nrate = \"1/s\"\nburts = 3\n")
                  .find("p.toml:7: unknown key 'burts' in a rate_limit policy (known: rate, burst"),
              std::string::npos);
    EXPECT_EQ(config_error("type = \"rate_limit\"\nrate = \"100/min\"\nkey = \"header:X-Api-Key\"\n"),
              "");
}

}  // namespace
}  // namespace porthole::policy

#include "policy/path_rewrite.hpp"

namespace porthole::policy {
namespace {

config::rewrite_settings rewrite_of(std::string strip, std::string from, std::string to,
                                    std::string add) {
    return config::rewrite_settings{std::move(strip), std::move(from), std::move(to),
                                    std::move(add)};
}

TEST(PolicyConfig, AForbiddenTypeIsRefusedByItsOwnName) {
    const std::string jwt = "[[policies]]\ntype = \"jwt\"\nsecret = \"" + std::string(40, 's') +
                            "\"\n";
    EXPECT_FALSE(config::load_owner_policies(jwt, "owner", {"jwt"}));
    EXPECT_TRUE(config::load_owner_policies(jwt, "owner", {"verify_webhook"}));
}

TEST(PathRewrite, PrefixesOnWholeSegmentsAndRegexGroups) {
    EXPECT_EQ(path_rewrite(rewrite_of("/api", "", "", "")).apply("/api/orders"), "/orders");
    EXPECT_EQ(path_rewrite(rewrite_of("/api", "", "", "")).apply("/api"), "/");
    EXPECT_EQ(path_rewrite(rewrite_of("/api", "", "", "")).apply("/apix"), "/apix");
    EXPECT_EQ(path_rewrite(rewrite_of("", "", "", "/v2")).apply("/orders"), "/v2/orders");
    EXPECT_EQ(path_rewrite(rewrite_of("", "", "", "/v2")).apply("/"), "/v2");
    EXPECT_EQ(path_rewrite(rewrite_of("", "^/old/(\\w+)/(\\d+)$", "/new/\\2/\\1", "")).apply(
                  "/old/item/42"),
              "/new/42/item");
    EXPECT_EQ(path_rewrite(rewrite_of("/api", "^/users", "/people", "/v1")).apply("/api/users/7"),
              "/v1/people/7");
    // A pattern that would backtrack for ever elsewhere is linear in RE2.
    const std::string evil(5000, 'a');
    EXPECT_EQ(path_rewrite(rewrite_of("", "^/(a+)+$", "/x", "")).apply("/" + evil + "b"),
              "/" + evil + "b");
}

TEST(PathRewrite, KeepsTheQueryAndFollowsTheRoutesStrip) {
    path_rewrite p(rewrite_of("", "^/a", "/b", ""));
    const auto h = request("/shop/a/c?x=1");
    auto r = context(h);
    r.strip = 5;  // the route's strip_prefix "/shop"
    EXPECT_FALSE(p.on_request(r));
    EXPECT_EQ(r.target, "/b/c?x=1");
    EXPECT_FALSE(p.on_request(r));  // a second step starts from the first's result
    EXPECT_EQ(r.target, "/b/c?x=1");
}

TEST(PolicyConfig, RewriteErrors) {
    EXPECT_NE(config_error("type = \"rewrite\"\nfrom = \"(\"\nto = \"/\"\n").find("RE2"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"rewrite\"\nfrom = \"^/(a)\"\nto = \"/\\\\2\"\n").find("'to'"),
              std::string::npos);
    EXPECT_NE(config_error("type = \"rewrite\"\n").find("needs"), std::string::npos);
    EXPECT_NE(config_error("type = \"rewrite\"\nadd_prefix = \"v2\"\n").find("path prefix"),
              std::string::npos);
}

}  // namespace
}  // namespace porthole::policy
