#include "http/forward_exchange.hpp"

#include "http/content_encoder.hpp"
#include "net/frame_io.hpp"

#include <boost/beast/http/error.hpp>

#include <sys/ioctl.h>

#include <algorithm>
#include <cstdio>

namespace porthole::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using error_code = boost::system::error_code;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {
constexpr std::size_t response_head_limit = 64 * 1024;

std::string_view view(const net::io_buffer& b) {
    return {static_cast<const char*>(b.data().data()), b.size()};
}

bool failed(const error_code& ec) { return ec && ec != beast::http::error::need_more; }

// Room kept in front of each batch of encoded bytes for its chunk-size line (16 hex digits, CRLF).
constexpr std::size_t chunk_line_room = 18;
// Encoded bytes sent at once while the upstream's bytes keep coming without a flush.
constexpr std::size_t encoded_batch = 16 * 1024;

// The final response's body, decoded from the upstream's framing as it arrives, encoded by
// `encoder` and sent to the visitor chunked (`chunked`) or as it is (the connection's close ends
// it); `head` goes first, with the first encoded bytes. Before a read from the upstream that
// would wait, everything given to the encoder is flushed to the visitor, so a streaming upstream
// is never held back; while the upstream's bytes keep coming, the encoder keeps them. False when
// the body could not be completed (`ec` says why when the upstream's framing was bad).
asio::awaitable<bool> forward_encoded(http::framer<false>& response, forward_endpoint& upstream,
                                      net::io_buffer& upstream_in, forward_endpoint& visitor,
                                      content_encoder& encoder, std::string head, bool chunked,
                                      response_result& result, error_code& ec) {
    // Only chunks need decoding; any other body's bytes are the content as they came.
    const bool raw = !response.chunked();
    http::body_capture decoded;
    decoded.limit = SIZE_MAX;
    if (!raw) response.capture_body(&decoded);
    byte_buffer out;
    out.prepare(chunk_line_room);
    out.commit(chunk_line_room);
    bool fed = false;  // bytes given to the encoder since its last flush
    for (;;) {
        std::size_t used = 0;
        if (upstream_in.size() != 0) {
            used = response.put(upstream_in.data(), ec);
            if (failed(ec)) break;
            if (raw && used > 0) {
                if (!encoder.encode(view(upstream_in).substr(0, used), encode_step::more, out))
                    break;
                fed = true;
            }
            upstream_in.consume(used);
        }
        if (!decoded.data.empty()) {
            if (!encoder.encode(decoded.data, encode_step::more, out)) break;
            decoded.data.clear();
            fed = true;
        }
        const bool done = response.is_done();
        if (!done && used > 0 && upstream_in.size() != 0) continue;
        if (done || (fed && !upstream.readable_now())) {
            const bool encoded =
                encoder.encode({}, done ? encode_step::finish : encode_step::flush, out);
            if (!encoded) break;
            fed = false;
        }
        // Flushed: everything so far goes, the head too. Else what the encoder gave out so far,
        // once there is a batch of it.
        std::size_t start = chunk_line_room;
        const std::size_t size = out.size() - chunk_line_room;
        const bool send = !fed || size >= encoded_batch;
        if (send && chunked && size > 0) {
            char line[chunk_line_room + 1];
            const int n = std::snprintf(line, sizeof line, "%zx\r\n", size);
            start -= static_cast<std::size_t>(n);
            std::copy(line, line + n, out.data() + start);
            out.append("\r\n");
        }
        if (chunked && done) out.append("0\r\n\r\n");
        if (send && (!head.empty() || out.size() > chunk_line_room)) {
            const bool sent = co_await visitor.write(head, out.view().substr(start));
            if (!sent) {
                result.visitor_gone = true;
                break;
            }
            result.state = response_state::partial;
            head.clear();
            out.clear();
            out.commit(chunk_line_room);
        }
        if (done) {
            response.capture_body(nullptr);
            co_return true;
        }
        if (!co_await upstream.read_more(upstream_in)) {
            if (!response.need_eof()) break;
            response.put_eof(ec);  // a close-delimited body ends here
            if (failed(ec)) break;
        }
    }
    response.capture_body(nullptr);
    co_return false;
}

// The upstream's Connection field says close.
bool says_close(std::string_view head) {
    bool close = false;
    for_each_field(head, [&](std::string_view name, std::string_view value) {
        if (beast::iequals(name, "connection") && has_token(value, "close")) close = true;
    });
    return close;
}
}  // namespace

