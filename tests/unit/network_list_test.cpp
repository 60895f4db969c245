#include "net/network_list.hpp"

#include <gtest/gtest.h>

namespace porthole::net {
namespace {

network_list list(const std::vector<std::string>& entries) {
    auto l = network_list::parse(entries);
    EXPECT_TRUE(l) << l.error();
    return l ? *l : network_list{};
}

TEST(NetworkList, MatchesByPrefixInEachFamily) {
    const auto l = list({"10.0.0.0/8", "192.168.1.7", "fd00::/8", "2001:db8:1::/48"});
    EXPECT_TRUE(l.contains("10.255.0.1"));
    EXPECT_FALSE(l.contains("11.0.0.1"));
    EXPECT_TRUE(l.contains("192.168.1.7"));
    EXPECT_FALSE(l.contains("192.168.1.8"));
    EXPECT_TRUE(l.contains("fd12::1"));
    EXPECT_FALSE(l.contains("fe80::1"));
    EXPECT_TRUE(l.contains("2001:db8:1:ffff::1"));
    EXPECT_FALSE(l.contains("2001:db8:2::1"));
    EXPECT_FALSE(l.contains("not an address"));
}

TEST(NetworkList, OddPrefixLengthsAndMappedAddresses) {
    const auto l = list({"172.16.0.0/12", "::ffff:203.0.113.0/120"});
    EXPECT_TRUE(l.contains("172.31.255.255"));
    EXPECT_FALSE(l.contains("172.32.0.0"));
    EXPECT_TRUE(l.contains("::ffff:172.20.0.1"));  // a v4-mapped peer
    EXPECT_TRUE(l.contains("203.0.113.200"));  // a v4-mapped entry
    EXPECT_FALSE(l.contains("::172.20.0.1"));
    EXPECT_TRUE(list({"0.0.0.0/0"}).contains("8.8.8.8"));
    EXPECT_FALSE(list({"0.0.0.0/0"}).contains("::1"));
}

TEST(NetworkList, BadEntriesNameThemselves) {
    for (const std::string bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/8x",
                                  "banana", "10.0.0.0/-1"}) {
        auto l = network_list::parse({bad});
        ASSERT_FALSE(l) << bad;
        EXPECT_NE(l.error().find(bad), std::string::npos) << l.error();
    }
}

TEST(ClientBehind, WalksTheChainFromTheRightPastTrustedProxies) {
    const auto trusted = list({"10.0.0.0/8"});
    // an untrusted peer: its own address, whatever it claims
    EXPECT_EQ(client_behind(trusted, "1.2.3.4", "203.0.113.9"), "203.0.113.9");
    EXPECT_EQ(client_behind(trusted, "", "10.0.0.1"), "10.0.0.1");
    EXPECT_EQ(client_behind(trusted, "198.51.100.7", "10.0.0.1"), "198.51.100.7");
    // a forged left part is never reached: the first untrusted from the right wins
    EXPECT_EQ(client_behind(trusted, "6.6.6.6, 198.51.100.7, 10.1.1.1", "10.0.0.1"),
              "198.51.100.7");
    EXPECT_EQ(client_behind(trusted, "10.2.2.2,10.3.3.3", "10.0.0.1"), "10.2.2.2");
    // garbage stops the walk at the last address believed
    EXPECT_EQ(client_behind(trusted, "198.51.100.7, junk, 10.1.1.1", "10.0.0.1"), "10.1.1.1");
    EXPECT_EQ(client_behind(trusted, " 2001:db8::7 ", "10.0.0.1"), "2001:db8::7");
}

}  // namespace
}  // namespace porthole::net
