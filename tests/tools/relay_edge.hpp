#pragma once
// What the relay's public HTTP edge does with the first request of a visitor's bytes, without
// sockets: the steps and their order are those of exchange() in src/relay/relay.cpp. Shared by
// http_probe and the http_forward fuzz target, so both judge exactly what the relay runs.
#include "http/message_head.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace porthole::tests {

struct edge_verdict {
    enum class kind {
        forwarded,  // head and whole body accepted: sent toward the tunnel
        rejected,  // answered by the relay itself
        head_incomplete,  // nothing sent yet: the relay waits for the rest of the head
        body_incomplete,  // the head and part of the body were sent; the relay waits for the rest
    };
    kind what = kind::head_incomplete;
    std::optional<http::rejection> rejection;
    http::message_head head;
    std::string forwarded_head;  // as written toward the tunnel
    std::string framed_body;  // body bytes exactly as framed: what follows the forwarded head
    std::string decoded_body;  // chunked framing removed
    std::size_t consumed = 0;  // bytes of the input this request used
};

// The forwarding a tunnel with the default settings gets.
inline http::forwarding default_forwarding(bool upgrade) {
    return {"192.0.2.1", "http", "preserve", "127.0.0.1:3000", upgrade};
}

// `first_arrival`: how many of the bytes the relay reads before the rest (a packet boundary).
inline edge_verdict pass_edge(std::string_view bytes,
                              std::size_t first_arrival = std::numeric_limits<std::size_t>::max(),
                              std::size_t header_limit = 64 * 1024) {
    namespace beast = boost::beast;
    edge_verdict v;
    std::string in(bytes.substr(0, first_arrival));
    std::size_t offered = in.size();
    auto read_more = [&] {
        if (offered == bytes.size()) return false;
        in.append(bytes.substr(offered));
        offered = bytes.size();
        return true;
    };
    auto reject = [&](http::rejection r) {
        v.what = edge_verdict::kind::rejected;
        v.rejection = std::move(r);
        return v;
    };

    http::framer<true> request(header_limit);
    http::body_capture body{{}, 0, std::numeric_limits<std::size_t>::max()};
    request.capture_body(&body);
    std::optional<http::rejection> raw_head_problem;
    beast::error_code ec;
    for (;;) {
        const std::size_t used = request.put(boost::asio::buffer(in), ec);
        if (request.is_header_done())
            raw_head_problem = http::check_raw_head(std::string_view(in).substr(0, used));
        v.consumed += used;
        in.erase(0, used);
        if (request.is_header_done() || (ec && ec != beast::http::error::need_more)) break;
        if (!read_more()) return v;  // head_incomplete
    }
    if (!request.is_header_done()) return reject(http::rejection_for(ec));
    if (auto r = raw_head_problem ? raw_head_problem : http::check_request(request))
        return reject(*r);
    v.head = request.head();

    // The head goes out once the body bytes that came with it are checked; the rest streams.
    request.eager(true);
    while (!request.is_done()) {
        std::size_t used = 0;
        if (!in.empty()) {
            used = request.put(boost::asio::buffer(in), ec);
            if (ec && ec != beast::http::error::need_more)
                return reject({400, "malformed request body: " + ec.message()});
        }
        if (used > 0) {
            v.framed_body.append(in, 0, used);
            v.consumed += used;
            in.erase(0, used);
            continue;
        }
        if (!read_more()) break;
    }
    v.decoded_body = std::move(body.data);
    v.forwarded_head = http::forward_request_head(v.head, default_forwarding(request.upgrade()));
    v.what = request.is_done() ? edge_verdict::kind::forwarded : edge_verdict::kind::body_incomplete;
    return v;
}

// The target in a forwarded head's request line.
inline std::string_view request_line_target(std::string_view head) {
    const auto first = head.find(' ');
    if (first == std::string_view::npos) return {};
    const auto second = head.find(' ', first + 1);
    if (second == std::string_view::npos) return {};
    return head.substr(first + 1, second - first - 1);
}

}  // namespace porthole::tests
