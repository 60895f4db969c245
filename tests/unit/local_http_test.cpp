// local_http's pure parts: which Host a local tool answers, an Origin's host, query parameters.
#include "observe/local_http.hpp"

#include <gtest/gtest.h>

namespace porthole::observe::local_http {
namespace {

TEST(LocalHttpHost, LocalhostIpLiteralsAndConfiguredNames) {
    const std::vector<std::string> none;
    EXPECT_TRUE(trusted_host("localhost", none));
    EXPECT_TRUE(trusted_host("localhost:4040", none));
    EXPECT_TRUE(trusted_host("127.0.0.1:4040", none));
    EXPECT_TRUE(trusted_host("10.1.2.3", none));
    EXPECT_TRUE(trusted_host("[::1]:7836", none));
    EXPECT_FALSE(trusted_host("", none));
    EXPECT_FALSE(trusted_host("evil.example", none));
    EXPECT_FALSE(trusted_host("localhost.evil.example", none));
    EXPECT_FALSE(trusted_host("[::1", none));
    EXPECT_FALSE(trusted_host("[not-an-address]:80", none));
    const std::vector<std::string> admin{"relay.example.com"};
    EXPECT_TRUE(trusted_host("relay.example.com:7836", admin));
    EXPECT_TRUE(trusted_host("Relay.Example.com", admin));
    EXPECT_FALSE(trusted_host("other.example.com", admin));
}

TEST(LocalHttpOrigin, HostOfAnOrigin) {
    EXPECT_EQ(origin_host("http://127.0.0.1:4040"), "127.0.0.1:4040");
    EXPECT_EQ(origin_host("https://relay.example.com"), "relay.example.com");
    EXPECT_EQ(origin_host("null"), "");
}

TEST(LocalHttpRequest, QueryAndFields) {
    request r;
    r.target = "/api/requests/http?limit=5&tunnel_name=a%20b+c&empty=&flag";
    r.fields = {{"Content-Type", "application/json"}, {"X-Twice", "1"}, {"x-twice", "2"}};
    EXPECT_EQ(r.query("limit"), "5");
    EXPECT_EQ(r.query("tunnel_name"), "a b c");
    EXPECT_EQ(r.query("empty"), "");
    EXPECT_EQ(r.query("flag"), "");
    EXPECT_EQ(r.query("missing"), "");
    EXPECT_EQ(r.field("content-type"), "application/json");
    EXPECT_EQ(r.field("X-TWICE"), "1");
    EXPECT_EQ(r.field("Origin"), "");
}

TEST(LocalHttpReply, ErrorsAreJson) {
    const auto r = error_reply(421, "say \"localhost\"");
    EXPECT_EQ(r.status, 421);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.body, "{\"error\":\"say \\\"localhost\\\"\"}\n");
}

TEST(LocalHttpPeer, Describe) {
    peer tcp;
    tcp.address = "127.0.0.1:51234";
    EXPECT_EQ(tcp.describe(), "127.0.0.1:51234");
    peer unix;
    unix.unix_socket = true;
    unix.uid = 1000;
    unix.pid = 4242;
    EXPECT_EQ(unix.describe(), "uid 1000 (pid 4242)");
}

}  // namespace
}  // namespace porthole::observe::local_http
