#pragma once
// What one request through the relay leaves behind, for the access log. Views into the request's
// head and the relay's routes: valid while the exchange that fills it runs.
#include <chrono>
#include <cstdint>
#include <string_view>

namespace porthole::observe {

struct request_record {
    std::chrono::system_clock::time_point time{};  // the request's start
    std::string_view visitor;                        // the visitor's address (trusted_proxies applied)
    bool tls = false;
    std::string_view host, method, target;
    unsigned version = 11;  // 10 or 11
    unsigned status = 0;    // 0: no response was sent
    std::uint64_t bytes_in = 0, bytes_out = 0;  // as sent on the visitor's connection, before TLS
    std::chrono::microseconds duration{};
    std::string_view site, route, tunnel, upstream;  // upstream: a member's URL, or "tunnel:NAME"
    std::string_view request_id;
    std::string_view policy;   // the policy step that answered
    std::string_view refusal;  // the relay's reason, when it answered itself
    std::string_view referer, user_agent;
    bool upgraded = false;
};

}  // namespace porthole::observe
