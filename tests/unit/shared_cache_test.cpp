// A site's cache used by every event loop at once: lookups, stores, invalidations and purges
// from several threads on one cache with a disk tier, and request collapsing where the waiters
// are on other loops than the fetch.
#include "cache/http_cache.hpp"
#include "temp_dir.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

namespace porthole::cache {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using test_support::temp_dir;

http::message_head get_of(const std::string& target) {
    http::message_head h;
    h.method = "GET";
    h.target = target;
    return h;
}

entry response(const std::string& body) {
    auto s = std::make_shared<stored_response>();
    s->status = 200;
    s->fields = {{"Cache-Control", "max-age=600"}};
    s->facts = facts_of(200, s->fields);
    s->lifetime = 600;
    s->request_time = s->response_time = epoch_now();
    s->body = body;
    return s;
}

TEST(SharedCache, LoopsStoreLookUpAndPurgeOneCacheWithADiskTierAtOnce) {
    temp_dir dir;
    auto disk = disk_store::open(dir.path.string(), 4u << 20, 1u << 20);
    ASSERT_TRUE(disk);
    cache_settings settings;
    settings.memory = 64u << 10;  // small: the memory tier evicts and reads back from disk
    http_cache cache(settings, *disk);
    constexpr int keys = 64;
    std::atomic<int> wrong{0};
    std::vector<std::thread> loops;
    for (int t = 0; t < 4; ++t)
        loops.emplace_back([&, t] {
            for (int i = 0; i < 1500; ++i) {
                const int k = (i * 7 + t) % keys;
                const std::string target = fmt::format("/k{}", k);
                const std::string key = http_cache::key_of(false, "shop.test", target);
                const auto found = cache.lookup(key, get_of(target), epoch_now());
                // What is found is whole: the body of its own key.
                if (found.stored && found.stored->body != std::string(2000, char('a' + k % 26)))
                    ++wrong;
                if (!found.stored) cache.store(key, response(std::string(2000, char('a' + k % 26))));
                if (i % 97 == 0) cache.invalidate(false, "shop.test", target, {}, "");
                if (i % 251 == 0) cache.purge("shop.test/k1", true);
                ++cache.counts().hits;
                (void)cache.entries();
                (void)cache.scope_of(fmt::format("holder-{}", i % 5));
            }
        });
    for (auto& l : loops) l.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(cache.counts().hits.load(), 4u * 1500u);
    EXPECT_GT(cache.counts().stores.load(), 0u);
    EXPECT_LE(cache.bytes(), settings.memory);
}

// Three loops miss one key at once: one fetches, the others wait on their own loops' timers and
// go on when the fetch ends, each finding what it stored.
TEST(SharedCache, MissesOnOtherLoopsWaitForTheOneFetchAndWakeWhenItEnds) {
    http_cache cache(cache_settings{});
    const std::string target = "/slow";
    const std::string key = http_cache::key_of(false, "shop.test", target);
    std::atomic<int> fetched{0}, waited{0}, served{0}, started{0};
    std::vector<std::unique_ptr<asio::io_context>> ios;
    for (int t = 0; t < 3; ++t) ios.push_back(std::make_unique<asio::io_context>());
    for (auto& io : ios)
        asio::co_spawn(
            *io,
            [&]() -> asio::awaitable<void> {
                ++started;
                while (started.load() < 3) std::this_thread::yield();  // all miss together
                auto found = cache.lookup(key, get_of(target), epoch_now());
                if (!found.stored && cache.begin_fetch(key)) {
                    ++fetched;
                    // The origin answers once both others are waiting (or after 5 s).
                    asio::steady_timer slow(co_await asio::this_coro::executor);
                    for (int i = 0; i < 5000 && waited.load() < 2; ++i) {
                        slow.expires_after(1ms);
                        co_await slow.async_wait(asio::use_awaitable);
                    }
                    cache.store(key, response("fetched once"));
                    cache.end_fetch(key);
                } else if (!found.stored) {
                    ++waited;
                    co_await cache.wait_for(key, 10s);
                }
                found = cache.lookup(key, get_of(target), epoch_now());
                if (found.stored && found.stored->body == "fetched once") ++served;
            },
            asio::detached);
    const auto begun = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (auto& io : ios) threads.emplace_back([&io] { io->run(); });
    for (auto& t : threads) t.join();
    EXPECT_EQ(fetched.load(), 1);
    EXPECT_EQ(waited.load(), 2);
    EXPECT_EQ(served.load(), 3);
    // Woken by the fetch's end, not by the 10 s bound.
    EXPECT_LT(std::chrono::steady_clock::now() - begun, 5s);
    EXPECT_FALSE(cache.fetching(key));
}

}  // namespace
}  // namespace porthole::cache
