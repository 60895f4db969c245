#pragma once
// HTTP/1.x framing for the relay: a Beast parser that records the head and tracks where the body
// ends without copying it, so the relay can forward body bytes exactly as they arrived.
#include <boost/beast/http/basic_parser.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

namespace porthole::http {

struct header_edits;  // http/header_edits.hpp

struct field {
    std::string name;
    std::string value;
};

struct message_head {
    std::string method;  // requests
    std::string target;  // requests
    unsigned status = 0;  // responses
    unsigned version = 11;  // 10 or 11
    std::vector<field> fields;

    const std::string* find(std::string_view name) const;  // first field, case-insensitive
};

// The header fields of a raw head that a framer already accepted ("Name: value" lines after the
// start line), for when they are needed long after parsing: recording them as strings for every
// message would cost an allocation per field.
std::vector<field> fields_of(std::string_view raw_head);

// Decoded body bytes (chunked framing removed) kept up to `limit`; all of them counted.
struct body_capture {
    std::string data;
    std::uint64_t size = 0;
    std::size_t limit = 0;

    void add(std::string_view bytes) {
        size += bytes.size();
        if (data.size() >= limit) return;
        bytes = bytes.substr(0, limit - data.size());
        // Grow by doubling as append would, but never past the limit: memory stays what is counted.
        if (data.capacity() < data.size() + bytes.size())
            data.reserve(std::min(limit, std::max(data.size() + bytes.size(), 2 * data.capacity())));
        data.append(bytes);
    }
    bool truncated() const { return size > data.size(); }
};

struct rejection {
    unsigned status;  // 400, 431, 501
    std::string reason;
};

// A framing problem in one header field, checked on requests and responses alike as the parser
// meets it (RFC 9112 sections 6, 7; RFC 9110 section 7.6.1): a Content-Length that is not one
// plain decimal number of at most 18 digits; a Transfer-Encoding with chunked twice, or (requests)
// with any coding but chunked; a Connection that names Content-Length, Transfer-Encoding or Host,
// which would make the relay drop a field that frames or routes the message it still forwards.
// Fixed reasons, so the check that passes (every message's Content-Length and Connection) builds
// no string.
struct field_rejection {
    unsigned status;
    const char* reason;
};
std::optional<field_rejection> field_problem(boost::beast::http::field name,
                                             std::string_view value, bool request);

// Chunk sizes above this, or written with more digits (leading zeros included), are refused: two
// parsers must never disagree on where a chunk ends, and some read only so many digits.
inline constexpr std::uint64_t max_chunk_size = std::uint64_t{1} << 48;
inline constexpr std::size_t max_chunk_size_digits = 16;


template <bool IsRequest>
class framer : public boost::beast::http::basic_parser<IsRequest> {
public:
    // `record_fields` false keeps only the start line: enough to frame a response.
    explicit framer(std::size_t header_limit = 64 * 1024, bool record_fields = true)
        : record_fields_(record_fields) {
        this->eager(false);  // stop after the head so it can be rewritten before the body moves
        this->body_limit(boost::none);
        this->header_limit(static_cast<std::uint32_t>(header_limit));
    }
    // Until the head is complete, put() reports nothing consumed, so the caller's buffer holds the
    // whole raw head when it is done (checked as one by check_raw_head) however it arrived. The
    // parser still takes the head's lines as they come: the bytes it took are skipped on the next
    // call, which the caller makes with the same bytes and more. Body bytes go through as they come.
    template <class Buffer>
    std::size_t put(const Buffer& buffer, boost::beast::error_code& ec) {
        std::string_view bytes(static_cast<const char*>(buffer.data()), buffer.size());
        const bool in_head = !this->is_header_done();
        const std::size_t taken = in_head ? std::min(head_taken_, bytes.size()) : 0;
        bytes.remove_prefix(taken);
        input_ = bytes;
        const std::size_t used =
            base::put(boost::asio::const_buffer(bytes.data(), bytes.size()), ec);
        if (!in_head) return used;
        head_taken_ = taken + used;
        return this->is_header_done() ? head_taken_ : 0;
    }

    const message_head& head() const { return head_; }
    // Why parsing stopped, when a check of this framer's (not the parser's own) stopped it.
    const std::optional<rejection>& problem() const { return problem_; }
    // Decoded body bytes go to `c` as they are parsed (nullptr: nowhere).
    void capture_body(body_capture* c) { capture_ = c; }
    // A chunked body whose chunks announce more than `n` bytes in all stops with
    // error::body_limit; false when the chunks parsed so far already did.
    bool cap_body(std::uint64_t n) {
        body_cap_ = n;
        return body_announced_ <= n;
    }

private:
    using base = boost::beast::http::basic_parser<IsRequest>;
    using error_code = boost::beast::error_code;
    using string_view = boost::beast::string_view;

