#pragma once
// Frames over a client-relay stream: exact reads (never past the frame, so raw bytes may follow
// it), a deadline on every operation, and a queue that lets many coroutines write to one control
// connection in order.
#include "net/stream.hpp"
#include "protocol/frame.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <deque>
#include <optional>

namespace porthole::net {

using duration = std::chrono::steady_clock::duration;

// Runs `op`; nullopt when `timeout` (zero: none) passes first, and the operation is cancelled.
template <class T>
asio::awaitable<std::optional<T>> within(asio::awaitable<T> op, duration timeout) {
    using namespace asio::experimental::awaitable_operators;
    if (timeout.count() <= 0) co_return co_await std::move(op);
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto result =
        co_await (std::move(op) || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (result.index() == 1) co_return std::nullopt;
    co_return std::move(std::get<0>(result));
}

// Reads one frame of at most `max_body` bytes. Errors: "timed out", a transport error, or a
// protocol error.
asio::awaitable<tl::expected<protocol::message, std::string>> read_frame(
    stream& s, duration timeout, std::size_t max_body = protocol::max_frame_body);
asio::awaitable<error_code> write_frame(stream& s, const protocol::message& m, duration timeout);

class frame_queue {
public:

    // Frames waiting beyond `limit` bytes close the queue (run() ends with message_size): a peer
    // that does not read cannot make it grow without bound.
    explicit frame_queue(const asio::any_io_executor& ex, std::size_t limit)
        : wake_(ex), limit_(limit) {}

    // False when this frame overflowed the queue.
    bool push(const protocol::message& m);
    // Writes queued frames in order as they come, until close() or a write error.
    asio::awaitable<error_code> run(stream& s, duration write_timeout);
    void close();
    // Stops run() once everything queued so far is written.
    void finish();
    std::size_t pending_bytes() const { return pending_bytes_; }

private:
    std::deque<std::string> pending_;
    asio::steady_timer wake_;
    std::size_t limit_;
    std::size_t pending_bytes_ = 0;
    bool overflowed_ = false;
    bool closed_ = false;
    bool finishing_ = false;
};

}  // namespace porthole::net
