#pragma once
// A change to a final response on its way to the visitor that a route's policy asks the
// forwarding core for (compress): edits to its head and, when it says so, its body re-encoded.
#include "http/header_edits.hpp"
#include "http/message_head.hpp"

#include <string_view>

namespace porthole::http {

class content_encoder;  // http/content_encoder.hpp

class response_transform {
public:
    virtual ~response_transform() = default;
    // The final response (not a 101), its head `head` as received, before any of it is
    // forwarded. Edits to its head go into `edits` (which holds the route's own already). The
    // result encodes its body, decoded from the upstream's framing; null: the body is forwarded
    // exactly as framed. The forwarding core re-frames an encoded body itself.
    virtual content_encoder* begin(const framer<false>& response, std::string_view head,
                                   header_edits& edits) = 0;
};

}  // namespace porthole::http
