#pragma once
// What one request leaves behind, counted when its exchange ends, at whichever co_return: the
// requests and duration of its tunnel or site by status class, the bytes, the relay's reason
// when it refused, and a line of the access log. Declared in http_edge::exchange right after the
// request's parser, so the head it points into outlives it. Per request: two clock reads and a
// few adds; formatting only when an access log is on, and a recent event only for a refusal or
// an error the relay made.
#include "http/message_head.hpp"
#include "net/io_buffer.hpp"
#include "observe/relay_counters.hpp"
#include "observe/request_record.hpp"
#include "relay/relay_context.hpp"
#include "route/route_table.hpp"

#include <optional>

namespace porthole::relay {

class request_tally {
public:
    // `in`: the connection's read buffer; what it holds belongs to this request or a later one.
    request_tally(relay_context& ctx, watched_socket& visitor, const net::io_buffer& in, bool tls);
    ~request_tally();
    request_tally(const request_tally&) = delete;
    request_tally& operator=(const request_tally&) = delete;

    // The head is complete: the request counts from here on even if nothing answers it.
    void head(const http::message_head& h);
    // The site its Host names: counted there even when none of its routes takes the path.
    void site(const route::site& s);
    // Where it goes: a site's route, or a tunnel's (`site` is then empty).
    void routed(const route::route& r, std::string_view site, std::string_view tunnel);
    // Noted before the answer is written, so the event's time comes before the visitor hears it.
    void refused(observe::refusal why) {
        refusal_ = why;
        noted_ = std::chrono::system_clock::now();
    }
    void failed(observe::upstream_failure why) {
        failure_ = why;
        noted_ = std::chrono::system_clock::now();
    }
    // The upstream's status line, or 101 for an upgrade.
    void responded(unsigned status) { record.status = status; }

    observe::request_record record;

private:
    relay_context& ctx_;
    watched_socket& visitor_;
    const net::io_buffer& in_;
    clock::time_point start_;
    std::uint64_t in_at_start_, out_at_start_;
    const route::route* route_ = nullptr;
    const route::site* site_ = nullptr;
    bool tunnel_ = false;
    const http::message_head* head_ = nullptr;
    bool head_done_ = false;
    std::optional<observe::refusal> refusal_;
    std::optional<observe::upstream_failure> failure_;
    std::chrono::system_clock::time_point noted_{};  // when the refusal or failure was noted

    void remember(observe::event_kind kind, std::string_view reason);
};

}  // namespace porthole::relay
