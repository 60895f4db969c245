// upstream::load_balancer: exact rotation and weight shares for round robin, least_conn and
// random_two preferring idle members, the hash ring's spread and minimal movement when a member
// goes, sticky cookies, and exclusion and empty pools under every policy.
#include "upstream/load_balancer.hpp"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <random>
#include <vector>

namespace porthole::upstream {
namespace {

constexpr std::array all_policies{policy::round_robin, policy::least_conn, policy::random_two,
                                  policy::ip_hash, policy::cookie};

std::vector<member_state> pool(std::vector<std::uint32_t> weights) {
    std::vector<member_state> members;
    for (std::size_t i = 0; i < weights.size(); ++i)
        members.push_back({weights[i], 0, true, "http://10.0.0." + std::to_string(i + 1) + ":80"});
    return members;
}

std::vector<std::string> random_addresses(std::size_t count) {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> octet(0, 255);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < count; ++i)
        out.push_back(std::to_string(octet(rng)) + "." + std::to_string(octet(rng)) + "." +
                      std::to_string(octet(rng)) + "." + std::to_string(octet(rng)));
    return out;
}

std::vector<std::size_t> counts(load_balancer& lb, const std::vector<member_state>& members,
                                int picks) {
    std::vector<std::size_t> seen(members.size());
    for (int k = 0; k < picks; ++k) ++seen.at(lb.pick(members).value());
    return seen;
}

TEST(RoundRobin, RotatesEqualMembersExactly) {
    const auto members = pool({1, 1, 1});
    load_balancer lb(policy::round_robin, members);
    for (int round = 0; round < 100; ++round)
        for (std::size_t i = 0; i < 3; ++i) ASSERT_EQ(lb.pick(members), i) << "round " << round;
}

TEST(RoundRobin, SplitsByWeightSmoothly) {
    auto members = pool({3, 1});
    load_balancer lb(policy::round_robin, members);
    const auto seen = counts(lb, members, 4000);
    EXPECT_NEAR(seen[0], 3000, 150);
    EXPECT_NEAR(seen[1], 1000, 50);

    // nginx's sequence: the heavy member's turns are spread out, not bunched.
    members = pool({5, 1, 1});
    lb.rebuild(members);
    std::vector<std::size_t> order;
    for (int k = 0; k < 7; ++k) order.push_back(*lb.pick(members));
    EXPECT_EQ(order, (std::vector<std::size_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(RoundRobin, AStaggeredRotationStartsFurtherOnAndStaysExact) {
    // Event loop k of a relay starts k places on: two loops' first picks differ.
    auto members = pool({1, 1, 1});
    members[0].available = false;  // skipped as if every member could take requests
    load_balancer second(policy::round_robin, members);
    second.skip(members, 1);
    members[0].available = true;
    for (std::size_t i : {1, 2, 0, 1, 2, 0}) ASSERT_EQ(second.pick(members), i);
    load_balancer least(policy::least_conn, members);
    least.skip(members, 2);
    EXPECT_EQ(least.pick(members), 2U);
}

TEST(RoundRobin, SkipsUnavailableMembers) {
    auto members = pool({1, 1, 1});
    members[1].available = false;
    load_balancer lb(policy::round_robin, members);
    for (int k = 0; k < 50; ++k) {
        EXPECT_EQ(lb.pick(members), 0u);
        EXPECT_EQ(lb.pick(members), 2u);
    }
    members[1].available = true;
    const auto seen = counts(lb, members, 300);
    EXPECT_EQ(seen, (std::vector<std::size_t>{100, 100, 100}));
}

TEST(LeastConn, PrefersTheLeastLoadedByWeight) {
    auto members = pool({1, 1, 1});
    members[0].active = 3;
    members[2].active = 2;
    load_balancer lb(policy::least_conn, members);
    EXPECT_EQ(lb.pick(members), 1u);

    // 3 in flight on weight 4 is lighter than 1 on weight 1.
    members = pool({4, 1});
    members[0].active = 3;
    members[1].active = 1;
    lb.rebuild(members);
    EXPECT_EQ(lb.pick(members), 0u);
}

TEST(LeastConn, EqualMembersTakeTurns) {
    const auto members = pool({1, 1, 1});
    load_balancer lb(policy::least_conn, members);
    for (int round = 0; round < 10; ++round)
        for (std::size_t i = 0; i < 3; ++i) ASSERT_EQ(lb.pick(members), i);
}

TEST(LeastConn, SpreadsLongRequestsByWeight) {
    auto members = pool({2, 1, 1});
    load_balancer lb(policy::least_conn, members);
    for (int k = 0; k < 400; ++k) ++members.at(lb.pick(members).value()).active;
    EXPECT_EQ(members[0].active, 200u);
    EXPECT_EQ(members[1].active, 100u);
    EXPECT_EQ(members[2].active, 100u);
}

TEST(RandomTwo, NeverTakesTheBusierWhenAnotherIsIdle) {
    auto members = pool({1, 1});
    members[0].active = 5;
    load_balancer lb(policy::random_two, members, 1);
    for (int k = 0; k < 1000; ++k) ASSERT_EQ(lb.pick(members), 1u);

    // Of any two distinct members drawn from three, at least one is idle.
    members = pool({1, 1, 1});
    members[1].active = 7;
    lb.rebuild(members);
    for (int k = 0; k < 3000; ++k) ASSERT_NE(lb.pick(members), 1u);
}

TEST(RandomTwo, SpreadsOverMembersByWeight) {
    auto members = pool({1, 1, 1, 1});
    load_balancer lb(policy::random_two, members, 7);
    for (const auto n : counts(lb, members, 8000)) {
        EXPECT_GT(n, 1700u);
        EXPECT_LT(n, 2300u);
    }
    members = pool({3, 1});
    lb.rebuild(members);
    const auto seen = counts(lb, members, 8000);
    EXPECT_NEAR(seen[0], 6000, 300);
}

TEST(RandomTwo, SameSeedSameChoices) {
    const auto members = pool({1, 2, 3, 4});
    load_balancer a(policy::random_two, members, 42);
    load_balancer b(policy::random_two, members, 42);
    for (int k = 0; k < 100; ++k) ASSERT_EQ(a.pick(members), b.pick(members));
}

TEST(IpHash, SameAddressSameMember) {
    const auto members = pool({1, 1, 1, 1});
    load_balancer lb(policy::ip_hash, members);
    load_balancer other(policy::ip_hash, members);  // a second relay thread, or after a restart
    for (const auto& address : random_addresses(200)) {
        const auto first = lb.pick(members, address);
        ASSERT_TRUE(first);
        for (int k = 0; k < 3; ++k) ASSERT_EQ(lb.pick(members, address), first);
        ASSERT_EQ(other.pick(members, address), first);
    }
}

TEST(IpHash, AnIpv6VisitorIsKeyedByItsSlash64) {
    std::string a, b, c;
    EXPECT_EQ(address_key("203.0.113.7", a), "203.0.113.7");
    EXPECT_EQ(address_key("2001:db8:1:2::1", a), address_key("2001:db8:1:2:ffff::9", b));
    EXPECT_NE(address_key("2001:db8:1:2::1", a), address_key("2001:db8:1:3::1", c));
    const auto members = pool({1, 1, 1, 1, 1});
    load_balancer lb(policy::ip_hash, members);
    for (int i = 0; i < 50; ++i) {
        std::string s1, s2;
        const std::string host = "2001:db8:0:" + std::to_string(i) + "::";
        EXPECT_EQ(lb.pick(members, address_key(host + "1", s1)),
                  lb.pick(members, address_key(host + "abcd", s2)));
    }
}

TEST(IpHash, SpreadsAddressesOverMembers) {
    const auto members = pool({1, 1, 1, 1});
    load_balancer lb(policy::ip_hash, members);
    std::vector<std::size_t> seen(4);
    const auto addresses = random_addresses(10000);
    for (const auto& address : addresses) ++seen.at(lb.pick(members, address).value());
    for (const auto n : seen) {
        EXPECT_GT(n, 1500u);
        EXPECT_LT(n, 3500u);
    }
}

TEST(IpHash, SplitsByWeight) {
    const auto members = pool({3, 1});
    load_balancer lb(policy::ip_hash, members);
    std::size_t heavy = 0;
    for (const auto& address : random_addresses(10000)) heavy += lb.pick(members, address) == 0u;
    EXPECT_NEAR(heavy, 7500, 700);
}

TEST(IpHash, AnUnavailableMemberMovesOnlyItsVisitors) {
    auto members = pool({1, 1, 1, 1});
    load_balancer lb(policy::ip_hash, members);
    const auto addresses = random_addresses(10000);
    std::vector<std::size_t> before;
    for (const auto& address : addresses) before.push_back(*lb.pick(members, address));

    members[2].available = false;
    std::size_t moved = 0;
    for (std::size_t k = 0; k < addresses.size(); ++k) {
        const auto now = lb.pick(members, addresses[k]);
        ASSERT_TRUE(now);
        ASSERT_NE(*now, 2u);
        if (before[k] == 2) ++moved;
        else ASSERT_EQ(*now, before[k]) << addresses[k];
    }
    EXPECT_NEAR(static_cast<double>(moved) / addresses.size(), 0.25, 0.07);

    // Back again: everyone returns where they were.
    members[2].available = true;
    for (std::size_t k = 0; k < addresses.size(); ++k)
        ASSERT_EQ(lb.pick(members, addresses[k]), before[k]);
}

TEST(IpHash, RebuildingWithoutAMemberMovesOnlyItsVisitors) {
    auto members = pool({1, 1, 1, 1});
    load_balancer lb(policy::ip_hash, members);
    const auto addresses = random_addresses(10000);
    std::vector<std::string> before;
    for (const auto& address : addresses) before.push_back(members[*lb.pick(members, address)].key);

    const std::string removed = members[1].key;
    members.erase(members.begin() + 1);  // the indexes after it shift; keys identify members
    lb.rebuild(members);
    std::size_t moved = 0;
    for (std::size_t k = 0; k < addresses.size(); ++k) {
        const auto& now = members[lb.pick(members, addresses[k]).value()].key;
        if (before[k] == removed) ++moved;
        else ASSERT_EQ(now, before[k]) << addresses[k];
    }
    EXPECT_NEAR(static_cast<double>(moved) / addresses.size(), 0.25, 0.07);
}

TEST(IpHash, NoAddressFallsBackToRoundRobin) {
    const auto members = pool({1, 1, 1});
    load_balancer lb(policy::ip_hash, members);
    EXPECT_EQ(counts(lb, members, 300), (std::vector<std::size_t>{100, 100, 100}));
}

TEST(Cookie, ItsValueRoutesToTheMemberItNames) {
    const auto members = pool({1, 1, 1, 1, 1});
    load_balancer lb(policy::cookie, members);
    for (std::size_t i = 0; i < members.size(); ++i) {
        const auto value = lb.cookie_value(i);
        EXPECT_EQ(value.size(), 16u);
        EXPECT_EQ(value.find_first_not_of("0123456789abcdef"), std::string::npos);
        EXPECT_EQ(value.find("10.0.0"), std::string::npos);
        for (int k = 0; k < 5; ++k) EXPECT_EQ(lb.pick(members, value), i);
        for (std::size_t j = 0; j < i; ++j) EXPECT_NE(lb.cookie_value(j), value);
    }
    EXPECT_EQ(lb.cookie_value(members.size()), "");
    // Stable across balancers (threads, restarts), so a visitor keeps its member.
    load_balancer other(policy::cookie, members);
    EXPECT_EQ(other.cookie_value(3), lb.cookie_value(3));
}

TEST(Cookie, UnknownOrMissingCookieFallsBackConsistently) {
    auto members = pool({1, 1, 1, 1});
    load_balancer lb(policy::cookie, members);
    load_balancer by_address(policy::ip_hash, members);
    for (const auto* value : {"0123456789abcdef", "forged", "203.0.113.7", "2001:db8::1"}) {
        const auto first = lb.pick(members, value);
        ASSERT_TRUE(first);
        EXPECT_EQ(lb.pick(members, value), first);
        EXPECT_EQ(by_address.pick(members, value), first) << "the same ring as ip_hash";
    }
    // The named member is down: its visitors go elsewhere, consistently.
    const auto value = lb.cookie_value(1);
    members[1].available = false;
    const auto elsewhere = lb.pick(members, value);
    ASSERT_TRUE(elsewhere);
    EXPECT_NE(*elsewhere, 1u);
    EXPECT_EQ(lb.pick(members, value), elsewhere);
}

TEST(AnyPolicy, ExcludedMembersAreNotPicked) {
    for (const auto p : all_policies) {
        const auto members = pool({1, 2, 1, 3});
        load_balancer lb(p, members, 3);
        const auto addresses = random_addresses(200);
        for (std::size_t k = 0; k < addresses.size(); ++k) {
            const std::array<std::size_t, 2> tried{k % 4, (k + 1) % 4};
            // Under cookie, every other request names an excluded member by its cookie.
            const std::string affinity =
                p == policy::cookie && k % 2 ? lb.cookie_value(k % 4) : addresses[k];
            const auto picked = lb.pick(members, affinity, tried);
            ASSERT_TRUE(picked) << static_cast<int>(p);
            ASSERT_NE(*picked, tried[0]) << static_cast<int>(p);
            ASSERT_NE(*picked, tried[1]) << static_cast<int>(p);
        }
        const std::array<std::size_t, 4> everyone{3, 0, 2, 1};
        EXPECT_FALSE(lb.pick(members, "203.0.113.7", everyone)) << static_cast<int>(p);
        EXPECT_FALSE(lb.pick(members, lb.cookie_value(2), everyone)) << static_cast<int>(p);
    }
}

TEST(AnyPolicy, EmptyOrUnavailablePoolPicksNothing) {
    for (const auto p : all_policies) {
        load_balancer empty(p, {});
        EXPECT_FALSE(empty.pick({}, "203.0.113.7")) << static_cast<int>(p);
        EXPECT_FALSE(empty.pick({})) << static_cast<int>(p);

        auto members = pool({1, 1, 1});
        for (auto& m : members) m.available = false;
        load_balancer down(p, members);
        EXPECT_FALSE(down.pick(members, "203.0.113.7")) << static_cast<int>(p);
        EXPECT_FALSE(down.pick(members, down.cookie_value(0))) << static_cast<int>(p);
        EXPECT_FALSE(down.pick(members)) << static_cast<int>(p);
    }
}

TEST(AnyPolicy, IgnoresMembersPastTheListItWasBuiltFor) {
    for (const auto p : all_policies) {
        auto members = pool({1, 1});
        load_balancer lb(p, members);
        members = pool({1, 1, 1, 1});
        members[0].available = members[1].available = false;
        EXPECT_FALSE(lb.pick(members, "203.0.113.7")) << static_cast<int>(p);
    }
}

}  // namespace
}  // namespace porthole::upstream
