// Policy state every event loop uses at once: a jwks_url's key ring, replaced on the first loop
// while every loop's jwt policies read it, a rate limit's counts and a bandwidth budget, which
// are the relay's.
#include "net/byte_shaper.hpp"
#include "policy/key_ring.hpp"
#include "relay/shared_tunnel_steps.hpp"
#include "policy/rate_limit.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace porthole::policy {
namespace {

key_ring::key_set set_of(const std::string& kid) {
    jwk k;
    k.kind = jwk::type::ed25519;
    k.kid = kid;
    k.pem = "-----BEGIN PUBLIC KEY-----\n" + kid + "\n-----END PUBLIC KEY-----\n";
    return {k, k};
}

TEST(KeyRing, ReadersOnOtherThreadsSeeWholeSetsAsTheyAreReplaced) {
    key_ring ring("", set_of("even"));
    EXPECT_FALSE(ring.replace(set_of("even")));  // the same keys: nothing moves
    EXPECT_EQ(ring.generation(), 0u);
    constexpr std::uint64_t replacements = 2000;
    std::thread reader([&] {
        key_ring::snapshot mine = ring.keys();
        std::uint64_t seen = 0;
        while (mine.generation < replacements) {
            if (ring.generation() == mine.generation) continue;  // what a request costs
            mine = ring.keys();
            ASSERT_EQ(mine.keys->size(), 2u);
            // Even generations hold "even", odd ones "odd": a set and its generation agree.
            EXPECT_EQ(mine.keys->front().kid, mine.generation % 2 ? "odd" : "even");
            EXPECT_EQ(mine.keys->front(), mine.keys->back());
            EXPECT_GE(mine.generation, seen);
            seen = mine.generation;
        }
    });
    for (std::uint64_t i = 1; i <= replacements; ++i)
        EXPECT_TRUE(ring.replace(set_of(i % 2 ? "odd" : "even")));
    reader.join();
    EXPECT_EQ(ring.generation(), replacements);
    EXPECT_EQ(ring.keys().keys->front().kid, "even");
}

// One request an hour after a burst of `burst`, counted for the whole route.
config::rate_limit_settings hourly(std::uint32_t burst) {
    config::rate_limit_settings s;
    s.count = 1;
    s.period = std::chrono::hours(1);
    s.burst = burst;
    s.key = config::rate_limit_settings::key_kind::route;
    return s;
}

TEST(RateLimit, LoopsTakingFromOneLimitAtOnceLetExactlyTheBurstThrough) {
    rate_limit limit(hourly(100));
    std::atomic<int> passed{0};
    std::vector<std::thread> loops;
    for (int t = 0; t < 4; ++t)
        loops.emplace_back([&] {
            for (int i = 0; i < 2000; ++i)
                if (!limit.take("", rate_limit::clock::now())) ++passed;
        });
    for (auto& l : loops) l.join();
    EXPECT_EQ(passed.load(), 100);
    EXPECT_EQ(limit.keys(), 1u);
}

TEST(ByteShaper, LoopsReservingFromOneBudgetAtOnceLoseNoReservation) {
    constexpr std::uint64_t rate = 1u << 20, burst = 16u << 10;
    net::byte_shaper shaper(rate, burst);
    const auto now = net::byte_shaper::clock::now();
    std::vector<std::thread> loops;
    for (int t = 0; t < 4; ++t)
        loops.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) shaper.reserve(1024, now);
        });
    for (auto& l : loops) l.join();
    // Every byte reserved is owed: 4000 KiB at 1 MiB/s, less the burst that was free at once.
    // Each reservation rounds down to a nanosecond; one lost would be short by 977 µs.
    const auto owed = shaper.reserve(0, now);
    const auto expected = std::chrono::nanoseconds(4000LL * 1024 * 1'000'000'000 / rate) -
                          std::chrono::nanoseconds(burst * 1'000'000'000 / rate);
    EXPECT_NEAR(std::chrono::duration<double>(owed).count(),
                std::chrono::duration<double>(expected).count(), 1e-4);
}

// Each loop builds a tunnel's [tunnel_policy] chain itself; sharing it gives every loop the
// first chain's rate limit, so the tunnel's burst is counted once.
TEST(SharedTunnelSteps, LoopsBuildingOneNamesChainAtOnceCountInOneRateLimit) {
    const auto s = hourly(50);
    relay::shared_tunnel_steps shared;
    std::atomic<int> passed{0};
    std::vector<std::thread> loops;
    for (int t = 0; t < 4; ++t)
        loops.emplace_back([&] {
            for (int round = 0; round < 20; ++round) {  // the routes built again each change
                chain mine{std::make_shared<rate_limit>(s)};
                shared.share("alpha", mine);
                auto& limit = static_cast<rate_limit&>(*mine.front());
                for (int i = 0; i < 10; ++i)
                    if (!limit.take("", rate_limit::clock::now())) ++passed;
            }
        });
    for (auto& l : loops) l.join();
    EXPECT_EQ(passed.load(), 50);
    // Kept while the tunnel is there; dropped once it is gone and no route holds its steps.
    shared.sweep([](const std::string&) { return false; });
    EXPECT_EQ(shared.names(), 1u);
    shared.sweep([](const std::string&) { return true; });
    EXPECT_EQ(shared.names(), 0u);
    chain stateless{};
    shared.share("beta", stateless);  // nothing to share: nothing kept
    EXPECT_EQ(shared.names(), 0u);
}

}  // namespace
}  // namespace porthole::policy
