#include "net/address_group.hpp"

#include <gtest/gtest.h>

namespace porthole::net {
namespace {

TEST(AddressGroup, Ipv4CountsAloneIpv6ByItsSlash64) {
    EXPECT_EQ(address_group("203.0.113.7"), "203.0.113.7");
    EXPECT_EQ(address_group("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
    EXPECT_EQ(address_group("2001:db8:1:2::1"), address_group("2001:db8:1:2:ffff::9"));
    EXPECT_NE(address_group("2001:db8:1:2::1"), address_group("2001:db8:1:3::1"));
    EXPECT_EQ(address_group("::ffff:203.0.113.7"), "::ffff:203.0.113.7");
    EXPECT_EQ(address_group("unknown"), "unknown");
}

}  // namespace
}  // namespace porthole::net
