#pragma once
// A whole HTTP/1.1 response read from the bytes a small client collected (a JWK Set fetch, an
// ACME exchange): any framing (length, chunked, until close), the body bounded. Pure.
#include "http/message_head.hpp"

#include <tl/expected.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace porthole::http {

struct whole_response {
    message_head head;  // status and header fields
    std::string body;   // decoded
};

// From `bytes`, all that arrived (`eof`: the server has closed): nullopt while more are needed;
// an error for a malformed response or a body over `max_body` bytes.
tl::expected<std::optional<whole_response>, std::string> read_whole_response(std::string_view bytes,
                                                                             bool eof,
                                                                             std::size_t max_body);

}  // namespace porthole::http
