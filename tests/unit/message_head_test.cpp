#include "http/message_head.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>

#include <string>

namespace porthole::http {
namespace {

namespace bhttp = boost::beast::http;
using boost::beast::error_code;

constexpr std::string_view simple_get =
    "GET /path?q=1 HTTP/1.1\r\n"
    "Host: abc.localhost:8080\r\n"
    "User-Agent: test/1.0\r\n"
    "Accept: */*\r\n"
    "\r\n";

template <bool IsRequest>
std::size_t put(framer<IsRequest>& f, std::string_view data, error_code& ec) {
    return f.put(boost::asio::const_buffer(data.data(), data.size()), ec);
}

// Feeds one byte at a time, keeping unconsumed bytes, until the head is parsed or an error.
template <bool IsRequest>
std::size_t put_bytewise(framer<IsRequest>& f, std::string_view data, error_code& ec) {
    std::string pending;
    std::size_t consumed = 0;
    for (std::size_t i = 0; i < data.size() && !f.is_header_done(); ++i) {
        pending.push_back(data[i]);
        const std::size_t n = put(f, pending, ec);
        pending.erase(0, n);
        consumed += n;
        if (ec && ec != bhttp::error::need_more) break;
    }
    return consumed;
}

// With eager(true), feeds `data` until the message is complete; returns the bytes consumed.
template <bool IsRequest>
std::size_t put_body(framer<IsRequest>& f, std::string_view data, error_code& ec) {
    f.eager(true);
    std::size_t consumed = 0;
    while (!f.is_done() && consumed < data.size()) {
        const std::size_t n = put(f, data.substr(consumed), ec);
        consumed += n;
        if (ec) break;
        if (n == 0) break;
    }
    return consumed;
}

// Feeds `text` whole; the head must be complete.
void parse_head(framer<true>& f, std::string_view text) {
    error_code ec;
    const std::size_t n = put(f, text, ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_TRUE(f.is_header_done());
    ASSERT_LE(n, text.size());
}

std::optional<rejection> check(std::string_view text) {
    framer<true> f;
    parse_head(f, text);
    if (testing::Test::HasFatalFailure()) return rejection{0, "unparsed"};
    return check_request(f);
}

error_code parse_error(std::string_view text, std::size_t header_limit = 64 * 1024) {
    framer<true> f(header_limit);
    error_code ec;
    put(f, text, ec);
    return ec;
}

std::size_t count(const message_head& head, std::string_view name) {
    std::size_t n = 0;
    for (const auto& f : head.fields)
        if (boost::beast::iequals(f.name, name)) ++n;
    return n;
}

void expect_same_head(const message_head& a, const message_head& b) {
    EXPECT_EQ(a.method, b.method);
    EXPECT_EQ(a.target, b.target);
    EXPECT_EQ(a.version, b.version);
    ASSERT_EQ(a.fields.size(), b.fields.size());
    for (std::size_t i = 0; i < a.fields.size(); ++i) {
        EXPECT_EQ(a.fields[i].name, b.fields[i].name);
        EXPECT_EQ(a.fields[i].value, b.fields[i].value);
    }
}

TEST(Framer, ParsesWholeRequest) {
    framer<true> f;
    error_code ec;
    EXPECT_EQ(put(f, simple_get, ec), simple_get.size());
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_header_done());
    EXPECT_TRUE(f.is_done());

    const message_head& head = f.head();
    EXPECT_EQ(head.method, "GET");
    EXPECT_EQ(head.target, "/path?q=1");
    EXPECT_EQ(head.version, 11u);
    ASSERT_EQ(head.fields.size(), 3u);
    EXPECT_EQ(head.fields[0].name, "Host");
    EXPECT_EQ(head.fields[0].value, "abc.localhost:8080");
    EXPECT_EQ(head.fields[1].name, "User-Agent");
    EXPECT_EQ(head.fields[1].value, "test/1.0");
    EXPECT_EQ(head.fields[2].name, "Accept");
    EXPECT_EQ(head.fields[2].value, "*/*");
}

TEST(Framer, ParsesRequestByteByByte) {
    framer<true> whole;
    ASSERT_NO_FATAL_FAILURE(parse_head(whole, simple_get));

    framer<true> f;
    error_code ec;
    EXPECT_EQ(put_bytewise(f, simple_get, ec), simple_get.size());
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_TRUE(f.is_header_done());
    expect_same_head(f.head(), whole.head());
}

TEST(Framer, PartialHeadNeedsMore) {
    framer<true> f;
    error_code ec;
    put(f, "GET / HTTP/1.1\r\nHost: a", ec);
    EXPECT_EQ(ec, bhttp::error::need_more);
    EXPECT_FALSE(f.is_header_done());
}

TEST(Framer, StopsAfterHeadWhenNotEager) {
    const std::string head = "POST /submit HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 5\r\n\r\n";
    const std::string message = head + "hello";
    framer<true> f;
    error_code ec;
    EXPECT_EQ(put(f, message, ec), head.size());
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_header_done());
    EXPECT_FALSE(f.is_done());
    EXPECT_EQ(f.head().method, "POST");
    EXPECT_EQ(f.head().target, "/submit");

