#pragma once
// Frames over a stream: exact reads (never past the frame, so raw bytes may follow it), deadlines
// on every operation, and a queue that lets many coroutines write to one control connection.
#include "protocol/frame.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <deque>

namespace porthole::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using duration = std::chrono::steady_clock::duration;

// Reads one frame; `timeout` of zero means none. Errors: a transport error or a protocol error.
asio::awaitable<tl::expected<protocol::message, std::string>> read_frame(beast::tcp_stream& s,
                                                                        duration timeout);
asio::awaitable<error_code> write_frame(beast::tcp_stream& s, const protocol::message& m,
                                        duration timeout);

class frame_queue {
public:
    explicit frame_queue(const asio::any_io_executor& ex) : wake_(ex) {}

    void push(const protocol::message& m);
    // Writes queued frames in order as they come, until close() or a write error.
    asio::awaitable<error_code> run(beast::tcp_stream& s, duration write_timeout);
    void close();
    // Stops run() once everything queued so far is written.
    void finish();

private:
    std::deque<std::string> pending_;
    asio::steady_timer wake_;
    bool closed_ = false;
    bool finishing_ = false;
};

}  // namespace porthole::net
