#include "net/byte_shaper.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdint>

namespace porthole::net {
namespace {

std::chrono::nanoseconds time_for(std::uint64_t bytes, std::uint64_t rate) {
    return std::chrono::nanoseconds(static_cast<std::int64_t>(
        static_cast<long double>(bytes) * 1e9L / static_cast<long double>(rate)));
}

}  // namespace

byte_shaper::byte_shaper(std::uint64_t rate, std::uint64_t burst)
    : rate_(std::max<std::uint64_t>(rate, 1)),
      burst_time_(time_for(std::max<std::uint64_t>(burst, 1), rate_)),
      chunk_(static_cast<std::size_t>(std::clamp<std::uint64_t>(burst, 1, 64 * 1024))) {}

byte_shaper::clock::duration byte_shaper::reserve(std::size_t n, clock::time_point now) {
    const std::lock_guard lock(mutex_);
    // Unused budget piles up to `burst` and no further.
    next_free_ = std::max(next_free_, now - burst_time_);
    next_free_ += time_for(n, rate_);
    // Within the piled-up budget: at once. Beyond it: when the bytes are paid for.
    const auto wait = next_free_ - now;
    return wait > clock::duration::zero() ? wait : clock::duration::zero();
}

boost::asio::awaitable<void> byte_shaper::take(std::size_t n) {
    const auto wait = reserve(n, clock::now());
    if (wait == clock::duration::zero()) co_return;
    const auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::steady_timer timer(executor, wait);
    co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

void shaping::add(const std::shared_ptr<byte_shaper>& to_upstream,
                  const std::shared_ptr<byte_shaper>& to_visitor) {
    const auto put = [](budgets& b, const std::shared_ptr<byte_shaper>& s) {
        if (!s) return;
        for (auto& slot : b)
            if (!slot) {
                slot = s;
                return;
            }
    };
    put(up, to_upstream);
    put(down, to_visitor);
}

boost::asio::awaitable<void> take(const shaping::budgets& b, std::size_t n) {
    for (const auto& s : b)
        if (s) co_await s->take(n);
}

std::size_t chunk_of(const shaping::budgets& b) {
    std::size_t chunk = SIZE_MAX;
    for (const auto& s : b)
        if (s) chunk = std::min(chunk, s->chunk());
    return chunk;
}

}  // namespace porthole::net
