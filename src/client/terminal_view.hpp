#pragma once
// The live status screen a client shows when stdout is a terminal: session state, relay and
// round-trip time, each tunnel with its counters, the latest requests and log messages. Redrawn
// at most ten times a second, on the alternate screen so the shell is left as it was.
#include "observe/capture_store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace spdlog::sinks {
template <typename Mutex>
class ringbuffer_sink;
}

namespace porthole::client {

struct view_tunnel {
    std::string name;
    std::string url;  // empty until the relay assigned it
    std::string target;
    std::vector<std::string> routes;  // "/api -> 127.0.0.1:8000"
    const observe::tunnel_metrics* metrics = nullptr;
};

class terminal_view {
public:
    terminal_view(boost::asio::io_context& io, observe::capture_store& store, bool color, bool qr);
    ~terminal_view();  // leaves the alternate screen
    terminal_view(const terminal_view&) = delete;
    terminal_view& operator=(const terminal_view&) = delete;

    void start();
    void stop();

    void set_session(std::string state, bool online);
    void set_relay(std::string address);
    void set_rtt(std::chrono::microseconds rtt);
    void set_inspector(std::string url);
    void set_tunnels(std::vector<view_tunnel> tunnels);

    // The screen as text, `width` columns by `height` rows (tests and the redraw use it).
    std::string render(int width, int height) const;

private:
    struct request_line {
        std::chrono::system_clock::time_point time;
        std::string method, path, tunnel;
        unsigned status = 0;
        std::string state;
        std::chrono::nanoseconds duration{0};
        std::string id;
    };

    void changed();
    boost::asio::awaitable<void> redraw();
    void draw();
    void on_record(const observe::exchange_record& r);
    std::string paint(std::string_view text, std::string_view color) const;

    boost::asio::io_context& io_;
    observe::capture_store& store_;
    std::uint64_t store_token_ = 0;
    bool color_;
    bool qr_;
    bool running_ = false;
    bool dirty_ = false;
    boost::asio::steady_timer tick_;
    std::shared_ptr<spdlog::sinks::ringbuffer_sink<std::mutex>> log_ring_;

    std::string session_ = "connecting";
    bool online_ = false;
    std::string relay_;
    std::optional<std::chrono::microseconds> rtt_;
    std::string inspector_;
    std::vector<view_tunnel> tunnels_;
    std::deque<request_line> requests_;
    std::deque<std::chrono::steady_clock::time_point> recent_;  // for the request rate
};

// The QR code of `text` as lines of half-block characters (two modules per character row).
std::vector<std::string> qr_lines(std::string_view text);

}  // namespace porthole::client
