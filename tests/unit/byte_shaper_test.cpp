#include "net/byte_shaper.hpp"

#include <gtest/gtest.h>

namespace porthole::net {
namespace {

using namespace std::chrono_literals;
using clock = byte_shaper::clock;

TEST(ByteShaper, TheBurstPassesAtOnceThenBytesWaitTheirTime) {
    byte_shaper s(1000, 100);  // 1000 bytes a second, 100 at once
    const auto t0 = clock::now();
    EXPECT_EQ(s.reserve(100, t0), clock::duration::zero());
    EXPECT_EQ(s.reserve(100, t0), std::chrono::duration_cast<clock::duration>(100ms));
    EXPECT_EQ(s.reserve(50, t0), std::chrono::duration_cast<clock::duration>(150ms));
}

TEST(ByteShaper, UnusedBudgetPilesUpToTheBurstOnly) {
    byte_shaper s(1000, 100);
    const auto t0 = clock::now();
    EXPECT_EQ(s.reserve(100, t0), clock::duration::zero());
    // An hour idle leaves one burst, not an hour's worth.
    const auto later = t0 + 1h;
    EXPECT_EQ(s.reserve(100, later), clock::duration::zero());
    EXPECT_EQ(s.reserve(1000, later), std::chrono::duration_cast<clock::duration>(1s));
}

TEST(ByteShaper, OverTimeTheRateIsExact) {
    byte_shaper s(1 << 20, 64 * 1024);
    const auto t0 = clock::now();
    auto now = t0;
    // A writer that waits as told: 10 MiB in 64 KiB writes. The first 64 KiB go at once (the
    // burst), the rest at 1 MiB a second: 9.9375 s.
    for (std::uint64_t sent = 0; sent < (10u << 20); sent += 64 * 1024)
        now += s.reserve(64 * 1024, now);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(now - t0);
    EXPECT_NEAR(static_cast<double>(took.count()), 9937500.0, 1000.0);
}

TEST(Shaping, KeepsTwoBudgetsEachWayAndTheSmallestChunk) {
    shaping s;
    EXPECT_TRUE(s.empty());
    auto a = std::make_shared<byte_shaper>(1000, 4096);
    auto b = std::make_shared<byte_shaper>(1000, 1024);
    s.add(nullptr, a);
    s.add(nullptr, b);
    s.add(nullptr, a);  // a third is not kept
    EXPECT_FALSE(s.empty());
    EXPECT_EQ(s.down[0], a);
    EXPECT_EQ(s.down[1], b);
    EXPECT_FALSE(s.up[0]);
    EXPECT_EQ(chunk_of(s.down), 1024u);
    EXPECT_EQ(chunk_of(s.up), SIZE_MAX);
}

}  // namespace
}  // namespace porthole::net
