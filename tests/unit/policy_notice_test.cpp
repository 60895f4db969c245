#include "relay/policy_notice.hpp"

#include <gtest/gtest.h>

namespace porthole::relay {
namespace {

http::message_head request_with(std::vector<http::field> fields) {
    http::message_head h;
    h.method = "GET";
    h.target = "/private?x=1";
    h.fields = std::move(fields);
    return h;
}

TEST(PolicyNotice, CarriesTheHeadsAndRedactsCredentials) {
    const auto n = policy_notice(
        3, "basic_auth", 401, "198.51.100.4",
        request_with({{"Host", "alpha.example.com"},
                      {"Authorization", "Basic YWxpY2U6c2VjcmV0"},
                      {"proxy-authorization", "Bearer abc.def.ghi"},
                      {"Cookie", "a=b"}}),
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\nwho?\n");
    EXPECT_EQ(n.tunnel_id, 3u);
    EXPECT_EQ(n.status, 401);
    EXPECT_EQ(n.policy, "basic_auth");
    EXPECT_EQ(n.visitor, "198.51.100.4");
    EXPECT_EQ(n.request_head,
              "GET /private?x=1 HTTP/1.1\r\nHost: alpha.example.com\r\n"
              "Authorization: [redacted]\r\nproxy-authorization: [redacted]\r\nCookie: a=b\r\n\r\n");
    EXPECT_EQ(n.response_head,
              "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n");
    EXPECT_EQ(n.response_body, "who?\n");
}

TEST(PolicyNotice, AHeadOverAFrameStringIsCutAtALineEnd) {
    std::vector<http::field> fields;
    for (int i = 0; i < 200; ++i) fields.push_back({"X-Filler-" + std::to_string(i), "0123456789"});
    const auto n = policy_notice(1, "rate_limit", 429, "192.0.2.1", request_with(fields),
                                 "HTTP/1.1 429 Too Many Requests\r\n\r\n");
    ASSERT_LE(n.request_head.size(), protocol::max_string);
    ASSERT_GT(n.request_head.size(), 1000u);
    EXPECT_TRUE(n.request_head.ends_with("\r\n"));
    EXPECT_TRUE(n.request_head.starts_with("GET /private?x=1 HTTP/1.1\r\n"));
}

}  // namespace
}  // namespace porthole::relay
