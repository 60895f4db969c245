#include "config/endpoint.hpp"

#include <gtest/gtest.h>

#include <string>

namespace porthole::config {
namespace {

TEST(ParseEndpoint, Ipv4) {
    auto ep = parse_endpoint("127.0.0.1:8080");
    ASSERT_TRUE(ep) << ep.error();
    EXPECT_EQ(ep->host, "127.0.0.1");
    EXPECT_EQ(ep->port, 8080);
}

TEST(ParseEndpoint, BracketedIpv6) {
    auto ep = parse_endpoint("[::1]:7835");
    ASSERT_TRUE(ep) << ep.error();
    EXPECT_EQ(ep->host, "::1");
    EXPECT_EQ(ep->port, 7835);

    auto full = parse_endpoint("[2001:db8::1]:443");
    ASSERT_TRUE(full) << full.error();
    EXPECT_EQ(full->host, "2001:db8::1");
    EXPECT_EQ(full->port, 443);
}

TEST(ParseEndpoint, HostnameAndPortZero) {
    auto ep = parse_endpoint("localhost:0");
    ASSERT_TRUE(ep) << ep.error();
    EXPECT_EQ(ep->host, "localhost");
    EXPECT_EQ(ep->port, 0);
}

TEST(ParseEndpoint, PortBounds) {
    EXPECT_EQ(parse_endpoint("h:65535").value().port, 65535);
    EXPECT_EQ(parse_endpoint("h:1").value().port, 1);
    EXPECT_FALSE(parse_endpoint("h:65536"));
}

TEST(ParseServerList, OneOrSeveralRelaysInOrder) {
    auto one = parse_server_list("relay.example.com:7835");
    ASSERT_TRUE(one) << one.error();
    ASSERT_EQ(one->size(), 1u);
    auto three = parse_server_list("a.example.com:7835,[::1]:7000,10.0.0.3:7835");
    ASSERT_TRUE(three) << three.error();
    ASSERT_EQ(three->size(), 3u);
    EXPECT_EQ((*three)[1].to_string(), "[::1]:7000");
    EXPECT_EQ((*three)[2].host, "10.0.0.3");
    for (const char* bad : {"", "a:1,", ",a:1", "a:1,,b:2", "a:0", "a:1,b"}) {
        const auto r = parse_server_list(bad);
        EXPECT_FALSE(r) << "'" << bad << "'";
    }
    const auto zero = parse_server_list("a:1,b:0");
    ASSERT_FALSE(zero);
    EXPECT_NE(zero.error().find("port may not be 0"), std::string::npos) << zero.error();
}

TEST(ParseEndpoint, Errors) {
    for (const char* text : {"nonsense", "", "1.2.3.4:", ":80", "::1:80", "host:99999",
                             "host:abc", "host:-1", "host:+80", "host:80x", "host: 80",
                             "host:4294967296", "[::1]", "[::1:80", "[]:80", "[::1]x:80"}) {
        auto ep = parse_endpoint(text);
        EXPECT_FALSE(ep) << "'" << text << "' parsed as " << ep->to_string();
    }
}

TEST(ParseEndpoint, ErrorsQuoteTheInput) {
    auto missing = parse_endpoint("nonsense");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find("'nonsense'"), std::string::npos) << missing.error();

    auto bad_port = parse_endpoint("host:99999");
    ASSERT_FALSE(bad_port);
    EXPECT_NE(bad_port.error().find("host:99999"), std::string::npos) << bad_port.error();

    auto unbracketed = parse_endpoint("::1:80");
    ASSERT_FALSE(unbracketed);
    EXPECT_NE(unbracketed.error().find("[::1]"), std::string::npos) << unbracketed.error();
}

TEST(EndpointToString, BracketsIpv6Only) {
    EXPECT_EQ((endpoint{"127.0.0.1", 8080}).to_string(), "127.0.0.1:8080");
    EXPECT_EQ((endpoint{"localhost", 0}).to_string(), "localhost:0");
    EXPECT_EQ((endpoint{"::1", 7835}).to_string(), "[::1]:7835");
    EXPECT_EQ((endpoint{"2001:db8::1", 443}).to_string(), "[2001:db8::1]:443");
}

TEST(EndpointToString, RoundTripsThroughParse) {
    for (const endpoint& ep : {endpoint{"127.0.0.1", 8080}, endpoint{"::1", 7835},
                               endpoint{"example.com", 65535}, endpoint{"fe80::1", 1}}) {
        auto parsed = parse_endpoint(ep.to_string());
        ASSERT_TRUE(parsed) << parsed.error();
        EXPECT_EQ(*parsed, ep);
    }
}

TEST(ParsePortRange, Valid) {
    auto r = parse_port_range("20000-20999");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->low, 20000);
    EXPECT_EQ(r->high, 20999);
    EXPECT_EQ(r->to_string(), "20000-20999");

    auto single = parse_port_range("5-5");
    ASSERT_TRUE(single) << single.error();
    EXPECT_EQ(single->low, 5);
    EXPECT_EQ(single->high, 5);

