#include "relay/lease_table.hpp"

#include <gtest/gtest.h>

#include <string>

namespace porthole::relay {
namespace {

using namespace std::chrono_literals;

clock::time_point at(clock::duration d) { return clock::time_point{} + d; }

class LeaseTable : public testing::Test {
protected:
    lease_table<std::string> names{60s};
    const owner_key alice = "alice";
    const owner_key bob = "bob";
};

TEST_F(LeaseTable, ClaimsFreeKey) {
    EXPECT_FALSE(names.held("app", at(0s)));
    EXPECT_TRUE(names.claim("app", alice, at(0s)));
    EXPECT_TRUE(names.held("app", at(0s)));
    EXPECT_TRUE(names.held("app", at(1000h)));
    EXPECT_EQ(names.size(), 1u);
}

TEST_F(LeaseTable, SameOwnerReclaims) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    EXPECT_TRUE(names.claim("app", alice, at(1s)));
    EXPECT_EQ(names.size(), 1u);
}

TEST_F(LeaseTable, HeldByNamesTheOwnerWhileHeldOrLeased) {
    EXPECT_FALSE(names.held_by("app", alice, at(0s)));
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    EXPECT_TRUE(names.held_by("app", alice, at(0s)));
    EXPECT_FALSE(names.held_by("app", bob, at(0s)));
    names.release("app", alice, at(10s));
    EXPECT_TRUE(names.held_by("app", alice, at(69s)));
    EXPECT_FALSE(names.held_by("app", alice, at(70s)));
}

TEST_F(LeaseTable, OtherOwnerRefusedWhileHeld) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    EXPECT_FALSE(names.claim("app", bob, at(1s)));
    EXPECT_FALSE(names.claim("app", bob, at(1000h)));
    EXPECT_TRUE(names.claim("app", alice, at(1000h)));
}

TEST_F(LeaseTable, OtherOwnerRefusedWhileLeased) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.release("app", alice, at(10s));
    EXPECT_TRUE(names.held("app", at(10s)));
    EXPECT_TRUE(names.held("app", at(69s)));
    EXPECT_FALSE(names.claim("app", bob, at(10s)));
    EXPECT_FALSE(names.claim("app", bob, at(69s)));
}

TEST_F(LeaseTable, OwnerReclaimsDuringLeaseAndLeaseIsCleared) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.release("app", alice, at(10s));
    EXPECT_TRUE(names.claim("app", alice, at(30s)));
    EXPECT_TRUE(names.held("app", at(1000h)));
    EXPECT_FALSE(names.claim("app", bob, at(1000h)));
}

TEST_F(LeaseTable, OtherOwnerClaimsAfterGraceExpires) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.release("app", alice, at(10s));
    EXPECT_FALSE(names.held("app", at(70s)));
    EXPECT_TRUE(names.claim("app", bob, at(70s)));
    EXPECT_TRUE(names.held("app", at(1000h)));
    EXPECT_FALSE(names.claim("app", alice, at(71s)));
    EXPECT_EQ(names.size(), 1u);
}

TEST_F(LeaseTable, LeaseEndsExactlyAtGrace) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.release("app", alice, at(0s));
    EXPECT_TRUE(names.held("app", at(60s) - 1ns));
    EXPECT_FALSE(names.claim("app", bob, at(60s) - 1ns));
    EXPECT_FALSE(names.held("app", at(60s)));
    EXPECT_TRUE(names.claim("app", bob, at(60s)));
}

TEST_F(LeaseTable, DropFreesAtOnce) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.drop("app", alice);
    EXPECT_FALSE(names.held("app", at(0s)));
    EXPECT_EQ(names.size(), 0u);
    EXPECT_TRUE(names.claim("app", bob, at(0s)));
}

TEST_F(LeaseTable, DropFreesALeasedKey) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.release("app", alice, at(0s));
    names.drop("app", alice);
    EXPECT_EQ(names.size(), 0u);
    EXPECT_TRUE(names.claim("app", bob, at(1s)));
}