    EXPECT_EQ(put_body(f, std::string_view(message).substr(head.size()), ec), 5u);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_done());
}

TEST(Framer, ByteByByteStopsAtEndOfHead) {
    const std::string head = "PUT /x HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 3\r\n\r\n";
    framer<true> f;
    error_code ec;
    EXPECT_EQ(put_bytewise(f, head + "abc", ec), head.size());
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_header_done());
    EXPECT_FALSE(f.is_done());
}

TEST(Framer, ParsesHttp10) {
    framer<true> f;
    ASSERT_NO_FATAL_FAILURE(parse_head(f, "HEAD /old HTTP/1.0\r\n\r\n"));
    EXPECT_EQ(f.head().method, "HEAD");
    EXPECT_EQ(f.head().target, "/old");
    EXPECT_EQ(f.head().version, 10u);
    EXPECT_TRUE(f.head().fields.empty());
}

TEST(Framer, ParsesResponseHead) {
    framer<false> f;
    error_code ec;
    const std::string_view response = "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
    EXPECT_EQ(put(f, response, ec), response.size());
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(f.head().status, 204u);
    EXPECT_EQ(f.head().version, 11u);
    ASSERT_NE(f.head().find("server"), nullptr);
}

TEST(Framer, ChunkedBodyEndsAtLastChunk) {
    const std::string head =
        "POST /upload HTTP/1.1\r\nHost: a.localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = "5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
    const std::string next = "GET /next HTTP/1.1\r\nHost: a.localhost\r\n\r\n";
    const std::string stream = head + body + next;

    framer<true> f;
    error_code ec;
    ASSERT_EQ(put(f, stream, ec), head.size());
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(check_request(f), std::nullopt);

    EXPECT_EQ(put_body(f, std::string_view(stream).substr(head.size()), ec), body.size());
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_done());

    framer<true> second;
    ASSERT_NO_FATAL_FAILURE(parse_head(second, next));
    EXPECT_EQ(second.head().target, "/next");
}

TEST(Framer, ChunkedBodyWithTrailersEndsAfterTrailers) {
    const std::string head =
        "POST /upload HTTP/1.1\r\nHost: a.localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = "3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n";
    const std::string next = "GET /next HTTP/1.1\r\n";

    framer<true> f;
    error_code ec;
    ASSERT_EQ(put(f, head, ec), head.size());
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(put_body(f, body + next, ec), body.size());
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_done());
}

TEST(Framer, ChunkedBodyFedByteByByteEndsAtLastChunk) {
    const std::string head =
        "POST /upload HTTP/1.1\r\nHost: a.localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = "4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n";
    const std::string next = "GET / HTTP/1.1\r\nHost: b.localhost\r\n\r\n";
    const std::string rest = body + next;

    framer<true> f;
    error_code ec;
    ASSERT_EQ(put(f, head, ec), head.size());
    f.eager(true);
    std::string pending;
    std::size_t consumed = 0;
    for (std::size_t i = 0; i < rest.size() && !f.is_done(); ++i) {
        pending.push_back(rest[i]);
        const std::size_t n = put(f, pending, ec);
        pending.erase(0, n);
        consumed += n;
        if (ec == bhttp::error::need_more) ec = {};
        ASSERT_FALSE(ec) << ec.message() << " at byte " << i;
    }
    EXPECT_TRUE(f.is_done());
    EXPECT_EQ(consumed, body.size());
    EXPECT_TRUE(pending.empty());
}

TEST(Framer, ContentLengthBodyEndsBeforePipelinedRequest) {
    const std::string head = "POST / HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 4\r\n\r\n";
    const std::string next = "GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n";
    framer<true> f;
    error_code ec;
    ASSERT_EQ(put(f, head + "abcd" + next, ec), head.size());
    EXPECT_EQ(put_body(f, "abcd" + next, ec), 4u);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_done());
}