    void on_request_impl(boost::beast::http::verb, string_view method, string_view target,
                         int version, error_code& ec) override {
        head_.method.assign(method.data(), method.size());
        head_.target.assign(target.data(), target.size());
        head_.version = static_cast<unsigned>(version);
        ec = {};
    }
    void on_response_impl(int status, string_view, int version, error_code& ec) override {
        head_.status = static_cast<unsigned>(status);
        head_.version = static_cast<unsigned>(version);
        ec = {};
    }
    void on_field_impl(boost::beast::http::field f, string_view name, string_view value,
                       error_code& ec) override {
        using boost::beast::http::field;
        if (f == field::content_length || f == field::transfer_encoding || f == field::connection) {
            std::optional<field_rejection> p;
            if (f == field::transfer_encoding && transfer_encodings_++ > 0)
                p = field_rejection{400, "more than one Transfer-Encoding field"};
            else if (f == field::content_length && content_lengths_++ > 0)
                p = field_rejection{400, "more than one Content-Length field"};
            else
                p = field_problem(f, {value.data(), value.size()}, IsRequest);
            if (p) {
                problem_ = rejection{p->status, p->reason};
                ec = boost::beast::http::error::bad_value;
                return;
            }
        }
        if (record_fields_) head_.fields.push_back({std::string(name), std::string(value)});
        ec = {};
    }
    void on_header_impl(error_code& ec) override { ec = {}; }
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code& ec) override {
        ec = {};
    }
    std::size_t on_body_impl(string_view body, error_code& ec) override {
        ec = {};
        if (capture_) capture_->add({body.data(), body.size()});
        return body.size();
    }
    void on_chunk_header_impl(std::uint64_t size, string_view extensions,
                              error_code& ec) override {
        ec = {};
        // The size's digits end where its extensions start, inside the bytes given to put().
        const char* end = extensions.data();
        std::size_t digits = 0;
        if (end >= input_.data() && end <= input_.data() + input_.size())
            for (const char* p = end; p > input_.data() && std::isxdigit(
                                                               static_cast<unsigned char>(p[-1]));
                 --p)
                ++digits;
        if (size > max_chunk_size || digits > max_chunk_size_digits) {
            problem_ = rejection{400, "chunk size too large"};
            ec = boost::beast::http::error::bad_chunk;
            return;
        }
        body_announced_ += size;
        if (body_announced_ > body_cap_) {
            problem_ = rejection{413, "the request body is over the limit"};
            ec = boost::beast::http::error::body_limit;
        }
    }
    std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override {
        ec = {};
        if (capture_) capture_->add({body.data(), body.size()});
        return body.size();
    }
    void on_finish_impl(error_code& ec) override { ec = {}; }

    message_head head_;
    std::optional<rejection> problem_;
    std::string_view input_;  // what the current put() parses
    std::size_t head_taken_ = 0;  // bytes of an unfinished head the parser has taken
    std::uint64_t body_announced_ = 0;  // chunk sizes so far
    std::uint64_t body_cap_ = UINT64_MAX;
    unsigned transfer_encodings_ = 0;
    unsigned content_lengths_ = 0;
    bool record_fields_;
    body_capture* capture_ = nullptr;
};

// Checks a parsed request head beyond what the parser enforces (RFC 9112 sections 3.2, 5, 6).
std::optional<rejection> check_request(const framer<true>& request);

// Checks the raw bytes of a head: no obs-fold line continuations, no bare CR or LF.
std::optional<rejection> check_raw_head(std::string_view head);

// The parser error of a bad head -> the status a visitor gets.
rejection rejection_for(const boost::beast::error_code& ec);
// The same for a framer that stopped: its own check's verdict when one stopped it.
template <bool IsRequest>
rejection rejection_for(const framer<IsRequest>& f, const boost::beast::error_code& ec) {
    return f.problem() ? *f.problem() : rejection_for(ec);
}

// An absolute-form target ("http://host/path?q") without its scheme and authority ("/path?q";
// "" or "?q" when it has no path); other targets unchanged. check_request has made sure the
// authority is the Host.
std::string_view origin_form(std::string_view target);

struct forwarding {
    std::string visitor_ip;
    std::string proto;  // "http" or "https"
    std::string host_header;  // "preserve", "rewrite" or a literal value
    std::string target;  // HOST:PORT the client forwards to (used by "rewrite")
    bool upgrade = false;  // the request asks for a protocol upgrade (WebSocket)
    std::size_t strip = 0;  // leading characters of the path to drop (a route's strip_prefix)
    // The request came from a trusted proxy: its X-Forwarded-Host is kept (`proto` is already
    // what its X-Forwarded-Proto said).
    bool from_trusted_proxy = false;
    // A route's policies' edits to the visitor's fields (removals, then additions); may be null.
    const header_edits* edits = nullptr;
    // A target a policy rewrote, sent as it is (`strip` not applied); empty: the visitor's.
    std::string_view target_override{};
};

// The head as sent toward the tunnel: hop-by-hop fields dropped (Connection and what it names,
// Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade unless upgrading), Host per `host_header`,
// Via and X-Forwarded-* set.
std::string forward_request_head(const message_head& head, const forwarding& how);

// The reason phrase of a status the relay answers with itself.
std::string_view reason_phrase(unsigned status);

// 308 to `location`, Connection: close.
std::string redirect_response(std::string_view location);

// A complete small response from the relay itself (404, 502, ...), always Connection: close.
std::string relay_response(unsigned status, std::string_view reason, std::string_view text,
                           std::string_view content_type = "text/plain; charset=utf-8");

}  // namespace porthole::http
