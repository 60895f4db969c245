#pragma once
// A byte budget shared by every connection of one route (a `bandwidth` policy): `rate` bytes a
// second with at most `burst` at once, handed out first come, first served. A writer asks for
// what it is about to send and waits until it may, on a timer of its own loop; nothing is
// dropped. Every event loop takes from one budget: the reservation is one comparison and one
// addition under a mutex, once per chunk (at most 64 KiB), never held across a wait.
#include <boost/asio/awaitable.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

namespace porthole::net {

class byte_shaper {
public:
    using clock = std::chrono::steady_clock;

    byte_shaper(std::uint64_t rate, std::uint64_t burst);

    // The most bytes one write should carry, so that a large write is paced, not sent in one go.
    std::size_t chunk() const { return chunk_; }
    std::uint64_t rate() const { return rate_; }

    // How long `n` more bytes must wait at `now` (zero: at once); the bytes are taken.
    clock::duration reserve(std::size_t n, clock::time_point now);
    // Waits until `n` more bytes may pass, then returns.
    boost::asio::awaitable<void> take(std::size_t n);

private:
    std::uint64_t rate_;
    clock::duration burst_time_;  // how long `burst` bytes take at `rate`
    std::size_t chunk_;
    std::mutex mutex_;               // over next_free_
    clock::time_point next_free_{};  // when the budget has no debt (GCRA's theoretical arrival)
};

// The budgets one exchange's bytes pass, each direction through up to two: a site's and a
// route's, or the relay's and a tunnel owner's (one `bandwidth` step per policy list).
struct shaping {
    using budgets = std::array<std::shared_ptr<byte_shaper>, 2>;
    budgets up{};    // from the visitor
    budgets down{};  // to the visitor

    bool empty() const { return !up[0] && !down[0]; }
    // Adds a step's budgets (either may be null); a third per direction is not kept.
    void add(const std::shared_ptr<byte_shaper>& to_upstream,
             const std::shared_ptr<byte_shaper>& to_visitor);
};

// Waits until `n` more bytes may pass every budget of `b`.
boost::asio::awaitable<void> take(const shaping::budgets& b, std::size_t n);
// The most bytes one write through `b` should carry (SIZE_MAX when `b` has none).
std::size_t chunk_of(const shaping::budgets& b);

}  // namespace porthole::net
