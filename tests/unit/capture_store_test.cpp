#include "observe/capture_store.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace porthole::observe {
namespace {

http::message_head get(std::string target) {
    http::message_head h;
    h.method = "GET";
    h.target = std::move(target);
    h.fields.push_back({"Host", "x.example.com"});
    return h;
}

TEST(CaptureStore, ListsNewestFirstAndFindsById) {
    capture_store store(1 << 20, 1024);
    auto a = store.begin("web", "1.2.3.4", get("/a"), "GET /a HTTP/1.1\r\n\r\n");
    auto b = store.begin("api", "1.2.3.4", get("/b"), "GET /b HTTP/1.1\r\n\r\n");
    auto list = store.list(10, "");
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0]->id, b->id);
    EXPECT_EQ(store.list(10, "web").size(), 1u);
    EXPECT_EQ(store.find(a->id), a);
    EXPECT_EQ(store.find("nope"), nullptr);
    EXPECT_NE(a->id, b->id);
}

TEST(CaptureStore, EvictsTheOldestRecordsBeyondTheMemoryLimit) {
    capture_store store(64 * 1024, 16 * 1024);
    std::vector<std::string> ids;
    for (int i = 0; i < 100; ++i) {
        auto r = store.begin("web", "", get(fmt::format("/{}", i)), std::string(100, 'h'));
        r->request_body.add(std::string(16 * 1024, 'b'));
        store.changed(*r);
        ids.push_back(r->id);
    }
    const auto kept = store.list(1000, "");
    EXPECT_LT(kept.size(), 5u);
    EXPECT_GE(kept.size(), 1u);
    EXPECT_EQ(kept.front()->id, ids.back());
    EXPECT_EQ(store.find(ids.front()), nullptr);
}

TEST(CaptureStore, KeepsTheLastThousandFramesOfAConnection) {
    capture_store store(64 << 20, 1024);
    auto r = store.begin("web", "", get("/ws"), "");
    for (int i = 0; i < 1500; ++i) {
        http::ws_frame f;
        f.opcode = 1;
        f.payload = std::to_string(i);
        store.frame(*r, {false, std::chrono::system_clock::now(), f});
    }
    ASSERT_TRUE(r->websocket);
    EXPECT_EQ(r->websocket->frames.size(), capture_store::frames_kept);
    EXPECT_EQ(r->websocket->frames_dropped, 500u);
    EXPECT_EQ(r->websocket->frames.front().frame.payload, "500");
}

TEST(CaptureStore, TellsListenersAndStopsWhenUnsubscribed) {
    capture_store store(1 << 20, 1024);
    int requests = 0, clears = 0;
    const auto token = store.subscribe([&](capture_store::event e, const exchange_record*,
                                           const captured_frame*) {
        if (e == capture_store::event::request) ++requests;
        if (e == capture_store::event::clear) ++clears;
    });
    auto r = store.begin("web", "", get("/"), "");
    store.changed(*r);
    store.clear();
    EXPECT_EQ(requests, 2);
    EXPECT_EQ(clears, 1);
    EXPECT_TRUE(store.list(10, "").empty());
    store.unsubscribe(token);
    store.begin("web", "", get("/"), "");
    EXPECT_EQ(requests, 2);
}

TEST(CaptureStore, RecordJsonFollowsTheAgentApiShape) {
    capture_store store(1 << 20, 4);
    auto r = store.begin("web", "9.9.9.9", get("/p?q=1"), "GET /p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    r->request_body.add("abcdefgh");
    http::message_head res;
    res.status = 404;
    res.fields.push_back({"Content-Type", "text/plain"});
    r->response = res;
    r->response_head = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n";
    r->state = exchange_state::complete;
    const auto j = nlohmann::json::parse(record_json(*r));
    EXPECT_EQ(j["uri"], "/api/requests/http/" + r->id);
    EXPECT_EQ(j["tunnel_name"], "web");
    EXPECT_EQ(j["remote_addr"], "9.9.9.9");
    EXPECT_EQ(j["request"]["method"], "GET");
    EXPECT_EQ(j["request"]["uri"], "/p?q=1");
    EXPECT_EQ(j["request"]["headers"]["Host"][0], "x");
    EXPECT_TRUE(j["start"].get<std::string>().ends_with("Z"));
    EXPECT_EQ(j["start"].get<std::string>().size(), std::string("2026-11-29T05:30:00.123Z").size());
    EXPECT_EQ(j["response"]["headers"]["Content-Type"][0], "text/plain");
    EXPECT_EQ(j["request"]["body_size"], 8);
    EXPECT_EQ(j["request"]["body_truncated"], true);
    EXPECT_EQ(*base64_decode(j["request"]["raw"].get<std::string>()),
              "GET /p?q=1 HTTP/1.1\r\nHost: x\r\n\r\nabcd");
    EXPECT_EQ(j["response"]["status"], "404 Not Found");
    EXPECT_EQ(j["response"]["status_code"], 404);
    EXPECT_EQ(j["state"], "complete");
    EXPECT_FALSE(j.contains("websocket"));
}

TEST(CaptureStore, Base64RoundTrips) {
    for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)})
        EXPECT_EQ(*base64_decode(base64_encode(s)), s);
    EXPECT_FALSE(base64_decode("abc").has_value());
    EXPECT_FALSE(base64_decode("@@@@").has_value());
}

}  // namespace
}  // namespace porthole::observe
