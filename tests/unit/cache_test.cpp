// The cache's pure parts, case by case against RFC 9111 (and RFC 5861, RFC 9110's conditional and
// range requests): directives, dates, storability, freshness, age, the verdict on a stored
// response, answers made from one, the memory store's budget and the cache's keys.
#include "cache/cache_control.hpp"
#include "cache/freshness.hpp"
#include "cache/http_cache.hpp"
#include "cache/memory_store.hpp"
#include "cache/stored_response.hpp"
#include "config/server_config.hpp"

#include <gtest/gtest.h>

namespace porthole::cache {
namespace {

http::message_head get(std::vector<http::field> fields = {}, std::string method = "GET") {
    http::message_head h;
    h.method = std::move(method);
    h.target = "/a";
    h.fields = std::move(fields);
    return h;
}

response_facts response(unsigned status, std::vector<http::field> fields) {
    return facts_of(status, fields);
}

std::optional<std::string_view> refusal(const response_facts& r,
                                        std::vector<http::field> request_fields = {},
                                        freshness_rules rules = {}) {
    return refusal_to_store("GET", facts_of(get(std::move(request_fields))), r, rules);
}

TEST(CacheControl, DirectivesTheirValuesAndTheirConflicts) {
    const auto d = parse_directives("max-age=60, s-maxage=\"120\", no-cache=\"Set-Cookie, X\", "
                                    "PUBLIC, stale-while-revalidate=5,immutable");
    EXPECT_EQ(d.max_age, 60u);
    EXPECT_EQ(d.s_maxage, 120u);  // the quoted form is accepted
    EXPECT_TRUE(d.no_cache);      // its qualified form counts as the plain one
    EXPECT_TRUE(d.public_);       // names are case-insensitive
    EXPECT_EQ(d.stale_while_revalidate, 5u);
    EXPECT_TRUE(d.immutable);
    EXPECT_FALSE(d.invalid);
    EXPECT_TRUE(parse_directives("max-age=60, max-age=30").invalid);
    EXPECT_FALSE(parse_directives("max-age=60, max-age=60").invalid);
    EXPECT_TRUE(parse_directives("max-age=abc").invalid);
    EXPECT_TRUE(parse_directives("max-age").invalid);
    EXPECT_EQ(parse_directives("max-age=99999999999999999999").max_age, 1u << 31);
    const auto r = parse_directives("max-stale, min-fresh=3, only-if-cached, no-store");
    EXPECT_TRUE(r.any_stale);
    EXPECT_EQ(r.min_fresh, 3u);
    EXPECT_TRUE(r.only_if_cached);
    EXPECT_TRUE(r.no_store);
    EXPECT_FALSE(parse_directives("x-private, nostore").private_);
}

TEST(CacheControl, HttpDatesInTheirThreeForms) {
    EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
    EXPECT_FALSE(parse_http_date("0"));
    EXPECT_FALSE(parse_http_date("yesterday"));
    EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT junk"));
    // what RFC 9110 does not allow is not a date (an Expires that says so is already stale)
    EXPECT_FALSE(parse_http_date("Thu, 18  Aug  2050 02:01:18 GMT"));
    EXPECT_FALSE(parse_http_date("Thu, 18 Aug 2050 2:01:18 GMT"));
    EXPECT_FALSE(parse_http_date("Thu, 18 Aug 2050 02:01:18 UTC"));
    EXPECT_FALSE(parse_http_date("Thu, 18 Aug 2050 25:01:18 GMT"));
    EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 gmt"), 784111777);
    EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST(CacheControl, VaryNamesAndNormalizedValues) {
    EXPECT_EQ(vary_names("Accept-Encoding, accept-encoding ,X-Foo"),
              (std::vector<std::string>{"accept-encoding", "x-foo"}));
    EXPECT_EQ(vary_names("*"), std::vector<std::string>{"*"});
    EXPECT_EQ(normalized_values({"gzip ,  br", " zstd"}), "gzip, br, zstd");
    EXPECT_EQ(normalized_values({}), "");
}

TEST(Storable, WhatASharedCacheMayKeep) {
    EXPECT_FALSE(refusal(response(200, {{"Cache-Control", "max-age=60"}})));
    EXPECT_FALSE(refusal(response(200, {})));  // heuristically cacheable
    EXPECT_TRUE(refusal(response(201, {})));   // not without explicit freshness
    EXPECT_FALSE(refusal(response(201, {{"Expires", "Sun, 06 Nov 2094 08:49:37 GMT"}})));
    EXPECT_TRUE(refusal(response(206, {{"Cache-Control", "max-age=60"}})));
    EXPECT_TRUE(refusal(response(200, {{"Cache-Control", "no-store"}})));
    EXPECT_TRUE(refusal(response(200, {{"Cache-Control", "private, max-age=60"}})));
    EXPECT_TRUE(refusal(response(200, {{"Vary", "*"}})));
    EXPECT_TRUE(refusal(response(200, {{"Cache-Control", "max-age=60"}}),
                        {{"Cache-Control", "no-store"}}));
    // must-understand: a known status overrides no-store; an unknown one is never stored
    EXPECT_FALSE(refusal(response(200, {{"Cache-Control", "must-understand, no-store"}})));
    EXPECT_TRUE(refusal(response(299, {{"Cache-Control", "must-understand, max-age=9"}})));
}

TEST(Storable, AuthorizationOnlyWithPublicSMaxageOrMustRevalidate) {
    const std::vector<http::field> auth{{"Authorization", "Bearer x"}};
    EXPECT_TRUE(refusal(response(200, {{"Cache-Control", "max-age=60"}}), auth));
    EXPECT_FALSE(refusal(response(200, {{"Cache-Control", "public, max-age=60"}}), auth));
    EXPECT_FALSE(refusal(response(200, {{"Cache-Control", "s-maxage=60"}}), auth));
    EXPECT_FALSE(refusal(response(200, {{"Cache-Control", "must-revalidate, max-age=6"}}), auth));
}

TEST(Storable, SetCookieOnlyWhenTheOperatorSaysSo) {
    const auto r = response(200, {{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=b"}});
    EXPECT_TRUE(refusal(r));
    freshness_rules allow;
    allow.store_set_cookie = true;
    EXPECT_FALSE(refusal(r, {}, allow));
}

TEST(Freshness, LifetimeFromSMaxageMaxAgeExpiresOrTheHeuristic) {
    const freshness_rules rules;
    const std::string date = "Sun, 06 Nov 1994 08:49:37 GMT";
    EXPECT_EQ(freshness_lifetime(response(200, {{"Cache-Control", "max-age=60, s-maxage=5"}}),
                                 rules),
              5u);
    EXPECT_EQ(freshness_lifetime(response(200, {{"Cache-Control", "max-age=60"},
                                                {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"},
                                                {"Date", date}}),
                                 rules),
              60u);
    EXPECT_EQ(freshness_lifetime(
                  response(200, {{"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}, {"Date", date}}),
                  rules),
              3600u);
    EXPECT_EQ(freshness_lifetime(response(200, {{"Expires", "0"}, {"Date", date}}), rules), 0u);
    EXPECT_EQ(freshness_lifetime(response(200, {{"Cache-Control", "max-age=1, max-age=2"}}),
                                 rules),
              0u);
    // 10% of the time since Last-Modified, capped; nothing without Last-Modified
    EXPECT_EQ(freshness_lifetime(
                  response(200, {{"Last-Modified", "Sun, 06 Nov 1994 07:49:37 GMT"},
                                 {"Date", date}}),
                  rules),
              360u);
    EXPECT_EQ(freshness_lifetime(
                  response(200, {{"Last-Modified", "Sun, 06 Nov 1974 07:49:37 GMT"},
                                 {"Date", date}}),
                  rules),
              rules.heuristic_cap);
    EXPECT_EQ(freshness_lifetime(response(200, {{"Date", date}}), rules), 0u);
    EXPECT_EQ(freshness_lifetime(response(302, {{"Date", date},
                                                {"Last-Modified", "Sun, 06 Nov 1994 07:49:37 GMT"}}),
                                 rules),
              0u);  // not heuristically cacheable
    freshness_rules ttl;
    ttl.default_ttl = 30;
    EXPECT_EQ(freshness_lifetime(response(200, {{"Date", date}}), ttl), 30u);
}

TEST(Freshness, AgeIsTheFirstValueOfTheFirstField) {
    EXPECT_EQ(response(200, {{"Age", "7200, 0"}}).age, 7200u);
    EXPECT_EQ(response(200, {{"Age", "7200"}, {"Age", "0"}}).age, 7200u);
    EXPECT_EQ(response(200, {{"Age", "abc"}}).age, 0u);
    EXPECT_EQ(response(200, {{"Age", "-7200"}}).age, 0u);
}

TEST(Freshness, CdnCacheControlTakesCacheControlsPlace) {
    const auto r = response(200, {{"Cache-Control", "max-age=60"},
                                  {"CDN-Cache-Control", "private"}});
    EXPECT_TRUE(r.cc.private_);
    EXPECT_FALSE(r.cc.max_age);
    // not a Structured Fields dictionary, or a number as a string: ignored, Cache-Control decides
    for (const char* bad : {"max-age=10000, &&&&&", "max-age=\"10000\"", "Max-Age=5", "max-age=5,"}) {
        const auto f = response(200, {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", bad}});
        EXPECT_TRUE(f.cc.no_store) << bad;
        EXPECT_FALSE(f.cc.max_age) << bad;
    }
}

TEST(Freshness, CurrentAgeCountsAgeDelayAndResidence) {
    const auto r = response(200, {{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"}, {"Age", "10"}});
    const std::int64_t date = 784111777;
    // requested at date, answered 2 s later: age 10 + delay 2; then 5 s in the store
    EXPECT_EQ(current_age(r, date, date + 2, date + 7), 17u);
    // a Date far in the past makes the apparent age win
    EXPECT_EQ(current_age(r, date + 100, date + 100, date + 100), 100u);
}

TEST(Freshness, TheVerdictOnAStoredResponse) {
    const auto plain = response(200, {});
    const auto ask = [](std::vector<http::field> f) { return facts_of(get(std::move(f))); };
    EXPECT_EQ(judge(plain, ask({}), 60, 10).verdict, use::fresh);
    EXPECT_EQ(judge(plain, ask({}), 60, 10).ttl, 50);
    EXPECT_EQ(judge(plain, ask({}), 60, 60).verdict, use::validate);
    EXPECT_EQ(judge(plain, ask({{"Cache-Control", "no-cache"}}), 60, 1).verdict, use::validate);
    EXPECT_EQ(judge(plain, ask({{"Pragma", "no-cache"}}), 60, 1).verdict, use::validate);
    EXPECT_EQ(judge(plain, ask({{"Pragma", "no-cache"}, {"Cache-Control", "max-stale"}}), 60, 1)
                  .verdict,
              use::fresh);  // Pragma counts only without Cache-Control
    EXPECT_EQ(judge(plain, ask({{"Cache-Control", "max-age=5"}}), 60, 10).verdict, use::validate);
    EXPECT_EQ(judge(plain, ask({{"Cache-Control", "min-fresh=55"}}), 60, 10).verdict,
              use::validate);
    EXPECT_EQ(judge(plain, ask({{"Cache-Control", "max-stale=5"}}), 60, 64).verdict,
              use::stale_allowed);
    EXPECT_EQ(judge(plain, ask({{"Cache-Control", "max-stale=5"}}), 60, 66).verdict,
              use::validate);
    EXPECT_EQ(judge(plain, ask({{"Cache-Control", "max-stale"}}), 60, 9999).verdict,
              use::stale_allowed);
    const auto strict = response(200, {{"Cache-Control", "max-age=60, must-revalidate"}});
    EXPECT_EQ(judge(strict, ask({{"Cache-Control", "max-stale"}}), 60, 61).verdict,
              use::validate);
    const auto shared = response(200, {{"Cache-Control", "s-maxage=60"}});
    EXPECT_EQ(judge(shared, ask({{"Cache-Control", "max-stale"}}), 60, 61).verdict,
              use::validate);
    const auto no_cache = response(200, {{"Cache-Control", "no-cache, max-age=60"}});
    EXPECT_EQ(judge(no_cache, ask({}), 60, 1).verdict, use::validate);
    const auto swr = response(200, {{"Cache-Control", "max-age=1, stale-while-revalidate=10"}});
    EXPECT_EQ(judge(swr, ask({}), 1, 5).verdict, use::stale_revalidate);
    EXPECT_EQ(judge(swr, ask({}), 1, 12).verdict, use::validate);
}

TEST(Freshness, StaleIfErrorFromTheResponseOrTheRequest) {
    const auto ask = [](std::vector<http::field> f) { return facts_of(get(std::move(f))); };
    const auto sie = response(200, {{"Cache-Control", "max-age=1, stale-if-error=60"}});
    EXPECT_TRUE(usable_on_error(sie, ask({}), 59));
    EXPECT_FALSE(usable_on_error(sie, ask({}), 61));
    EXPECT_FALSE(usable_on_error(response(200, {}), ask({}), 1));
    EXPECT_TRUE(usable_on_error(response(200, {}), ask({{"Cache-Control", "stale-if-error=5"}}),
                                4));
    EXPECT_FALSE(usable_on_error(
        response(200, {{"Cache-Control", "must-revalidate, stale-if-error=60"}}), ask({}), 1));
    // the operator's stale_when_offline: any stale response, but never past must-revalidate
    EXPECT_TRUE(usable_on_error(response(200, {}), ask({}), 9999, true));
    for (const char* forbids : {"must-revalidate", "proxy-revalidate", "s-maxage=1", "no-cache"})
        EXPECT_FALSE(usable_on_error(response(200, {{"Cache-Control", forbids}}), ask({}), 1, true))
            << forbids;
}

stored_response stored(std::vector<http::field> fields, std::string body = "0123456789") {
    stored_response s;
    s.status = 200;
    s.fields = storable_fields(fields, 784111777);
    s.facts = facts_of(200, s.fields);
    s.body = std::move(body);
    return s;
}

TEST(StoredResponse, FieldsKeptWithoutHopByHopOnesAndWithADate) {
    const auto kept = storable_fields({{"Connection", "close, X-Private"},
                                       {"X-Private", "1"},
                                       {"Keep-Alive", "timeout=5"},
                                       {"Transfer-Encoding", "chunked"},
                                       {"Content-Length", "10"},
                                       {"Age", "3"},
                                       {"ETag", "\"a\""}},
                                      784111777);
    ASSERT_EQ(kept.size(), 2u);
    EXPECT_EQ(kept[0].name, "ETag");
    EXPECT_EQ(kept[1].name, "Date");
    EXPECT_EQ(kept[1].value, "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST(StoredResponse, VisitorsConditionalRequestsAnsweredWith304) {
    const auto s = stored({{"ETag", "W/\"v1\""}, {"Last-Modified", "Sun, 06 Nov 1994 07:00:00 GMT"}});
    EXPECT_EQ(shape_answer(s, get({{"If-None-Match", "\"v0\", \"v1\""}})).status, 304u);
    EXPECT_EQ(shape_answer(s, get({{"If-None-Match", "*"}})).status, 304u);
    EXPECT_EQ(shape_answer(s, get({{"If-None-Match", "\"v2\""}})).status, 200u);
    // If-Modified-Since only counts without If-None-Match
    EXPECT_EQ(shape_answer(s, get({{"If-Modified-Since", "Sun, 06 Nov 1994 07:00:00 GMT"}}))
                  .status,
              304u);
    EXPECT_EQ(shape_answer(s, get({{"If-Modified-Since", "Sun, 06 Nov 1994 06:59:59 GMT"}}))
                  .status,
              200u);
    EXPECT_EQ(shape_answer(s, get({{"If-None-Match", "\"v2\""},
                                   {"If-Modified-Since", "Sun, 06 Nov 1994 07:00:00 GMT"}}))
                  .status,
              200u);
}

TEST(StoredResponse, RangesOfTheStoredBody) {
    const auto s = stored({{"ETag", "\"v1\""}});
    const auto range = [&](std::string spec, std::vector<http::field> more = {}) {
        more.push_back({"Range", std::move(spec)});
        return shape_answer(s, get(std::move(more)));
    };
    EXPECT_EQ(range("bytes=2-4").status, 206u);
    EXPECT_EQ(range("bytes=2-4").first, 2u);
    EXPECT_EQ(range("bytes=2-4").length, 3u);
    EXPECT_EQ(range("bytes=7-").length, 3u);
    EXPECT_EQ(range("bytes=-4").first, 6u);
    EXPECT_EQ(range("bytes=5-100").length, 5u);
    EXPECT_EQ(range("bytes=10-").status, 416u);
    EXPECT_EQ(range("bytes=1-2,4-5").status, 200u);  // several ranges: the whole body
    EXPECT_EQ(range("items=1-2").status, 200u);
    EXPECT_EQ(range("bytes=1-2", {{"If-Range", "\"v1\""}}).status, 206u);
    EXPECT_EQ(range("bytes=1-2", {{"If-Range", "\"v0\""}}).status, 200u);
    const auto head = answer_head(s, range("bytes=2-4"), {7, "porthole; hit", false, 11});
    EXPECT_NE(head.find("HTTP/1.1 206 Partial Content\r\n"), std::string::npos);
    EXPECT_NE(head.find("Content-Range: bytes 2-4/10\r\n"), std::string::npos);
    EXPECT_NE(head.find("Content-Length: 3\r\n"), std::string::npos);
    EXPECT_NE(head.find("Age: 7\r\n"), std::string::npos);
    EXPECT_NE(head.find("Cache-Status: porthole; hit\r\n"), std::string::npos);
}

TEST(StoredResponse, A304FromTheUpstreamRenewsTheStoredFields) {
    auto s = stored({{"ETag", "\"v1\""}, {"Cache-Control", "max-age=1"}, {"X-Old", "1"}});
    refresh(s, {{"Cache-Control", "max-age=99"}, {"Content-Length", "0"}, {"Age", "4"}}, 100, 101,
            {});
    EXPECT_EQ(s.facts.age, 4u);
    EXPECT_EQ(*s.find("cache-control"), "max-age=99");
    EXPECT_EQ(*s.find("x-old"), "1");
    EXPECT_EQ(s.lifetime, 99u);
    EXPECT_EQ(s.response_time, 101);
    EXPECT_EQ(s.body, "0123456789");
}

entry made(std::size_t body, std::vector<std::pair<std::string, std::string>> vary = {}) {
    auto s = std::make_shared<stored_response>(stored({}, std::string(body, 'x')));
    s->vary_values = std::move(vary);
    return s;
}

TEST(MemoryStore, KeepsItsBudgetByEvictingTheLeastRecentlyUsed) {
    memory_store store(3 * made(1000)->bytes() + 10, 2000);
    EXPECT_TRUE(store.put("a", made(1000)));
    EXPECT_TRUE(store.put("b", made(1000)));
    EXPECT_TRUE(store.put("c", made(1000)));
    EXPECT_EQ(store.find("a").size(), 1u);  // a is now the most recent
    EXPECT_TRUE(store.put("d", made(1000)));
    EXPECT_TRUE(store.find("b").empty());
    EXPECT_EQ(store.find("a").size(), 1u);
    EXPECT_EQ(store.entries(), 3u);
    EXPECT_LE(store.bytes(), 3 * made(1000)->bytes() + 10);
    EXPECT_FALSE(store.put("big", made(5000)));
    EXPECT_EQ(store.remove_prefix("c"), 1u);
    EXPECT_EQ(store.remove("a"), 1u);
    EXPECT_EQ(store.entries(), 1u);
}

TEST(MemoryStore, VariantsByVaryValues) {
    memory_store store(1 << 20, 1 << 20);
    store.put("k", made(10, {{"accept-encoding", "gzip"}}));
    store.put("k", made(10, {{"accept-encoding", "br"}}));
    store.put("k", made(20, {{"accept-encoding", "gzip"}}));  // replaces the gzip one
    const auto v = store.find("k");
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0]->body.size(), 20u);
    EXPECT_EQ(store.entries(), 2u);
}

TEST(HttpCache, KeysLookupsAndInvalidation) {
    EXPECT_EQ(http_cache::key_of(false, "Shop.Test:80", "/a?b"), "http://shop.test/a?b");
    EXPECT_EQ(http_cache::key_of(true, "shop.test:8443", "/"), "https://shop.test:8443/");
    http_cache c(cache_settings{});
    auto e = std::make_shared<stored_response>(stored(
        {{"Cache-Control", "max-age=60"}, {"Date", format_http_date(epoch_now())}}));
    e->lifetime = 60;
    e->request_time = e->response_time = epoch_now();
    e->vary_values = {{"accept-language", "fr"}};
    const std::string key = http_cache::key_of(false, "shop.test", "/a");
    c.store(key, e);
    EXPECT_EQ(c.lookup(key, get({{"Accept-Language", "fr"}}), epoch_now()).verdict.verdict,
              use::fresh);
    EXPECT_EQ(c.lookup(key, get({{"Accept-Language", "de"}}), epoch_now()).miss, "vary-miss");
    EXPECT_EQ(c.lookup("http://shop.test/b", get(), epoch_now()).miss, "uri-miss");
    c.store(http_cache::key_of(false, "shop.test", "/b"), e);
    c.store(http_cache::key_of(false, "shop.test", "/c"), e);
    c.invalidate(false, "shop.test", "/a", {},
                 "HTTP/1.1 201 Created\r\nLocation: http://shop.test/b\r\n"
                 "Content-Location: http://other.test/c\r\n\r\n");
    EXPECT_EQ(c.entries(), 1u);  // /a and /b went; /c is another host's URI
    EXPECT_EQ(c.purge("shop.test/", true), 1u);
    EXPECT_EQ(c.entries(), 0u);
    // A tunnel's entries are its holder's; a purge by URL reaches them too.
    // The holder's identity is kept as a digest only.
    const std::string scoped = http_cache::key_of(false, "a.relay", "/x", c.scope_of("c1"));
    EXPECT_TRUE(scoped.starts_with("http://a.relay/x @")) << scoped;
    EXPECT_EQ(scoped.size(), std::string("http://a.relay/x @").size() + 32);
    EXPECT_EQ(scoped.find("c1"), std::string::npos);
    EXPECT_EQ(c.scope_of("c1"), c.scope_of("c1"));
    EXPECT_NE(c.scope_of("c1"), c.scope_of("c2"));
    EXPECT_EQ(c.scope_of(""), "");
    c.store(scoped, e);
    EXPECT_EQ(c.lookup(http_cache::key_of(false, "a.relay", "/x", c.scope_of("c2")), get(),
                       epoch_now())
                  .miss,
              "uri-miss");
    EXPECT_EQ(c.purge("http://a.relay/x", false), 1u);
}

TEST(CacheConfig, KeysAndTheirErrors) {
    const auto load = [](const std::string& table) {
        config::server_config cfg;
        const std::string text = "[[sites]]\nhosts = [\"a.example\"]\nupstream = "
                                 "[\"http://127.0.0.1:9\"]\ncache = " +
                                 table + "\n";
        auto r = config::load_server_text(text, "p.toml", cfg);
        return r ? std::string() : r.error();
    };
    EXPECT_EQ(load("{ memory = \"64MiB\", max_object = \"1MiB\", default_ttl = \"5m\" }"), "");
    EXPECT_NE(load("{ memroy = \"64MiB\" }").find("did you mean 'memory'"), std::string::npos);
    EXPECT_NE(load("{ memory = \"lots\" }").find("p.toml:4: cache.memory must be a size"),
              std::string::npos);
    EXPECT_NE(load("{ memory = \"1MiB\", max_object = \"2MiB\" }").find("larger than"),
              std::string::npos);
    EXPECT_EQ(load("{ memory = \"1MiB\" }"), "");  // the default max_object shrinks to fit
    EXPECT_EQ(load("{ disk = { path = \"/var/cache/p\", size = \"2GiB\" } }"), "");
    EXPECT_NE(load("{ disk = { path = \"cache\" } }").find("p.toml:4: cache.disk.path must be an "
                                                         "absolute directory path"),
              std::string::npos);
    EXPECT_NE(load("{ disk = { size = \"1GiB\" } }").find("cache.disk needs a path"),
              std::string::npos);
    EXPECT_NE(load("{ disk = { path = \"/c\", size = \"big\" } }").find("disk.size must be a size"),
              std::string::npos);
    EXPECT_NE(load("{ disk = { path = \"/c\", sise = \"1GiB\" } }").find("did you mean 'size'"),
              std::string::npos);
    EXPECT_NE(load("{ max_object = \"2MiB\", disk = { path = \"/c\", size = \"1MiB\" } }")
                  .find("larger than cache.disk.size"),
              std::string::npos);
    // Two caches in one directory would evict each other's files.
    config::server_config cfg;
    const auto r = config::load_server_text(
        "[tunnel_policy]\ncache = { disk = { path = \"/var/cache/p/\" } }\n"
        "[[sites]]\nhosts = [\"a.example\"]\nupstream = [\"http://127.0.0.1:9\"]\n"
        "cache = { disk = { path = \"/var/cache/p\" } }\n",
        "p.toml", cfg);
    ASSERT_TRUE(r);
    const auto checked = config::validate(cfg);
    ASSERT_FALSE(checked);
    EXPECT_NE(checked.error().find("p.toml:6: cache disk path /var/cache/p is also the one at "
                                   "p.toml:2"),
              std::string::npos)
        << checked.error();
}

}  // namespace
}  // namespace porthole::cache
