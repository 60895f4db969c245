#include "core/heap_trim.hpp"

#include <gtest/gtest.h>

namespace {

using porthole::core::trim_policy;

constexpr std::size_t MiB = 1024 * 1024;

TEST(TrimPolicy, SteadyFreeHeapNeverTrims) {
    trim_policy p(2 * MiB);
    for (int i = 0; i < 100; ++i) EXPECT_FALSE(p.due(i % 2 ? 3 * MiB : 2 * MiB));
}

TEST(TrimPolicy, TrimsOnceAfterABurstFreedMemory) {
    trim_policy p(2 * MiB);
    EXPECT_FALSE(p.due(1 * MiB));
    EXPECT_FALSE(p.due(0));  // the burst takes the free heap and more
    EXPECT_TRUE(p.due(30 * MiB));  // and frees it
    p.trimmed(30 * MiB);  // given back, but still counted as free
    EXPECT_FALSE(p.due(30 * MiB));
    EXPECT_FALSE(p.due(31 * MiB));
}

TEST(TrimPolicy, ASecondBurstTrimsAgain) {
    trim_policy p(2 * MiB);
    EXPECT_FALSE(p.due(0));
    EXPECT_TRUE(p.due(30 * MiB));
    p.trimmed(30 * MiB);
    EXPECT_FALSE(p.due(5 * MiB));  // the next burst reuses the free pages
    EXPECT_TRUE(p.due(30 * MiB));
}

TEST(TrimPolicy, FirstSampleIsTheLowPoint) {
    trim_policy p(2 * MiB);
    EXPECT_FALSE(p.due(40 * MiB));
    EXPECT_FALSE(p.due(41 * MiB));
    EXPECT_TRUE(p.due(42 * MiB));
}

}  // namespace
