#pragma once
// The forwarding core the relay's HTTP edge and the client's HTTP forwarder share: a request's
// body and then the interim and final responses, forwarded exactly as framed (no re-encoding, so
// what the far side parses is what this side checked) between two endpoints. The callers own the
// heads, the connections and what an outcome means for them (a retry, a 502, a record).
#include "http/header_edits.hpp"
#include "http/message_head.hpp"
#include "http/response_transform.hpp"
#include "net/io_buffer.hpp"
#include "net/stream.hpp"
#include "net/traffic.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace porthole::http {

// One side of an exchange: reads and writes with whatever deadlines the caller keeps.
class forward_endpoint {
public:
    virtual ~forward_endpoint() = default;
    // Appends what arrives; false at end of stream, an error or the caller's deadline.
    virtual boost::asio::awaitable<bool> read_more(net::io_buffer& in) = 0;
    // Writes `bytes` then `more` in one gathered write; false when that fails.
    virtual boost::asio::awaitable<bool> write(std::string_view bytes, std::string_view more) = 0;
    virtual void shutdown_send() = 0;
    virtual void close() = 0;
    // Ends whatever read or write is in flight (stops the other half of an exchange).
    virtual void cancel() = 0;
    // Whether read_more would find bytes without waiting (false when it cannot tell): a body
    // being re-encoded is flushed to the visitor only before a read that would wait.
    virtual bool readable_now() { return false; }
};

// Whether a read of `s` would find bytes at once: OpenSSL holds some, or the kernel does.
bool readable_now(net::stream& s);

// A stream with no deadline of its own (the client's: the relay keeps the deadlines). With
// `counted`, what each read and write moved is added to it (in: read, out: written).
class stream_endpoint final : public forward_endpoint {
public:
    explicit stream_endpoint(net::stream& s, net::traffic* counted = nullptr)
        : stream_(s), counted_(counted) {}
    boost::asio::awaitable<bool> read_more(net::io_buffer& in) override;
    boost::asio::awaitable<bool> write(std::string_view bytes, std::string_view more) override;
    void shutdown_send() override { stream_.shutdown_send(); }
    void close() override { stream_.close(); }
    void cancel() override;
    bool readable_now() override { return http::readable_now(stream_); }

private:
    net::stream& stream_;
    net::traffic* counted_;
};

// A sink that takes every byte and keeps none (a replayed request's response goes nowhere).
class discard_endpoint final : public forward_endpoint {
public:
    boost::asio::awaitable<bool> read_more(net::io_buffer&) override;
    boost::asio::awaitable<bool> write(std::string_view, std::string_view) override;
    void shutdown_send() override {}
    void close() override {}
    void cancel() override {}
};

enum class response_state { none, partial, complete, upgraded };

struct request_body_result {
    bool done = false;       // the whole body was forwarded
    bool malformed = false;  // the body's framing was bad; the upstream was cut
    bool too_large = false;  // malformed for passing the framer's body limit (max_body)
};

struct response_result {
    response_state state = response_state::none;  // none: not a byte reached the visitor
    unsigned status = 0;                          // of the final response (101 included)
    bool keep_alive = false;                      // the response lets the visitor go on
    bool reusable = false;                        // and the upstream connection too
    bool malformed = false;                       // refused before a byte reached the visitor
    bool timed_out = false;                       // no byte within first_byte_timeout
    // A write to the visitor failed: it went away. With state none the upstream did answer, and
    // is not to blame.
    bool visitor_gone = false;
    bool swallowed = false;  // the observer kept the final response from the visitor
    std::string problem;                          // why a malformed response was refused
};

// Called once per exchange, when the final response's head has been parsed and before any of
// it is forwarded: `head` is its bytes as received.
class response_observer {
public:
    virtual ~response_observer() = default;
    virtual void final_head(http::framer<false>& response, std::string_view head) = 0;
    // Asked after final_head. Where the body goes as it is decoded (a cache keeping it); null:
    // nowhere.
    virtual body_capture* body_sink() { return nullptr; }
    // The response is read to its end but not forwarded: the caller answers instead.
    virtual bool swallow() const { return false; }
    // Whole lines (each ending in CRLF) added to the forwarded head.
    virtual std::string_view extra_fields() const { return {}; }
};

struct response_options {
    bool head_request = false;  // a response to HEAD has no body whatever it says
    // Added to the final response's head (each line ending in CRLF), e.g. a Set-Cookie.
    std::string_view add_fields;
    // A route's policies' edits to the final response's head; may be null.
    const header_edits* edits = nullptr;
    // How long the first byte of the response may take; nullopt for no limit beyond the
    // endpoint's own deadline.
    std::optional<std::chrono::steady_clock::duration> first_byte_timeout;
    response_observer* observer = nullptr;
    // A route's change to the final response (compress); null, the usual case: every response
    // is forwarded exactly as framed. A body it re-encodes goes chunked to an HTTP/1.1 visitor
    // of an HTTP/1.1 response, else delimited by closing the connection.
    response_transform* transform = nullptr;
    bool visitor_http10 = false;  // the request was HTTP/1.0
    // Read when the final head goes out: true (the relay drains) sends it with
    // Connection: close, and the connection ends after the response.
    const bool* close_visitor = nullptr;
};

// Forwards the rest of `request`'s body from `from` (`in` holds what was read already) to `to`;
// pipelined bytes after it stay in `in`. A malformed body closes `to`; `from` ending early shuts
// down `to`'s sending side.
boost::asio::awaitable<request_body_result> forward_request_body(http::framer<true>& request,
                                                                 forward_endpoint& from,
                                                                 net::io_buffer& in,
                                                                 forward_endpoint& to);

// Forwards interim responses and the final one from `upstream` (`upstream_in` holds what was
// read already) to `visitor`. Bytes after the final response (an upgraded connection's first
// ones) stay in `upstream_in`. When the response cannot be completed, `visitor` is cancelled, so
// that a request body still being forwarded alongside stops too.
boost::asio::awaitable<response_result> forward_response(forward_endpoint& upstream,
                                                         net::io_buffer& upstream_in,
                                                         forward_endpoint& visitor,
                                                         const response_options& options);

}  // namespace porthole::http