asio::awaitable<bool> stream_endpoint::read_more(net::io_buffer& in) {
    auto [ec, n] = co_await stream_.read_some(in.prepare(net::io_block_size));
    in.commit(n);
    if (counted_) counted_->in += n;
    co_return !ec;
}

asio::awaitable<bool> stream_endpoint::write(std::string_view bytes, std::string_view more) {
    auto [ec, n] = co_await stream_.write(asio::buffer(bytes), asio::buffer(more));
    if (counted_) counted_->out += n;
    co_return !ec;
}

bool readable_now(net::stream& s) {
    if (s.is_tls() && s.tls().has_pending()) return true;
    int queued = 0;
    return ::ioctl(s.socket().native_handle(), FIONREAD, &queued) == 0 && queued > 0;
}

void stream_endpoint::cancel() {
    error_code ignored;
    stream_.socket().cancel(ignored);
}

asio::awaitable<bool> discard_endpoint::read_more(net::io_buffer&) { co_return false; }

asio::awaitable<bool> discard_endpoint::write(std::string_view, std::string_view) {
    co_return true;
}

asio::awaitable<request_body_result> forward_request_body(http::framer<true>& request,
                                                          forward_endpoint& from,
                                                          net::io_buffer& in,
                                                          forward_endpoint& to) {
    request_body_result result;
    error_code ec;
    request.eager(true);
    while (!request.is_done()) {
        std::size_t used = 0;
        if (in.size() != 0) {
            used = request.put(in.data(), ec);
            if (failed(ec)) {
                result.malformed = true;  // the upstream sees an aborted request
                result.too_large = ec == boost::beast::http::error::body_limit;
                to.close();
                co_return result;
            }
        }
        if (used > 0) {
            if (!co_await to.write(view(in).substr(0, used), {})) co_return result;
            in.consume(used);
            continue;
        }
        if (!co_await from.read_more(in)) {
            to.shutdown_send();
            co_return result;
        }
    }
    result.done = true;
    co_return result;
}