TEST(MessageHeadFind, IsCaseInsensitive) {
    framer<true> f;
    ASSERT_NO_FATAL_FAILURE(parse_head(f, simple_get));
    const message_head& head = f.head();
    for (std::string_view name : {"host", "HOST", "Host", "hOsT"}) {
        const std::string* value = head.find(name);
        ASSERT_NE(value, nullptr) << name;
        EXPECT_EQ(*value, "abc.localhost:8080");
    }
    ASSERT_NE(head.find("user-agent"), nullptr);
    EXPECT_EQ(*head.find("user-agent"), "test/1.0");
}

TEST(MessageHeadFind, ReturnsFirstMatchOrNull) {
    message_head head;
    head.fields = {{"X-A", "1"}, {"x-a", "2"}, {"X-B", "3"}};
    ASSERT_NE(head.find("x-a"), nullptr);
    EXPECT_EQ(*head.find("x-a"), "1");
    EXPECT_EQ(head.find("x-c"), nullptr);
    EXPECT_EQ(head.find("x-"), nullptr);
    EXPECT_EQ(head.find("x-a2"), nullptr);
    EXPECT_EQ(head.find(""), nullptr);
}

TEST(CheckRequest, AcceptsNormalGet) {
    EXPECT_EQ(check(simple_get), std::nullopt);
}

TEST(CheckRequest, AcceptsHttp10WithoutHost) {
    EXPECT_EQ(check("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), std::nullopt);
}

TEST(CheckRequest, AcceptsChunkedAndContentLengthBodies) {
    EXPECT_EQ(check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
              std::nullopt);
    EXPECT_EQ(check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
              std::nullopt);
    EXPECT_EQ(check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), std::nullopt);
    EXPECT_EQ(check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789012345678\r\n\r\n"),
              std::nullopt);
}

// What the relay answers a request head with, checks in the relay's order: the framer's own
// field checks and the parser, then the raw bytes, then the parsed head. nullopt: forwarded.
std::optional<rejection> verdict(std::string_view text) {
    framer<true> f;
    error_code ec;
    const std::size_t used = put(f, text, ec);
    if (!f.is_header_done()) return rejection_for(f, ec);
    if (auto r = check_raw_head(text.substr(0, used))) return r;
    return check_request(f);
}

void expect_rejected(std::string_view text, unsigned status, std::string_view reason_part) {
    const auto r = verdict(text);
    ASSERT_TRUE(r) << text;
    EXPECT_EQ(r->status, status) << text << " -> " << r->reason;
    EXPECT_NE(r->reason.find(reason_part), std::string::npos) << r->reason;
}

TEST(Verdict, ConnectionMustNotNameFramingOrRoutingFields) {
    for (std::string_view text : {
             "POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: keep-alive, Content-Length\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nConnection: TRANSFER-ENCODING\r\nTransfer-Encoding: chunked\r\n\r\n",
             "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: host\r\n\r\n",
         })
        expect_rejected(text, 400, "Connection must not name");
    EXPECT_EQ(verdict("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade, TE\r\n\r\n"),
              std::nullopt);
}

TEST(Verdict, TransferEncodingIsChunkedOnceAndNothingElse) {
    expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
                    "more than once");
    expect_rejected(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400, "Transfer-Encoding");
    for (std::string_view text : {
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
         })
        expect_rejected(text, 501, "only Transfer-Encoding: chunked");
}

TEST(Verdict, ContentLengthIsOnePlainNumber) {
    for (std::string_view text : {
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789012\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
         }) {
        const auto r = verdict(text);
        ASSERT_TRUE(r) << text;
        EXPECT_EQ(r->status, 400u) << text;
        EXPECT_NE(r->reason.find("Content-Length"), std::string::npos) << r->reason;
    }
}

TEST(Verdict, ChunkSizesPastTheLimitAreRefused) {
    const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::string_view size : {"ffffffffffffffff", "1000000000001"}) {
        framer<true> f;
        parse_head(f, head);
        error_code ec;
        put_body(f, std::string(size) + "\r\nabc\r\n0\r\n\r\n", ec);
        ASSERT_TRUE(ec) << size;
        EXPECT_FALSE(f.is_done());
        EXPECT_EQ(rejection_for(f, ec).reason, "chunk size too large");
    }
}

