#pragma once
// A step of a route's policy chain: it sees a request's head and the visitor, and either lets the
// request through (possibly editing the request head sent upstream and the response head sent
// back) or answers it itself. A step that needs the whole body (verify_webhook) says so, and then
// judges the body too, before any of the request goes upstream. The HTTP edge runs a route's steps
// in order; docs/policies.md has the config contract.
#include "http/header_edits.hpp"
#include "http/message_head.hpp"
#include "net/byte_shaper.hpp"

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace porthole::policy {

class compression;  // policy/compress.hpp

struct request_context {
    const http::message_head& head;
    std::string_view host;       // the Host field as sent ("" when absent)
    std::string_view client_ip;  // the visitor: behind trusted proxies, the forwarded address
    boost::asio::ip::address client_address;  // the same, parsed once for every step
    bool https = false;          // what the visitor used
    std::uint16_t https_port = 0;  // the relay's HTTPS listener (0: none)
    std::string_view tunnel;     // the tunnel's name on a tunnel's route, else empty
    std::string request_id;      // X-Request-Id, once a step has needed it
    http::header_edits request;   // toward the upstream
    http::header_edits response;  // toward the visitor
    std::uint64_t body_limit = UINT64_MAX;  // a body larger than this is cut (max_body)
    std::size_t strip = 0;  // the route's strip_prefix: leading characters of the path dropped
    std::string target{};   // origin-form target a rewrite made (sent as it is); empty: none
    net::shaping shaping{};  // bandwidth budgets the exchange's bytes pass
    const compression* compress = nullptr;  // the route compresses responses (compress)
};

// A response a step makes itself.
struct answer {
    unsigned status = 200;
    std::string fields;  // extra header lines, each ending in CRLF
    std::string body;
    std::string content_type = "text/plain; charset=utf-8";  // empty: none (a redirect)
    bool no_store = true;  // Cache-Control: no-store (not for redirects and fixed pages)
};

class policy {
public:
    virtual ~policy() = default;
    // Its `type` in the config: what the inspector and request events say answered a request.
    virtual std::string_view type() const = 0;
    // nullopt: the request goes on to the next step.
    virtual std::optional<answer> on_request(request_context& r) = 0;
    // The most body bytes this step will judge (0: it never sees the body). A larger body is
    // refused with 413 before any of it goes upstream.
    virtual std::uint64_t body_needed() const { return 0; }
    // After on_request let the request through, when body_needed() is not 0: the whole body,
    // decoded (chunked framing removed). nullopt: the request goes on to the next step.
    virtual std::optional<answer> on_body(request_context&, std::string_view) {
        return std::nullopt;
    }
    // It keeps state across requests that must be one for the whole relay (counts, shared
    // shapers). Unless it is shared_by_loops(), its route is served by the relay's first event
    // loop alone, where that state lives (docs/architecture.md#threads). A cache each loop's
    // copy may keep for itself (verified credentials) does not count.
    virtual bool keeps_state() const { return false; }
    // That state is behind a lock of its own: every loop's route or tunnel uses the first
    // loop's object (policy::share_steps; relay::shared_tunnel_steps for [tunnel_policy]).
    virtual bool shared_by_loops() const { return false; }
};

// The bytes of `a` as a response; no body for a HEAD request; `close` says Connection: close.
std::string response_of(const answer& a, bool head_request, bool close);

// `name` replaced in the message `e` edits: its own fields of that name and any an earlier step
// added are dropped, then `value` is added when there is one.
void set_field(http::header_edits& e, std::string_view name, std::optional<std::string> value);

// The request's X-Request-Id: the visitor's own, or a fresh one the first time it is asked for.
const std::string& request_id(request_context& r);

}  // namespace porthole::policy