asio::awaitable<response_result> forward_response(forward_endpoint& upstream,
                                                  net::io_buffer& upstream_in,
                                                  forward_endpoint& visitor,
                                                  const response_options& options) {
    response_result result;
    error_code ec;
    const auto sent_at = clock::now();
    // The first read may have a deadline of its own (upstream_timeout), as precise as the setting.
    const auto read_upstream = [&]() -> asio::awaitable<bool> {
        if (result.state != response_state::none || !options.first_byte_timeout)
            co_return co_await upstream.read_more(upstream_in);
        const auto left = *options.first_byte_timeout - (clock::now() - sent_at);
        auto read = co_await net::within(upstream.read_more(upstream_in),
                                         std::max<clock::duration>(left, 1ms));
        result.timed_out = !read;
        co_return read && *read;
    };
    for (;;) {
        http::framer<false> response(response_head_limit, false);
        response.skip(options.head_request);
        std::size_t head_size = 0;
        bool got = true;
        while (!response.is_header_done()) {
            if (upstream_in.size() != 0) {
                head_size = response.put(upstream_in.data(), ec);
                if (response.is_header_done() || failed(ec)) break;
            }
            got = co_await read_upstream();
            if (!got) break;
        }
        if (!response.is_header_done()) {
            if (failed(ec)) {
                result.problem = http::rejection_for(response, ec).reason;
                result.malformed = result.state == response_state::none;
            }
            visitor.cancel();
            co_return result;
        }
        const unsigned status = response.head().status;
        const bool final_response = status >= 200 || status == 101;
        const std::string_view head = view(upstream_in).substr(0, head_size);
        // An observer may keep the body, take the response away from the visitor (then it goes
        // nowhere), or add fields.
        discard_endpoint nowhere;
        forward_endpoint* to_visitor = &visitor;
        std::string_view add_fields = options.add_fields;
        std::string added;
        if (final_response && options.observer) {
            options.observer->final_head(response, head);
            if (body_capture* sink = options.observer->body_sink()) response.capture_body(sink);
            result.swallowed = status != 101 && options.observer->swallow();
            if (result.swallowed) to_visitor = &nowhere;
            if (const auto extra = options.observer->extra_fields(); !extra.empty()) {
                added = std::string(add_fields).append(extra);
                add_fields = added;
            }
        }
        response.eager(true);
        const header_edits* edits = options.edits;
        header_edits transformed;  // the route's edits and a transform's
        // A draining relay says so in the head, so no visitor sends another request into a
        // connection that is about to close.
        const bool closing = final_response && status != 101 && options.close_visitor &&
                             *options.close_visitor;
        if (closing) {
            if (options.edits) transformed = *options.edits;
            transformed.remove.emplace_back("connection");
            transformed.remove.emplace_back("keep-alive");
            transformed.add.push_back({"Connection", "close"});
            edits = &transformed;
        }
        if (final_response && status != 101 && options.transform && !result.swallowed) {
            if (options.edits && !closing) transformed = *options.edits;
            edits = &transformed;
            content_encoder* encoder = options.transform->begin(response, head, transformed);
            if (encoder) {
                // Re-framed: the upstream's framing fields go, the visitor's come.
                const bool chunked = !options.visitor_http10 && response.head().version == 11;
                for (const char* f : {"content-length", "transfer-encoding", "trailer"})
                    transformed.remove.emplace_back(f);
                if (chunked) {
                    transformed.add.push_back({"Transfer-Encoding", "chunked"});
                } else if (!closing) {
                    transformed.remove.emplace_back("connection");
                    transformed.remove.emplace_back("keep-alive");
                    transformed.add.push_back({"Connection", "close"});
                }
                const bool close = says_close(head);
                std::string edited = edit_head(head, transformed, add_fields);
                upstream_in.consume(head_size);
                const bool complete =
                    co_await forward_encoded(response, upstream, upstream_in, visitor, *encoder,
                                             std::move(edited), chunked, result, ec);
                if (!complete) {
                    if (failed(ec)) {
                        result.problem = http::rejection_for(response, ec).reason;
                        result.malformed = result.state == response_state::none;
                    }
                    visitor.cancel();
                    co_return result;
                }
                result.status = status;
                result.state = response_state::complete;
                result.keep_alive = chunked && !close && !closing;
                result.reusable = response.keep_alive() && !response.need_eof();
                co_return result;
            }
        }
        // Body bytes that came with the head leave in the same write as the head.
        std::size_t body_size = 0;
        if (!response.is_done() && upstream_in.size() > head_size) {
            body_size = response.put(
                asio::buffer(static_cast<const char*>(upstream_in.data().data()) + head_size,
                             upstream_in.size() - head_size),
                ec);
            if (failed(ec)) body_size = 0;
        }
        const auto bytes = view(upstream_in);
        const bool edited_head = final_response && status != 101 &&
                                 (!add_fields.empty() || (edits && !edits->empty()));
        std::string edited;
        if (edited_head) {
            static const header_edits none;
            edited = edit_head(head, edits ? *edits : none, add_fields);
        }
        const std::string_view head_bytes =
            edited_head ? std::string_view(edited) : bytes.substr(0, head_size);
        if (!co_await to_visitor->write(head_bytes, bytes.substr(head_size, body_size))) {
            result.visitor_gone = true;
            visitor.cancel();
            co_return result;
        }
        upstream_in.consume(head_size + body_size);
        result.state = response_state::partial;
        while (!response.is_done() && !failed(ec)) {
            std::size_t used = 0;
            if (upstream_in.size() != 0) {
                used = response.put(upstream_in.data(), ec);
                if (failed(ec)) break;
            }
            if (used > 0) {
                // No co_await inside || or &&: GCC 12 evaluates it even when short-circuited.
                const bool sent = co_await to_visitor->write(view(upstream_in).substr(0, used), {});
                if (!sent) {
                    result.visitor_gone = true;
                    break;
                }
                upstream_in.consume(used);
                continue;
            }
            if (!co_await upstream.read_more(upstream_in)) {
                if (response.need_eof()) response.put_eof(ec);  // a close-delimited body ends here
                break;
            }
        }
        if (!response.is_done()) {
            if (failed(ec)) result.problem = http::rejection_for(response, ec).reason;
            visitor.cancel();
            co_return result;
        }
        if (!final_response) continue;
        result.status = status;
        if (status == 101) {
            result.state = response_state::upgraded;
            co_return result;
        }
        result.state = response_state::complete;
        result.keep_alive = response.keep_alive() && !closing;
        result.reusable = response.keep_alive() && !response.need_eof();
        co_return result;
    }
}

}  // namespace porthole::http
