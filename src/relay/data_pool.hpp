#pragma once
// A session's pooled data connections (proved, idle, each waiting to carry one visitor) and the
// visitors waiting for one when the pool is empty. Asking the client for more is the caller's.
#include "net/stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>

namespace porthole::relay {

class data_pool {
public:
    // At most `max_idle` connections are kept; more are closed as they arrive.
    explicit data_pool(std::size_t max_idle) : max_idle_(max_idle) {}

    // A connection that proved itself: to the longest-waiting visitor, or into the pool.
    void add(net::stream conn);
    // An idle connection that is still open; closed ones found on the way are dropped.
    std::optional<net::stream> take_idle();
    // Waits up to `timeout` for add(); nullopt when none came or close() was called.
    boost::asio::awaitable<std::optional<net::stream>> wait(std::chrono::steady_clock::duration
                                                                timeout);
    std::size_t waiting() const { return waiters_.size(); }
    std::size_t idle() const { return idle_.size(); }
    // Drops idle connections the client has closed.
    void drop_closed();
    // Closes the idle connections (the relay is draining); waiters keep waiting.
    void close_idle() { idle_.clear(); }
    // The session ends: idle connections close, waiters wake empty-handed.
    void close();

private:
    struct waiter {
        explicit waiter(const boost::asio::any_io_executor& ex) : wake(ex) {}
        boost::asio::steady_timer wake;
        std::optional<net::stream> conn;
    };
    std::size_t max_idle_;
    std::deque<net::stream> idle_;
    std::deque<std::shared_ptr<waiter>> waiters_;
};

}  // namespace porthole::relay
