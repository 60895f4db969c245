#include "core/heap_trim.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

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

// AddressSanitizer's allocator (GCC says so with a macro, clang with __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

// Private resident memory of this process, in bytes (Rss of anonymous memory).
std::size_t anonymous_resident() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    char line[256];
    std::size_t kib = 0;
    while (f && std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "RssAnon: %zu kB", &kib) == 1) break;
    if (f) std::fclose(f);
    return kib * 1024;
}

// What the relay sees after a burst: long-lived small objects (the connections that stay)
// allocated between short-lived larger ones (their requests), and the larger ones freed.
// Without heap_trim the freed pages stay resident, pinned by their neighbours; with it they go.
TEST(HeapTrim, GivesBackWhatABurstFreedAmongWhatStays) {
#if UNDER_ASAN
    GTEST_SKIP() << "the sanitizer's allocator keeps freed memory in its quarantine";
#endif
    porthole::core::heap_trim trim;
    trim.tick();  // the low point
    std::vector<void*> stays, goes;
    for (int i = 0; i < 8000; ++i) {
        stays.push_back(std::malloc(200));
        void* big = std::malloc(6000);
        std::memset(big, 1, 6000);  // resident
        goes.push_back(big);
    }
    for (void* p : goes) std::free(p);
    const std::size_t before = anonymous_resident();
    EXPECT_TRUE(trim.tick());
    const std::size_t after = anonymous_resident();
    // 8,000 × 6,000 bytes were freed: most of their 46 MiB go back (glibc can return only the
    // whole pages inside each freed block; jemalloc all of them).
    EXPECT_LT(after + 20 * MiB, before) << "before " << before << ", after " << after;
    EXPECT_FALSE(trim.tick());  // once
    for (void* p : stays) std::free(p);
}
