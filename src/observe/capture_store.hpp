#pragma once
// What the inspector shows: one record per HTTP exchange through an HTTP tunnel (heads, bodies up
// to a limit, timings, WebSocket frames after an upgrade), kept newest-last in a buffer bounded by
// bytes. Single-threaded: every call comes from the client's io_context.
#include "http/message_head.hpp"
#include "http/websocket_frames.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace porthole::observe {

enum class exchange_state { pending, streaming, complete, upgraded, closed, failed };

struct captured_frame {
    bool outbound = false;  // from the local service toward the visitor
    std::chrono::system_clock::time_point time;
    http::ws_frame frame;
};

struct exchange_record {
    std::string id;
    std::string tunnel_name;
    std::string remote_addr;
    std::optional<std::string> replay_of;
    std::string policy;  // the relay's policy that answered it (the request never came here)
    std::chrono::system_clock::time_point start;
    std::chrono::steady_clock::time_point started;  // for the duration
    std::chrono::nanoseconds duration{0};
    exchange_state state = exchange_state::pending;

    http::message_head request;
    std::string request_head;  // raw, as sent to the local service
    http::body_capture request_body;
    std::optional<http::message_head> response;
    std::string response_head;  // raw
    http::body_capture response_body;

    // Set once the connection was upgraded to a WebSocket and is being watched.
    struct websocket_log {
        std::deque<captured_frame> frames;
        std::uint64_t frames_dropped = 0;
    };
    std::unique_ptr<websocket_log> websocket;

    std::size_t accounted = 0;  // bytes charged to the store's budget
    bool held = false;  // still in the store (not evicted or cleared)

    std::size_t bytes() const;
};

struct tunnel_metrics {
    std::uint64_t connections = 0;  // since start
    std::uint64_t open = 0;
    std::uint64_t requests = 0;
};

// What /api/tunnels reports for one tunnel.
struct tunnel_info {
    std::string name;
    std::string public_url;  // empty until the relay assigned one
    std::string proto;  // http, https, tcp, tls
    std::string addr;  // the local target, e.g. http://127.0.0.1:3000
    const tunnel_metrics* metrics = nullptr;
};

class capture_store {
public:
    enum class event { request, frame, clear };
    // `record` is null for `clear`; `frame` is set for `frame`.
    using listener = std::function<void(event, const exchange_record*, const captured_frame*)>;

    capture_store(std::size_t memory_limit, std::size_t body_limit);

    std::size_t body_limit() const { return body_limit_; }

    // A new record for a request whose head was just read; it stays valid (shared) for the caller
    // even after the store evicts it.
    std::shared_ptr<exchange_record> begin(std::string tunnel_name, std::string remote_addr,
                                           http::message_head request, std::string raw_head);
    // Tells listeners the record changed, and charges its new size to the budget.
    void changed(exchange_record& r);
    void frame(exchange_record& r, captured_frame f);
    void clear();

    std::shared_ptr<exchange_record> find(std::string_view id) const;
    // Newest first, at most `limit`, only `tunnel_name`'s when not empty.
    std::vector<std::shared_ptr<exchange_record>> list(std::size_t limit,
                                                       std::string_view tunnel_name) const;

    std::uint64_t subscribe(listener l);
    void unsubscribe(std::uint64_t token);

    static constexpr std::size_t frames_kept = 1000;
    static constexpr std::size_t frame_payload_limit = 4096;

private:
    void charge(exchange_record& r);
    void evict();
    void notify(event e, const exchange_record* r, const captured_frame* f);

    std::size_t memory_limit_;
    std::size_t body_limit_;
    std::size_t used_ = 0;
    std::uint64_t next_id_ = 0;
    std::uint32_t id_prefix_;
    std::deque<std::shared_ptr<exchange_record>> records_;  // oldest first
    std::map<std::uint64_t, listener> listeners_;
    std::uint64_t next_listener_ = 0;
};

// The JSON documents of the inspector's API (docs/inspector.md).
std::string record_json(const exchange_record& r);
std::string records_json(const std::vector<std::shared_ptr<exchange_record>>& records);
std::string frame_json(const exchange_record& r, const captured_frame& f);
std::string tunnels_json(const std::vector<tunnel_info>& tunnels);
std::string state_name(exchange_state s);

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace porthole::observe
