#include "admin/api.hpp"
#include "admin/event_feed.hpp"
#include "observe/recent_events.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace porthole;
using observe::event_kind;
using observe::recent_events;

namespace {

const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1746093845123));

observe::event_facts refusal(std::string_view target) {
    return {.kind = event_kind::refusal,
            .reason = "basic_auth",
            .status = 401,
            .visitor = "203.0.113.7",
            .host = "shop.example.com",
            .method = "GET",
            .target = target,
            .site = "shop.example.com"};
}

std::vector<std::uint64_t> seqs_since(const recent_events& r, std::uint64_t after) {
    std::vector<std::uint64_t> out;
    r.for_each_since(after, [&](const observe::recent_event& e) { out.push_back(e.seq); });
    return out;
}

}  // namespace

TEST(RecentEvents, KeepsThePathWithoutItsQuery) {
    recent_events r;
    r.add(refusal("/private/report?token=secret&x=1"), at);
    ASSERT_EQ(r.last_seq(), 1u);
    r.for_each_since(0, [](const observe::recent_event& e) {
        EXPECT_EQ(e.seq, 1u);
        EXPECT_EQ(e.path, "/private/report");
        EXPECT_EQ(e.host, "shop.example.com");
        EXPECT_EQ(e.reason, "basic_auth");
        EXPECT_EQ(e.status, 401u);
        EXPECT_EQ(e.visitor, "203.0.113.7");
        EXPECT_EQ(e.method, "GET");
        EXPECT_EQ(e.site, "shop.example.com");
        EXPECT_TRUE(e.tunnel.empty());
        EXPECT_EQ(e.time, at);
    });
}

TEST(RecentEvents, TheRingKeepsTheNewestInOrder) {
    recent_events r;
    for (std::size_t i = 0; i < recent_events::capacity + 10; ++i)
        r.add(refusal("/n" + std::to_string(i + 1)), at);
    EXPECT_EQ(r.last_seq(), recent_events::capacity + 10);
    const auto all = seqs_since(r, 0);
    ASSERT_EQ(all.size(), recent_events::capacity);
    EXPECT_EQ(all.front(), 11u);
    EXPECT_EQ(all.back(), recent_events::capacity + 10);
    for (std::size_t i = 1; i < all.size(); ++i) EXPECT_EQ(all[i], all[i - 1] + 1);
    // each slot holds its own event, not the one it replaced
    r.for_each_since(0, [](const observe::recent_event& e) {
        EXPECT_EQ(e.path, "/n" + std::to_string(e.seq));
    });
    EXPECT_EQ(seqs_since(r, recent_events::capacity + 8),
              (std::vector<std::uint64_t>{recent_events::capacity + 9,
                                          recent_events::capacity + 10}));
    EXPECT_TRUE(seqs_since(r, r.last_seq()).empty());
}

TEST(RecentEvents, VisitorTextIsCutShortAndMadePrintable) {
    recent_events r;
    std::string long_path = "/" + std::string(5000, 'a');
    auto f = refusal(long_path);
    f.host = "evil\r\nX-Injected: 1";
    r.add(f, at);
    r.for_each_since(0, [](const observe::recent_event& e) {
        EXPECT_EQ(e.path.size(), recent_events::text_limit);
        EXPECT_EQ(e.host, "evil\\x0d\\x0aX-Injected: 1");
    });
}

TEST(RecentEvents, TellsItsWatcherOfEachEvent) {
    recent_events r;
    int told = 0;
    r.on_add([&] { ++told; });
    r.add(refusal("/a"), at);
    r.add({.kind = event_kind::error, .reason = "timeout", .status = 504}, at);
    EXPECT_EQ(told, 2);
    r.on_add(nullptr);
    r.add(refusal("/b"), at);
    EXPECT_EQ(told, 2);
}

TEST(RecentEvents, JsonOfAnEvent) {
    recent_events r;
    r.add(refusal("/private?x=1"), at);
    r.add({.kind = event_kind::error, .reason = "connect", .status = 502, .tunnel = "d7f2a"}, at);
    std::vector<nlohmann::json> docs;
    r.for_each_since(0, [&](const observe::recent_event& e) {
        docs.push_back(nlohmann::json::parse(admin::event_json(e)));
    });
    ASSERT_EQ(docs.size(), 2u);
    EXPECT_EQ(docs[0], nlohmann::json::parse(R"({"seq":1,"time":"2025-05-01T10:04:05.123Z",
        "kind":"refusal","reason":"basic_auth","status":401,"visitor":"203.0.113.7",
        "host":"shop.example.com","method":"GET","path":"/private","tunnel":null,
        "site":"shop.example.com"})"));
    EXPECT_EQ(docs[1]["kind"], "error");
    EXPECT_EQ(docs[1]["reason"], "connect");
    EXPECT_EQ(docs[1]["tunnel"], "d7f2a");
    EXPECT_TRUE(docs[1]["method"].is_null());
}

TEST(RateEvent, CountsTheDifferenceAndNeverGoesBelowZero) {
    admin::traffic_totals before;
    before.by_class = {1, 0, 10, 2, 5, 0};
    before.bytes_in = 1000;
    before.bytes_out = 5000;
    admin::traffic_totals now = before;
    now.by_class = {1, 0, 17, 2, 4, 1};  // 4xx went down: a label slot was reused
    now.bytes_in = 1500;
    now.bytes_out = 4000;  // so did bytes_out, after a restart of the counters
    now.sessions = 3;
    const auto doc = nlohmann::json::parse(admin::rate_json(before, now, 1002));
    EXPECT_EQ(doc["interval_ms"], 1002);
    EXPECT_EQ(doc["requests"], 8);
    EXPECT_EQ(doc["by_class"], nlohmann::json::parse(
                                   R"({"none":0,"1xx":0,"2xx":7,"3xx":0,"4xx":0,"5xx":1})"));
    EXPECT_EQ(doc["bytes_in"], 500);
    EXPECT_EQ(doc["bytes_out"], 0);
    EXPECT_EQ(doc["sessions"], 3);
    EXPECT_EQ(doc["requests_total"], 25);
}
