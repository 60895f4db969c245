#pragma once
// A client session as the relay holds it, and the tunnels it opened: its control stream and
// frame queue, its data pool, its limits. The control port runs it; the edges read its tunnels.
#include "core/token_bucket.hpp"
#include "net/frame_io.hpp"
#include "net/stream.hpp"
#include "config/policy_config.hpp"
#include "policy/chain.hpp"
#include "protocol/auth.hpp"
#include "relay/data_pool.hpp"
#include "relay/lease_table.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace porthole::relay {

struct session;

struct tunnel {
    std::uint32_t id = 0;
    protocol::tunnel_kind kind = protocol::tunnel_kind::http;
    std::string name;  // http
    std::uint16_t port = 0;  // tcp
    std::string target;
    std::string host_header;
    std::string url;
    // Empty, or the first 12 hex digits of the digest of the group key several clients serve
    // the name under: enough to tell groups apart, not to join one.
    std::string group;
    std::string policy_text;  // the owner's [[policies]] as sent (http)
    std::shared_ptr<const policy::chain> policies;  // built from it; null when none
    // The same, parsed: what another event loop builds its own chain from (never changed after).
    std::shared_ptr<const std::vector<config::policy_config>> policy_configs;
    bool owner_cache = false;  // the owner's cache = true (--cache): cached, served while away
    owner_key holder;  // who holds the name or port: the client, or its group
    std::weak_ptr<session> owner;
    std::chrono::system_clock::time_point opened{};
    std::optional<boost::asio::ip::tcp::acceptor> acceptor;  // tcp
    std::uint32_t active = 0;  // visitor connections using it now
    core::token_bucket new_connections{1, 1};  // per second, set when the tunnel opens
    core::token_bucket policy_notices{20, 100};  // POLICY_ANSWERED frames, per second
};

// Holds one of a tunnel's max_connections_per_tunnel slots.
struct tunnel_slot {
    explicit tunnel_slot(std::shared_ptr<tunnel> t) : t(std::move(t)) { ++this->t->active; }
    ~tunnel_slot() { --t->active; }
    tunnel_slot(const tunnel_slot&) = delete;
    tunnel_slot& operator=(const tunnel_slot&) = delete;
    std::shared_ptr<tunnel> t;
};

// Frames waiting for a session that does not read: beyond this it is closed.
inline constexpr std::size_t session_queue_limit = 256 * 1024;

struct session {
    session(net::stream s, const boost::asio::any_io_executor& ex, double frames_per_second,
            std::size_t max_idle_data)
        : control(std::move(s)), out(ex, session_queue_limit), heartbeat(ex), pool(max_idle_data),
          frames(frames_per_second, 2 * frames_per_second) {}
    protocol::id16 id{};
    std::string id_hex;
    std::uint16_t version = protocol::protocol_version;  // the protocol version it speaks
    owner_key owner;
    protocol::verifier token{};  // which token: its verifier; zeros on a relay without tokens
    protocol::key32 data_key{};
    net::stream control;
    net::frame_queue out;
    boost::asio::steady_timer heartbeat;
    data_pool pool;
    std::unordered_map<std::uint32_t, std::shared_ptr<tunnel>> tunnels;
    core::token_bucket frames;  // control frames it may send
    core::log_limiter log;  // for the lines its requests make the relay write
    // What the admin API shows.
    std::string address{};  // the client's "IP:PORT"
    std::string agent{};  // as the client sent it, made printable
    std::chrono::system_clock::time_point connected_since{};
    std::uint64_t ping_opaque = 0;  // the last PING sent, and when
    clock::time_point ping_sent{};
    std::optional<clock::duration> rtt{};  // its PONG's round trip
    bool closed = false;
    bool leaving = false;
    bool reconnect = false;  // it took over an older session of its client, or that one's leases
    void count_reconnect(std::uint64_t& reconnects) {
        if (!std::exchange(reconnect, true)) ++reconnects;
    }
    std::function<void(session&)> close;  // the control port's: ends the session everywhere

    // Queues a frame; a session that has stopped reading is closed.
    void send(const protocol::message& m) {
        if (out.push(m)) return;
        spdlog::info("session {} ended: it does not read what the relay sends", id_hex.substr(0, 8));
        close(*this);
    }
};

}  // namespace porthole::relay