TEST_F(LeaseTable, OnlyOwnerCanRelease) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.release("app", bob, at(0s));
    EXPECT_TRUE(names.held("app", at(1000h)));
    EXPECT_FALSE(names.claim("app", bob, at(1000h)));
}

TEST_F(LeaseTable, OnlyOwnerCanDrop) {
    ASSERT_TRUE(names.claim("app", alice, at(0s)));
    names.drop("app", bob);
    EXPECT_EQ(names.size(), 1u);
    EXPECT_TRUE(names.held("app", at(0s)));
    EXPECT_FALSE(names.claim("app", bob, at(0s)));
}

TEST_F(LeaseTable, ReleaseAndDropOfUnknownKeyAreNoOps) {
    names.release("nobody", alice, at(0s));
    names.drop("nobody", alice);
    EXPECT_EQ(names.size(), 0u);
    EXPECT_FALSE(names.held("nobody", at(0s)));
}

TEST_F(LeaseTable, KeysAreIndependent) {
    ASSERT_TRUE(names.claim("one", alice, at(0s)));
    EXPECT_TRUE(names.claim("two", bob, at(0s)));
    names.drop("one", alice);
    EXPECT_FALSE(names.held("one", at(0s)));
    EXPECT_TRUE(names.held("two", at(0s)));
}

TEST_F(LeaseTable, ExpireRemovesOnlyExpiredLeases) {
    ASSERT_TRUE(names.claim("live", alice, at(0s)));
    ASSERT_TRUE(names.claim("old", alice, at(0s)));
    ASSERT_TRUE(names.claim("recent", bob, at(0s)));
    names.release("old", alice, at(0s));
    names.release("recent", bob, at(30s));
    ASSERT_EQ(names.size(), 3u);

    names.expire(at(59s));
    EXPECT_EQ(names.size(), 3u);

    names.expire(at(60s));
    EXPECT_EQ(names.size(), 2u);
    EXPECT_FALSE(names.held("old", at(60s)));
    EXPECT_TRUE(names.held("recent", at(60s)));
    EXPECT_TRUE(names.held("live", at(60s)));

    names.expire(at(1000h));
    EXPECT_EQ(names.size(), 1u);
    EXPECT_TRUE(names.held("live", at(1000h)));
}

TEST_F(LeaseTable, SizeCountsHeldAndLeasedEntries) {
    EXPECT_EQ(names.size(), 0u);
    ASSERT_TRUE(names.claim("a", alice, at(0s)));
    ASSERT_TRUE(names.claim("b", alice, at(0s)));
    names.release("b", alice, at(0s));
    EXPECT_EQ(names.size(), 2u);
    EXPECT_FALSE(names.held("b", at(1000h)));
    EXPECT_EQ(names.size(), 2u);
    ASSERT_FALSE(names.claim("a", bob, at(0s)));
    EXPECT_EQ(names.size(), 2u);
}

TEST(LeaseTablePorts, WorksWithIntegerKeys) {
    lease_table<std::uint16_t> ports{5s};
    EXPECT_TRUE(ports.claim(20000, "alice", at(0s)));
    EXPECT_TRUE(ports.claim(20001, "bob", at(0s)));
    EXPECT_FALSE(ports.claim(20000, "bob", at(1s)));
    ports.release(20000, "alice", at(1s));
    EXPECT_FALSE(ports.claim(20000, "bob", at(5s)));
    EXPECT_TRUE(ports.claim(20000, "bob", at(6s)));
    EXPECT_EQ(ports.size(), 2u);
}

TEST(LeaseTableZeroGrace, ReleaseFreesImmediately) {
    lease_table<std::string> names{clock::duration::zero()};
    ASSERT_TRUE(names.claim("app", "alice", at(0s)));
    names.release("app", "alice", at(3s));
    EXPECT_FALSE(names.held("app", at(3s)));
    EXPECT_TRUE(names.claim("app", "bob", at(3s)));
}

}  // namespace
}  // namespace porthole::relay