    auto full = parse_port_range("1-65535");
    ASSERT_TRUE(full) << full.error();
    EXPECT_EQ(full->low, 1);
    EXPECT_EQ(full->high, 65535);
}

TEST(ParsePortRange, LowAboveHigh) {
    auto r = parse_port_range("5-1");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("5-1"), std::string::npos) << r.error();
}

TEST(ParsePortRange, Errors) {
    for (const char* text : {"0-10", "10-0", "a-b", "1-b", "a-1", "", "-", "20000", "-5", "5-",
                             "1-65536", "1-2-3", " 1-2", "1 - 2"}) {
        auto r = parse_port_range(text);
        EXPECT_FALSE(r) << "'" << text << "' parsed as " << r->to_string();
    }
}

TEST(PortRange, ContainsIsInclusive) {
    const port_range r{100, 200};
    EXPECT_FALSE(r.contains(99));
    EXPECT_TRUE(r.contains(100));
    EXPECT_TRUE(r.contains(150));
    EXPECT_TRUE(r.contains(200));
    EXPECT_FALSE(r.contains(201));
}

TEST(ParseTarget, BarePortMeansLoopback) {
    auto t = parse_target("3000");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(*t, (endpoint{"127.0.0.1", 3000}));
}

TEST(ParseTarget, HostAndPort) {
    auto t = parse_target("host:81");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(*t, (endpoint{"host", 81}));

    auto v6 = parse_target("[::1]:3000");
    ASSERT_TRUE(v6) << v6.error();
    EXPECT_EQ(*v6, (endpoint{"::1", 3000}));
}

TEST(ParseTarget, HttpUrlWithPort) {
    auto t = parse_target("http://host:82");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(*t, (endpoint{"host", 82}));
}

TEST(ParseTarget, HttpUrlDefaultsToPort80) {
    auto t = parse_target("http://host");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(*t, (endpoint{"host", 80}));
}

TEST(ParseTarget, HttpUrlWithTrailingSlash) {
    auto t = parse_target("http://host:82/");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(*t, (endpoint{"host", 82}));

    auto no_port = parse_target("http://host/");
    ASSERT_TRUE(no_port) << no_port.error();
    EXPECT_EQ(*no_port, (endpoint{"host", 80}));
}

TEST(ParseTarget, HttpUrlWithBracketedIpv6AndPort) {
    auto t = parse_target("http://[::1]:8080");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(*t, (endpoint{"::1", 8080}));
}

TEST(ParseTarget, HttpUrlWithBracketedIpv6WithoutPort) {
    auto t = parse_target("http://[::1]");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(t->host, "::1");
    EXPECT_EQ(t->port, 80);
    EXPECT_EQ(t->to_string(), "[::1]:80");
}

TEST(ParseTarget, HttpUrlWithoutHostIsRejected) {
    for (const char* text : {"http://", "http:///"}) {
        auto t = parse_target(text);
        EXPECT_FALSE(t) << "'" << text << "' parsed as '" << t->to_string() << "'";
    }
}

TEST(ParseTarget, OnlyHttpScheme) {
    auto t = parse_target("https://x");
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().find("http://"), std::string::npos) << t.error();
    EXPECT_FALSE(parse_target("ftp://x:21"));
    EXPECT_FALSE(parse_target("tcp://x:21"));
}

TEST(ParseTarget, RejectsPath) {
    auto t = parse_target("http://h/path");
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().find("path"), std::string::npos) << t.error();
    EXPECT_FALSE(parse_target("http://h:80/path/"));
}

TEST(ParseTarget, RejectsBadPorts) {
    for (const char* text : {"70000", "0", "", "abc", "-1", "host:0", "host:70000", "host:",
                             "http://host:0", "http://host:", "http://host:x", "http://:80"}) {
        auto t = parse_target(text);
        EXPECT_FALSE(t) << "'" << text << "' parsed as " << t->to_string();
    }
    auto zero = parse_target("host:0");
    ASSERT_FALSE(zero);
    EXPECT_NE(zero.error().find("0"), std::string::npos) << zero.error();
}

TEST(IsLoopbackHost, Loopback) {
    EXPECT_TRUE(is_loopback_host("localhost"));
    EXPECT_TRUE(is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(is_loopback_host("127.1.2.3"));
    EXPECT_TRUE(is_loopback_host("::1"));
}

TEST(IsLoopbackHost, NotLoopback) {
    EXPECT_FALSE(is_loopback_host("0.0.0.0"));
    EXPECT_FALSE(is_loopback_host("::"));
    EXPECT_FALSE(is_loopback_host(""));
    EXPECT_FALSE(is_loopback_host("192.168.1.10"));
    EXPECT_FALSE(is_loopback_host("128.0.0.1"));
    EXPECT_FALSE(is_loopback_host("example.com"));
    EXPECT_FALSE(is_loopback_host("localhost.example.com"));
    EXPECT_FALSE(is_loopback_host("[::1]"));
}

}  // namespace
}  // namespace porthole::config