TEST(Verdict, AbsoluteFormMustNameTheHost) {
    EXPECT_EQ(verdict("GET http://app.localhost:8080/x?y HTTP/1.1\r\nHost: app.localhost:8080\r\n\r\n"),
              std::nullopt);
    EXPECT_EQ(verdict("GET HTTP://APP.localhost/x HTTP/1.1\r\nHost: app.LOCALHOST:80\r\n\r\n"),
              std::nullopt);
    EXPECT_EQ(verdict("GET https://app.localhost:443/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n"),
              std::nullopt);
    for (std::string_view text : {
             "GET http://internal.local/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
             "GET http://app.localhost:81/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
             "GET http://user@app.localhost/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
             "GET http://app.localhost.evil/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
             "GET http://internal.local/ HTTP/1.0\r\n\r\n",
         })
        expect_rejected(text, 400, "absolute-form");
    expect_rejected("GET ftp://app.localhost/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n", 400,
                    "must be a path");
    expect_rejected("GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "must be a path");
    expect_rejected("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment");
    expect_rejected("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "only for OPTIONS");
    EXPECT_EQ(verdict("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), std::nullopt);
}

TEST(Verdict, OneContentLengthFieldOnly) {
    expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
                    400, "more than one Content-Length");
    expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello",
                    400, "Content-Length");
}

TEST(Verdict, ChunkSizesWithMoreThanSixteenDigitsAreRefused) {
    const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::string_view body : {"0000000000000000000000005\r\nhello\r\n0\r\n\r\n",
                                  "5\r\nhello\r\n00000000000000000\r\n\r\n"}) {
        framer<true> f;
        parse_head(f, head);
        error_code ec;
        put_body(f, body, ec);
        EXPECT_TRUE(ec) << body;
        EXPECT_EQ(rejection_for(f, ec).reason, "chunk size too large") << body;
    }
    framer<true> f;
    parse_head(f, head);
    error_code ec;
    put_body(f, "0000000000000005\r\nhello\r\n0\r\n\r\n", ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_done());
}

// The relay consumes what the framer used after each read; the raw head it checks must still be
// the whole head, or an obsolete fold in an early read would slip past check_raw_head.
TEST(Framer, ConsumesNothingUntilTheWholeHeadHasArrived) {
    const std::string text = "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\nX-B: 1\r\n\r\n";
    for (std::size_t split = 1; split < text.size(); ++split) {
        framer<true> f;
        error_code ec;
        EXPECT_EQ(put(f, std::string_view(text).substr(0, split), ec), 0u) << split;
        EXPECT_EQ(ec, bhttp::error::need_more) << split;
        const std::size_t used = put(f, text, ec);
        ASSERT_TRUE(f.is_header_done()) << split << ": " << ec.message();
        EXPECT_EQ(used, text.size());
        const auto r = check_raw_head(std::string_view(text).substr(0, used));
        ASSERT_TRUE(r) << split;
        EXPECT_NE(r->reason.find("folding"), std::string::npos) << r->reason;
    }
}

TEST(Framer, AHeadOfBareLineFeedsReachesTheParser) {
    framer<true> f;
    error_code ec;
    put(f, "GET / HTTP/1.1\nHost: a\n\n", ec);
    EXPECT_TRUE(ec);
    EXPECT_NE(ec, bhttp::error::need_more);
}

TEST(OriginForm, DropsSchemeAndAuthority) {
    EXPECT_EQ(origin_form("/a/b?c"), "/a/b?c");
    EXPECT_EQ(origin_form("*"), "*");
    EXPECT_EQ(origin_form("http://h:1/a/b?c"), "/a/b?c");
    EXPECT_EQ(origin_form("HTTPS://h/a"), "/a");
    EXPECT_EQ(origin_form("http://h"), "");
    EXPECT_EQ(origin_form("http://h?q=1"), "?q=1");
}

TEST(ResponseFramer, RefusesWhatWouldChangeTheVisitorsFraming) {
    for (std::string_view text : {
             "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\nabc",
             "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
         }) {
        framer<false> f(64 * 1024, false);
        error_code ec;
        put(f, text, ec);
        EXPECT_TRUE(ec) << text;
        EXPECT_FALSE(f.is_header_done()) << text;
        EXPECT_TRUE(f.problem()) << text;
    }
    framer<false> f(64 * 1024, false);
    error_code ec;
    put(f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(f.is_header_done());
}

TEST(CheckRequest, RejectsMissingHostOnHttp11) {
    auto r = check("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400u);
    EXPECT_NE(r->reason.find("Host"), std::string::npos) << r->reason;
}

TEST(CheckRequest, RejectsTwoHostHeaders) {
    for (std::string_view text : {"GET / HTTP/1.1\r\nHost: a.localhost\r\nHost: b.localhost\r\n\r\n",
                                  "GET / HTTP/1.1\r\nHost: a.localhost\r\nhost: a.localhost\r\n\r\n",
                                  "GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n"}) {
        auto r = check(text);
        ASSERT_TRUE(r) << text;
        EXPECT_EQ(r->status, 400u);
        EXPECT_NE(r->reason.find("Host"), std::string::npos) << r->reason;
    }
}

TEST(Verdict, RejectsTransferEncodingNotEndingInChunked) {
    for (std::string_view text :
         {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
        auto r = verdict(text);
        ASSERT_TRUE(r) << text;
        EXPECT_GE(r->status, 400u);
        EXPECT_NE(r->reason.find("Transfer-Encoding"), std::string::npos) << r->reason;
    }
}

TEST(CheckRequest, RejectsTransferEncodingOnHttp10) {
    auto r = check("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400u);
    EXPECT_NE(r->reason.find("1.0"), std::string::npos) << r->reason;
}

TEST(CheckRequest, RejectsConnect) {
    auto r = check("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 501u);
    EXPECT_NE(r->reason.find("CONNECT"), std::string::npos) << r->reason;
}

TEST(RejectionFor, ContentLengthWithTransferEncoding) {
    for (std::string_view text :
         {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"}) {
        const error_code ec = parse_error(text);
        ASSERT_TRUE(ec) << text;
        ASSERT_NE(ec, bhttp::error::need_more);
        EXPECT_EQ(rejection_for(ec).status, 400u) << ec.message();
    }
}

TEST(RejectionFor, TwoDifferentContentLengths) {
    const error_code ec =
        parse_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    EXPECT_EQ(ec, bhttp::error::multiple_content_length);
    const rejection r = rejection_for(ec);
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.reason.find("Content-Length"), std::string::npos) << r.reason;
}

TEST(RejectionFor, HeaderSectionOverLimit) {
    std::string text = "GET / HTTP/1.1\r\nHost: a.localhost\r\n";
    while (text.size() < 2048) text += "X-Filler: " + std::string(50, 'f') + "\r\n";
    text += "\r\n";
    const error_code ec = parse_error(text, 1024);
    EXPECT_EQ(ec, bhttp::error::header_limit);
    const rejection r = rejection_for(ec);
    EXPECT_EQ(r.status, 431u);
}

TEST(RejectionFor, HeaderSectionOverLimitFedByteByByte) {
    std::string text = "GET / HTTP/1.1\r\nHost: a.localhost\r\n";
    while (text.size() < 2048) text += "X-Filler: " + std::string(50, 'f') + "\r\n";
    text += "\r\n";
    framer<true> f(1024);
    error_code ec;
    put_bytewise(f, text, ec);
    EXPECT_EQ(ec, bhttp::error::header_limit);
    EXPECT_EQ(rejection_for(ec).status, 431u);
}

TEST(RejectionFor, OtherParserErrorsAreBadRequests) {
    const error_code ec = parse_error("GET / HTTP/1.1\r\nBad Header\r\n\r\n");
    ASSERT_TRUE(ec);
    ASSERT_NE(ec, bhttp::error::need_more);
    const rejection r = rejection_for(ec);
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.reason.find("malformed"), std::string::npos) << r.reason;

    EXPECT_EQ(rejection_for(bhttp::error::bad_version).status, 400u);
    EXPECT_EQ(rejection_for(bhttp::error::bad_transfer_encoding).status, 400u);
    EXPECT_EQ(rejection_for(bhttp::error::bad_content_length).status, 400u);
}

class ForwardRequestHead : public testing::Test {
protected:
    // Parses the forwarded head back so fields can be checked whatever their order.
    message_head reparse(const std::string& out) {
        framer<true> f;
        error_code ec;
        const std::size_t n = put(f, out, ec);
        EXPECT_FALSE(ec) << ec.message() << "\n" << out;
        EXPECT_EQ(n, out.size()) << out;
        return f.head();
    }

    message_head visitor_head(std::string_view text) {
        framer<true> f;
        parse_head(f, text);
        return f.head();
    }

    forwarding how{"127.0.0.1", "http", "preserve", "127.0.0.1:3000"};
};

TEST_F(ForwardRequestHead, PreservesRequestLineAndOtherHeaders) {
    const message_head in = visitor_head(
        "POST /api/v1?x=%20y HTTP/1.1\r\nHost: abc.localhost:8080\r\nUser-Agent: curl/8\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nCookie: a=b; c=d\r\n\r\n");
    const std::string out = forward_request_head(in, how);
    EXPECT_TRUE(out.starts_with("POST /api/v1?x=%20y HTTP/1.1\r\n")) << out;
    EXPECT_TRUE(out.ends_with("\r\n\r\n")) << out;
    EXPECT_EQ(out.find("\r\n\r\n"), out.size() - 4) << out;

    const message_head fwd = reparse(out);
    EXPECT_EQ(fwd.method, "POST");
    EXPECT_EQ(fwd.target, "/api/v1?x=%20y");
    EXPECT_EQ(fwd.version, 11u);
    ASSERT_NE(fwd.find("User-Agent"), nullptr);
    EXPECT_EQ(*fwd.find("User-Agent"), "curl/8");
    ASSERT_NE(fwd.find("Content-Type"), nullptr);
    EXPECT_EQ(*fwd.find("Content-Type"), "application/json");
    ASSERT_NE(fwd.find("Content-Length"), nullptr);
    EXPECT_EQ(*fwd.find("Content-Length"), "2");
    ASSERT_NE(fwd.find("Cookie"), nullptr);
    EXPECT_EQ(*fwd.find("Cookie"), "a=b; c=d");
}

TEST_F(ForwardRequestHead, AbsoluteFormLeavesAsOriginForm) {
    for (auto [target, forwarded] : {std::pair{"http://abc.localhost:8080/p?q=1", "/p?q=1"},
                                     std::pair{"http://abc.localhost:8080", "/"},
                                     std::pair{"http://abc.localhost:8080?q", "/?q"}}) {
        const message_head in = visitor_head(std::string("GET ") + target +
                                             " HTTP/1.1\r\nHost: abc.localhost:8080\r\n\r\n");
        const message_head fwd = reparse(forward_request_head(in, how));
        EXPECT_EQ(fwd.target, forwarded) << target;
    }
}

TEST_F(ForwardRequestHead, KeepsRepeatedHeadersInOrder) {
    const message_head in = visitor_head(
        "GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Multi: one\r\nAccept: */*\r\nX-Multi: two\r\n\r\n");
    const std::string out = forward_request_head(in, how);
    const auto first = out.find("X-Multi: one\r\n");
    const auto second = out.find("X-Multi: two\r\n");
    ASSERT_NE(first, std::string::npos) << out;
    ASSERT_NE(second, std::string::npos) << out;
    EXPECT_LT(first, second);
    EXPECT_EQ(count(reparse(out), "x-multi"), 2u);
}

TEST_F(ForwardRequestHead, PreservesHttp10) {
    const message_head in = visitor_head("GET /old HTTP/1.0\r\n\r\n");
    const std::string out = forward_request_head(in, how);
    EXPECT_TRUE(out.starts_with("GET /old HTTP/1.0\r\n")) << out;
    const message_head fwd = reparse(out);
    EXPECT_EQ(fwd.version, 10u);
    EXPECT_EQ(fwd.find("Host"), nullptr);
    EXPECT_EQ(fwd.find("X-Forwarded-Host"), nullptr);
    ASSERT_NE(fwd.find("X-Forwarded-For"), nullptr);
    EXPECT_EQ(*fwd.find("X-Forwarded-For"), "127.0.0.1");
}

TEST_F(ForwardRequestHead, HostPreserved) {
    const message_head in = visitor_head("GET / HTTP/1.1\r\nhost: ABC.localhost:8080\r\n\r\n");
    const message_head fwd = reparse(forward_request_head(in, how));
    EXPECT_EQ(count(fwd, "host"), 1u);
    ASSERT_NE(fwd.find("Host"), nullptr);
    EXPECT_EQ(*fwd.find("Host"), "ABC.localhost:8080");
}

TEST_F(ForwardRequestHead, HostRewrittenToTarget) {
    how.host_header = "rewrite";
    how.target = "10.0.0.5:3000";
    const message_head in = visitor_head("GET / HTTP/1.1\r\nHost: abc.localhost:8080\r\n\r\n");
    const message_head fwd = reparse(forward_request_head(in, how));
    EXPECT_EQ(count(fwd, "host"), 1u);
    ASSERT_NE(fwd.find("Host"), nullptr);
    EXPECT_EQ(*fwd.find("Host"), "10.0.0.5:3000");
    ASSERT_NE(fwd.find("X-Forwarded-Host"), nullptr);
    EXPECT_EQ(*fwd.find("X-Forwarded-Host"), "abc.localhost:8080");
}

TEST_F(ForwardRequestHead, HostSetToLiteralValue) {
    how.host_header = "internal.example.test";
    const message_head in = visitor_head("GET / HTTP/1.1\r\nHost: abc.localhost:8080\r\n\r\n");
    const message_head fwd = reparse(forward_request_head(in, how));
    EXPECT_EQ(count(fwd, "host"), 1u);
    ASSERT_NE(fwd.find("Host"), nullptr);
    EXPECT_EQ(*fwd.find("Host"), "internal.example.test");
}

TEST_F(ForwardRequestHead, RewriteAddsHostToHttp10) {
    how.host_header = "rewrite";
    const message_head in = visitor_head("GET / HTTP/1.0\r\n\r\n");
    const message_head fwd = reparse(forward_request_head(in, how));
    ASSERT_NE(fwd.find("Host"), nullptr);
    EXPECT_EQ(*fwd.find("Host"), "127.0.0.1:3000");
}

TEST_F(ForwardRequestHead, SetsForwardedHeaders) {
    how.visitor_ip = "203.0.113.9";
    how.proto = "https";
    const message_head in = visitor_head(simple_get);
    const message_head fwd = reparse(forward_request_head(in, how));
    ASSERT_NE(fwd.find("X-Forwarded-For"), nullptr);
    EXPECT_EQ(*fwd.find("X-Forwarded-For"), "203.0.113.9");
    ASSERT_NE(fwd.find("X-Forwarded-Proto"), nullptr);
    EXPECT_EQ(*fwd.find("X-Forwarded-Proto"), "https");
    ASSERT_NE(fwd.find("X-Forwarded-Host"), nullptr);
    EXPECT_EQ(*fwd.find("X-Forwarded-Host"), "abc.localhost:8080");
}

TEST_F(ForwardRequestHead, AppendsToExistingForwardedFor) {
    const message_head in =
        visitor_head("GET / HTTP/1.1\r\nHost: a.localhost\r\nx-forwarded-for: 1.2.3.4\r\n\r\n");
    const message_head fwd = reparse(forward_request_head(in, how));
    EXPECT_EQ(count(fwd, "x-forwarded-for"), 1u);
    ASSERT_NE(fwd.find("X-Forwarded-For"), nullptr);
    EXPECT_EQ(*fwd.find("X-Forwarded-For"), "1.2.3.4, 127.0.0.1");
}

TEST_F(ForwardRequestHead, ReplacesVisitorForwardedProtoAndHost) {
    const message_head in = visitor_head(
        "GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Forwarded-Proto: https\r\n"
        "X-FORWARDED-HOST: evil.example\r\n\r\n");
    const std::string out = forward_request_head(in, how);
    EXPECT_EQ(out.find("evil.example"), std::string::npos) << out;
    const message_head fwd = reparse(out);
    EXPECT_EQ(count(fwd, "x-forwarded-proto"), 1u);
    EXPECT_EQ(count(fwd, "x-forwarded-host"), 1u);
    EXPECT_EQ(*fwd.find("X-Forwarded-Proto"), "http");
    EXPECT_EQ(*fwd.find("X-Forwarded-Host"), "a.localhost");
}

TEST_F(ForwardRequestHead, DropsVisitorForwardedHostWithoutHost) {
    const message_head in =
        visitor_head("GET / HTTP/1.0\r\nX-Forwarded-Host: evil.example\r\n\r\n");
    const std::string out = forward_request_head(in, how);
    EXPECT_EQ(out.find("evil.example"), std::string::npos) << out;
    EXPECT_EQ(count(reparse(out), "x-forwarded-host"), 0u);
}

TEST(RelayResponse, IsACompleteClosingResponse) {
    const std::string text = "no tunnel named 'abc'\n";
    const std::string out = relay_response(404, "Not Found", text);
    EXPECT_TRUE(out.starts_with("HTTP/1.1 404 Not Found\r\n")) << out;

    const auto end = out.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos);
    EXPECT_EQ(out.substr(end + 4), text);

    framer<false> f;
    error_code ec;
    const std::size_t n = put(f, out, ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(n, end + 4);
    EXPECT_EQ(f.head().status, 404u);
    EXPECT_EQ(f.head().version, 11u);
    ASSERT_NE(f.head().find("Content-Length"), nullptr);
    EXPECT_EQ(*f.head().find("Content-Length"), std::to_string(text.size()));
    ASSERT_NE(f.head().find("Connection"), nullptr);
    EXPECT_EQ(*f.head().find("Connection"), "close");
    EXPECT_EQ(put_body(f, std::string_view(out).substr(n), ec), text.size());
    EXPECT_TRUE(f.is_done());
}

TEST(RelayResponse, EmptyBody) {
    const std::string out = relay_response(502, "Bad Gateway", "");
    EXPECT_TRUE(out.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << out;
    EXPECT_NE(out.find("\r\nContent-Length: 0\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos) << out;
    EXPECT_TRUE(out.ends_with("\r\n\r\n")) << out;
}

}  // namespace
}  // namespace porthole::http

namespace porthole::http {
namespace {

TEST(ForwardedForChain, JoinsEveryForwardedForLine) {
    message_head head;
    head.method = "GET";
    head.target = "/";
    head.fields = {{"Host", "a.localhost"},
                   {"X-Forwarded-For", "1.1.1.1"},
                   {"X-Forwarded-For", "2.2.2.2, 3.3.3.3"}};
    const std::string out = forward_request_head(head, {"127.0.0.1", "http", "preserve", "x:1"});
    EXPECT_NE(out.find("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1\r\n"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("X-Forwarded-For", out.find("X-Forwarded-For") + 1), std::string::npos);
}

}  // namespace
}  // namespace porthole::http

namespace porthole::http {
namespace {

TEST(CheckRawHead, AcceptsCrlfHead) {
    EXPECT_FALSE(check_raw_head("GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n"));
}

TEST(CheckRawHead, RejectsObsFoldBareCrAndBareLf) {
    for (const char* head : {"GET / HTTP/1.1\r\nHost: a.localhost\r\nX: 1\r\n 2\r\n\r\n",
                             "GET / HTTP/1.1\r\nHost: a.localhost\r\nX: 1\r\n\t2\r\n\r\n",
                             "GET / HTTP/1.1\r\nHost: a.localhost\rX: 1\r\n\r\n",
                             "GET / HTTP/1.1\r\nHost: a.localhost\nX: 1\r\n\r\n"}) {
        auto r = check_raw_head(head);
        ASSERT_TRUE(r) << head;
        EXPECT_EQ(r->status, 400u);
    }
}

message_head head_with(std::vector<field> fields) {
    message_head head;
    head.method = "GET";
    head.target = "/";
    head.fields = std::move(fields);
    return head;
}

TEST(HopByHop, DropsConnectionFieldsAndWhatTheyName) {
    const auto out = forward_request_head(
        head_with({{"Host", "a.localhost"},
                   {"Connection", "keep-alive, X-Secret"},
                   {"Keep-Alive", "timeout=5"},
                   {"Proxy-Connection", "keep-alive"},
                   {"TE", "trailers"},
                   {"X-Secret", "hop"},
                   {"X-Kept", "end-to-end"}}),
        {"127.0.0.1", "http", "preserve", "x:1"});
    for (const char* gone : {"Connection:", "Keep-Alive:", "Proxy-Connection:", "TE:", "X-Secret:"})
        EXPECT_EQ(out.find(gone), std::string::npos) << gone << "\n" << out;
    EXPECT_NE(out.find("X-Kept: end-to-end\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("Via: 1.1 porthole\r\n"), std::string::npos) << out;
}

TEST(HopByHop, KeepsUpgradeWhenUpgrading) {
    const auto head = head_with({{"Host", "a.localhost"},
                                 {"Connection", "Upgrade"},
                                 {"Upgrade", "websocket"},
                                 {"Via", "1.0 corp-proxy"}});
    const auto out = forward_request_head(head, {"127.0.0.1", "http", "preserve", "x:1", true});
    EXPECT_NE(out.find("Connection: Upgrade\r\nUpgrade: websocket\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("Via: 1.0 corp-proxy, 1.1 porthole\r\n"), std::string::npos) << out;
    const auto plain = forward_request_head(head, {"127.0.0.1", "http", "preserve", "x:1", false});
    EXPECT_EQ(plain.find("Upgrade"), std::string::npos) << plain;
}

TEST(CheckRequest, RejectsInvalidHostValue) {
    framer<true> request;
    boost::beast::error_code ec;
    const std::string text = "GET / HTTP/1.1\r\nHost: a b.localhost\r\n\r\n";
    request.put(boost::asio::buffer(text), ec);
    ASSERT_TRUE(request.is_header_done()) << ec.message();
    auto r = check_request(request);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400u);
}

}  // namespace
}  // namespace porthole::http

namespace porthole::http {
namespace {

TEST(FieldsOf, ReadsTheFieldsOfARawHead) {
    const auto fields = fields_of("GET / HTTP/1.1\r\nHost: a.example\r\nX-Two:  spaced \t\r\n"
                                  "Empty:\r\n\r\nbody: not a field\r\nnor: this\r\n");
    ASSERT_EQ(fields.size(), 3u);
    EXPECT_EQ(fields[0].name, "Host");
    EXPECT_EQ(fields[0].value, "a.example");
    EXPECT_EQ(fields[1].value, "spaced");
    EXPECT_EQ(fields[2].value, "");
    EXPECT_TRUE(fields_of("HTTP/1.1 204 No Content\r\n\r\n").empty());
}

}  // namespace
}  // namespace porthole::http
