#pragma once
// The last refusals and relay-made errors with their reasons, for the dashboard and
// GET /api/recent: a ring of `capacity` entries written where the refusal or error is counted,
// on the relay's loop only. Nothing is kept of requests that succeed. Once the ring is full a new
// event reuses the strings of the oldest, so refusals cost no allocation from then on. What a
// visitor sent is stored cut short and made printable (core::printable). Pure.
#include "core/printable.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::observe {

enum class event_kind : std::uint8_t { refusal, error };

inline std::string_view name_of(event_kind k) {
    return k == event_kind::refusal ? "refusal" : "error";
}

// What the place that refused or failed knows; empty views where it knows nothing.
struct event_facts {
    event_kind kind = event_kind::refusal;
    std::string_view reason{};  // a fixed name: refusal_names or upstream_failure_names
    unsigned status = 0;  // the relay's answer; 0 when none was sent (a connection turned away)
    std::string_view visitor{}, host{}, method{}, target{}, tunnel{}, site{};
};

struct recent_event {
    std::uint64_t seq = 0;  // 1 for the first event since the start
    std::chrono::system_clock::time_point time{};
    event_kind kind = event_kind::refusal;
    std::string_view reason{};  // points at a name with static storage
    unsigned status = 0;
    std::string visitor{}, host{}, method{}, path{}, tunnel{}, site{};  // path: no query
};

class recent_events {
public:
    static constexpr std::size_t capacity = 256;
    // Bytes kept of each text a visitor sent (before \xHH escapes), so an event stays small.
    static constexpr std::size_t text_limit = 200;

    void add(const event_facts& f, std::chrono::system_clock::time_point now) {
        if (ring_.size() < capacity) ring_.emplace_back();
        recent_event& e = ring_[added_ % capacity];
        e.seq = ++added_;
        e.time = now;
        e.kind = f.kind;
        e.reason = f.reason;
        e.status = f.status;
        keep(e.visitor, f.visitor);
        keep(e.host, f.host);
        keep(e.method, f.method);
        keep(e.path, f.target.substr(0, f.target.find('?')));
        keep(e.tunnel, f.tunnel);
        keep(e.site, f.site);
        if (on_add_) on_add_();
    }

    // An event another event loop kept (threads > 1), kept here as the newest, with its time.
    void add_kept(recent_event e) {
        if (ring_.size() < capacity) ring_.emplace_back();
        e.seq = ++added_;
        ring_[(added_ - 1) % capacity] = std::move(e);
        if (on_add_) on_add_();
    }
    // The newest event; only after an add.
    const recent_event& newest() const { return ring_[(added_ - 1) % capacity]; }

    // The seq of the newest event; 0 before the first.
    std::uint64_t last_seq() const { return added_; }

    // Calls f(event) for the events kept whose seq is above `after`, oldest first.
    template <class F>
    void for_each_since(std::uint64_t after, F&& f) const {
        const std::uint64_t oldest = added_ > ring_.size() ? added_ - ring_.size() : 0;
        for (std::uint64_t seq = std::max(after, oldest); seq < added_; ++seq)
            f(ring_[seq % capacity]);
    }

    // Told after each add (the admin API's event stream); nullptr stops it.
    void on_add(std::function<void()> f) { on_add_ = std::move(f); }

private:
    static void keep(std::string& into, std::string_view text) {
        into.clear();
        core::append_printable(into, text.substr(0, text_limit));
    }

    std::vector<recent_event> ring_;  // grows to capacity, then an event replaces the oldest
    std::uint64_t added_ = 0;
    std::function<void()> on_add_;
};

}  // namespace porthole::observe
