#pragma once
// A response as the cache keeps it (its status, its end-to-end fields, its whole decoded body
// and when it was fetched) and the answers made from it, pure: the head a visitor gets with its
// Age and Cache-Status, a 304 to a visitor's own conditional request, a byte range of the body.
#include "cache/freshness.hpp"
#include "http/message_head.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace porthole::cache {

struct stored_response {
    unsigned status = 0;
    std::vector<http::field> fields;  // without hop-by-hop, framing and Age fields
    std::string body;
    response_facts facts;
    std::uint64_t lifetime = 0;  // freshness_lifetime when stored or last validated
    std::int64_t request_time = 0;
    std::int64_t response_time = 0;
    // The request's values of the fields the response varies on, normalized, by name.
    std::vector<std::pair<std::string, std::string>> vary_values;
    // Stored for a tunnel whose owner asked for the cache (--cache): may be served while the
    // client is away, as the operator's stale_when_offline allows for everything.
    bool serve_offline = false;

    std::size_t bytes() const;  // what it costs the store, roughly
    const std::string* find(std::string_view name) const;
};

// The fields of a received head worth storing: hop-by-hop fields (those Connection names too),
// Transfer-Encoding, Content-Length, Trailer and Age dropped. A response without Date gets one
// (`now`), as RFC 9110 section 6.6.1 asks of a cache.
std::vector<http::field> storable_fields(const std::vector<http::field>& fields, std::int64_t now);

// Whether `request`'s fields match the ones `stored` was chosen by (Vary).
bool vary_matches(const stored_response& stored, const http::message_head& request);
// The request's values of `names`, normalized, to store with a response.
std::vector<std::pair<std::string, std::string>> vary_values(
    const std::vector<std::string>& names, const http::message_head& request);

// A 304's fields folded into a stored response (RFC 9111 section 4.3.4); its times renewed.
void refresh(stored_response& stored, const std::vector<http::field>& fields_304,
             std::int64_t request_time, std::int64_t response_time, const freshness_rules& rules);

// What a visitor's request makes of a stored response: the whole of it, a 304 (its own
// If-None-Match or If-Modified-Since matched), one byte range (206), or 416.
struct answer_shape {
    unsigned status = 200;
    std::uint64_t first = 0, length = 0;  // the bytes of the body that go
};
answer_shape shape_answer(const stored_response& stored, const http::message_head& request);

struct head_options {
    std::uint64_t age = 0;
    std::string_view cache_status;  // the Cache-Status field's value
    bool close = false;             // Connection: close
    unsigned version = 11;          // the visitor's
};
// The head of `shape` made from `stored`.
std::string answer_head(const stored_response& stored, const answer_shape& shape,
                        const head_options& options);

}  // namespace porthole::cache
