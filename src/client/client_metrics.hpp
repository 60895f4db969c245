#pragma once
// The client's counters, kept where the work happens: plain integers of its one event loop (the
// client runs one thread, so no atomics), nothing per byte (bytes are added per system call),
// nothing allocated per request. A scrape reads them with the gauges of the moment and writes
// the Prometheus text its inspector serves as /metrics.
#include "net/traffic.hpp"
#include "observe/process_stats.hpp"
#include "observe/request_counts.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::client {

// Why a connection to the local service failed.
enum class local_failure : std::uint8_t { refused, timeout, other, count_ };
inline constexpr std::array<std::string_view, 3> local_failure_names{"refused", "timeout",
                                                                     "other"};
// The failure an error of net::connect names ("Connection refused", "timed out", ...).
local_failure local_failure_of(std::string_view error);

// One tunnel's, for as long as the client runs.
struct tunnel_counters {
    // HTTP tunnels: by the status class the visitor got from this client (a 502 it made when
    // the local service was unreachable too; none: the stream ended without a response).
    observe::request_counts requests{};
    net::traffic bytes{};  // in: from visitors, out: to them
    std::array<std::uint64_t, local_failure_names.size()> local_failures{};

    void failed(local_failure f) { ++local_failures[static_cast<std::size_t>(f)]; }
};

// One request, counted once whichever way its exchange ends: at done(), or when it goes.
// `start` is when its head was read (the inspector's record has it: one clock read saved).
class request_tally {
public:
    request_tally(tunnel_counters& c, std::chrono::steady_clock::time_point start)
        : counters_(&c), start_(start) {}
    ~request_tally() { done(); }
    request_tally(const request_tally&) = delete;
    request_tally& operator=(const request_tally&) = delete;

    void respond(unsigned status) { status_ = status; }
    void done() {
        if (!counters_) return;
        counters_->requests.add(status_, std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - start_));
        counters_ = nullptr;
    }

private:
    tunnel_counters* counters_;
    std::chrono::steady_clock::time_point start_;
    unsigned status_ = 0;
};

// Why the client connects to the relay again: how the attempt before ended.
enum class reconnect_reason : std::uint8_t {
    unreachable,  // connecting or the TLS handshake failed
    handshake,    // the relay closed or answered wrongly during HELLO and AUTH
    heartbeat,    // three heartbeat intervals without a frame
    lost,         // the connection closed or failed
    goaway,       // the relay said it is going away (GOAWAY, or refused as shutting down)
    protocol,     // an unexpected frame
    count_
};
inline constexpr std::array<std::string_view, 6> reconnect_reason_names{
    "unreachable", "handshake", "heartbeat", "lost", "goaway", "protocol"};

struct session_counters {
    std::array<std::uint64_t, reconnect_reason_names.size()> reconnects{};

    void reconnecting(reconnect_reason r) { ++reconnects[static_cast<std::size_t>(r)]; }
};

// What a scrape reads from the client as it is now.
struct client_gauges {
    bool session_up = false;
    double session_start = 0;  // seconds since the epoch, of the session up now
    std::optional<double> rtt_seconds{};  // the last heartbeat's round trip in this session
    std::uint64_t data_idle = 0;  // data connections ready for a visitor
    std::uint64_t data_connecting = 0;  // being opened and proved
    struct tunnel {
        std::string name{};  // the config's [tunnels.NAME], or command_line
        std::string_view kind{};  // http, tcp, tls
        bool open = false;  // opened in the session up now
        std::uint64_t visitors_open = 0;
        std::uint64_t visitors_total = 0;
        const tunnel_counters* counters = nullptr;
    };
    std::vector<tunnel> tunnels{};
};

std::string write_metrics(const session_counters& session, const client_gauges& gauges,
                          const observe::process_stats& process);

}  // namespace porthole::client
