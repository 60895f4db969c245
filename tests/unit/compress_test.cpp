// The compress policy: Accept-Encoding negotiation, which responses qualify, the streaming
// encoders (decoded here with zlib, libbrotli and libzstd and compared byte for byte), and the
// forwarding core re-framing an encoded body from each kind of upstream framing.
#include "config/owner_policies.hpp"
#include "http/accept_encoding.hpp"
#include "http/content_encoder.hpp"
#include "http/forward_exchange.hpp"
#include "policy/compress.hpp"
#include "site_policy_text.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <deque>
#include <random>

namespace porthole::policy {
namespace {

using http::content_coding;

// -- negotiation ---------------------------------------------------------------------------------

std::string chosen(std::vector<std::string_view> fields,
                   std::vector<content_coding> offered = {content_coding::zstd, content_coding::br,
                                                          content_coding::gzip}) {
    const auto c = http::negotiate(fields, offered);
    return c ? std::string(http::coding_name(*c)) : "identity";
}

TEST(AcceptEncoding, NegotiationTable) {
    // Absent or empty: as it is.
    EXPECT_EQ(chosen({}), "identity");
    EXPECT_EQ(chosen({""}), "identity");
    EXPECT_EQ(chosen({"identity"}), "identity");
    // The route's preference among equals; a browser's lists.
    EXPECT_EQ(chosen({"gzip, deflate, br, zstd"}), "zstd");
    EXPECT_EQ(chosen({"gzip, deflate, br"}), "br");
    EXPECT_EQ(chosen({"gzip, deflate"}), "gzip");
    EXPECT_EQ(chosen({"gzip, br"}, {content_coding::gzip, content_coding::br}), "gzip");
    // Weights decide before preference.
    EXPECT_EQ(chosen({"zstd;q=0.5, gzip;q=0.8"}), "gzip");
    EXPECT_EQ(chosen({"zstd;q=0.500, br;q=0.501"}), "br");
    EXPECT_EQ(chosen({"gzip;q=1.0, br;q=0.999"}), "gzip");
    // q=0 refuses; a refused coding is never sent.
    EXPECT_EQ(chosen({"gzip;q=0"}), "identity");
    EXPECT_EQ(chosen({"zstd;q=0, br;q=0.000, gzip"}), "gzip");
    EXPECT_EQ(chosen({"*;q=0"}), "identity");
    // "*" stands for every coding not named.
    EXPECT_EQ(chosen({"*"}), "zstd");
    EXPECT_EQ(chosen({"zstd;q=0, *"}), "br");
    EXPECT_EQ(chosen({"br;q=0.2, *;q=0.5"}), "zstd");
    // identity weighed above every acceptable coding wins; a tie compresses.
    EXPECT_EQ(chosen({"gzip;q=0.5, identity"}), "identity");
    EXPECT_EQ(chosen({"gzip;q=0.5, *"}), "zstd");  // "*" is zstd's and br's weight too
    EXPECT_EQ(chosen({"gzip;q=0.5, *"}, {content_coding::gzip}), "identity");
    EXPECT_EQ(chosen({"gzip, identity;q=1"}), "gzip");
    EXPECT_EQ(chosen({"gzip;q=0.5"}), "gzip");  // identity not named: a coding was asked for
    // Case, x-gzip, spaces, several fields, empty elements.
    EXPECT_EQ(chosen({"GZIP"}), "gzip");
    EXPECT_EQ(chosen({"x-gzip"}), "gzip");
    EXPECT_EQ(chosen({" ,\tbr ; Q = 0.7 ,, "}), "br");
    EXPECT_EQ(chosen({"gzip;q=0.1", "br"}), "br");
    // A malformed weight drops its element only.
    EXPECT_EQ(chosen({"br;q=2, gzip"}), "gzip");
    EXPECT_EQ(chosen({"br;q=0.1234, gzip;q=0.1"}), "gzip");
    EXPECT_EQ(chosen({"br;q=, gzip;q=x"}), "identity");
    EXPECT_EQ(chosen({"br;level=5"}), "br");  // other parameters are not weights
    // Codings the route does not offer.
    EXPECT_EQ(chosen({"deflate, compress"}), "identity");
    EXPECT_EQ(chosen({"zstd"}, {content_coding::gzip}), "identity");
}

// -- qualification -------------------------------------------------------------------------------

http::message_head get(std::vector<http::field> fields, std::string method = "GET") {
    return http::message_head{std::move(method), std::string(1, '/'), 0, 11, std::move(fields)};
}

std::string head_of(unsigned status, std::string fields) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\n" + fields + "\r\n";
}

struct judged {
    std::string coding;  // "" when not compressed
    bool vary;
};

judged judge(const compression& p, const http::message_head& request, unsigned status,
             std::string fields, std::optional<std::uint64_t> length = std::nullopt,
             bool upgrade = false) {
    const auto plan = plan_response(p, read_request(p, request, upgrade), status,
                                    head_of(status, fields), length);
    return {plan.coding ? std::string(http::coding_name(*plan.coding)) : "", plan.vary};
}

TEST(CompressPlan, WhatQualifies) {
    const compression p{config::compress_settings{}};
    const auto gzip = get({{"Accept-Encoding", "gzip"}});
    const std::string text = "Content-Type: text/html; charset=utf-8\r\n";
    auto j = judge(p, gzip, 200, text, 5000);
    EXPECT_EQ(j.coding, "gzip");
    EXPECT_TRUE(j.vary);
    EXPECT_EQ(judge(p, gzip, 200, text).coding, "gzip");  // chunked or close-delimited: unknown
    EXPECT_EQ(judge(p, gzip, 404, text, 2000).coding, "gzip");
    EXPECT_EQ(judge(p, gzip, 200, "Content-Type: application/json\r\n", 2000).coding, "gzip");
    EXPECT_EQ(judge(p, gzip, 200, "content-type: IMAGE/SVG+XML\r\n", 2000).coding, "gzip");
    EXPECT_EQ(judge(p, gzip, 200, "Content-Type: text/event-stream\r\n").coding, "gzip");
    EXPECT_EQ(judge(p, gzip, 200, text, 1024).coding, "gzip");  // min_length itself qualifies

    // Never compressed, with Vary still saying the choice depends on Accept-Encoding:
    for (unsigned status : {204u, 205u, 206u, 304u}) {
        j = judge(p, gzip, status, text, 5000);
        EXPECT_EQ(j.coding, "") << status;
        EXPECT_TRUE(j.vary) << status;
    }
    EXPECT_EQ(judge(p, gzip, 200, text, 1023).coding, "");
    EXPECT_EQ(judge(p, gzip, 200, text + "Content-Range: bytes 0-9/100\r\n", 5000).coding, "");
    EXPECT_EQ(judge(p, gzip, 200, text + "Cache-Control: public, No-Transform\r\n").coding, "");
    EXPECT_EQ(judge(p, gzip, 200, text + "Transfer-Encoding: gzip, chunked\r\n").coding, "");
    EXPECT_EQ(judge(p, get({{"Accept-Encoding", "gzip"}}, "HEAD"), 200, text, 5000).coding, "");
    EXPECT_EQ(judge(p, get({{"Accept-Encoding", "gzip"}, {"Range", "bytes=0-"}}), 200, text).coding,
              "");
    EXPECT_EQ(judge(p, get({{"Accept-Encoding", "gzip"}, {"Cache-Control", "no-transform"}}), 200,
                    text)
                  .coding,
              "");
    EXPECT_EQ(judge(p, gzip, 200, text, 5000, true).coding, "");  // an upgrade declined
    j = judge(p, get({}), 200, text, 5000);
    EXPECT_EQ(j.coding, "");
    EXPECT_TRUE(j.vary);
    EXPECT_EQ(judge(p, get({{"Accept-Encoding", "identity"}}), 200, text, 5000).coding, "");
    EXPECT_EQ(judge(p, get({{"Accept-Encoding", "gzip;q=0"}}), 200, text, 5000).coding, "");

    // Not of a listed type, or encoded already: untouched, no Vary either.
    for (const char* f : {"Content-Type: image/png\r\n", "Content-Type: application/zip\r\n",
                          "", "Content-Type: text/html\r\nContent-Encoding: br\r\n",
                          "Content-Type: text/html\r\nContent-Encoding: identity\r\n"}) {
        j = judge(p, gzip, 200, f, 5000);
        EXPECT_EQ(j.coding, "") << f;
        EXPECT_FALSE(j.vary) << f;
    }
    // A Vary that names Accept-Encoding (or *) already is not added to.
    EXPECT_FALSE(judge(p, gzip, 200, text + "Vary: Origin, accept-encoding\r\n").vary);
    EXPECT_FALSE(judge(p, gzip, 200, text + "Vary: *\r\n").vary);
    EXPECT_TRUE(judge(p, gzip, 200, text + "Vary: Origin\r\n").vary);
}

TEST(CompressPlan, SettingsChangeTheChoice) {
    config::compress_settings s;
    s.encodings = {"gzip"};
    s.min_length = 0;
    s.types = {"application/*", "text/plain"};
    const compression p(s);
    const auto all = get({{"Accept-Encoding", "zstd, br, gzip"}});
    EXPECT_EQ(judge(p, all, 200, "Content-Type: application/octet-stream\r\n", 1).coding, "gzip");
    EXPECT_EQ(judge(p, all, 200, "Content-Type: text/plain\r\n", 0).coding, "gzip");
    EXPECT_EQ(judge(p, all, 200, "Content-Type: text/html\r\n", 100).coding, "");
    const auto br = get({{"Accept-Encoding", "br"}});
    EXPECT_EQ(judge(p, br, 200, "Content-Type: text/plain\r\n").coding, "");
}

http::header_edits edits_for(std::optional<content_coding> c, bool vary, std::string fields) {
    http::header_edits e;
    edit_for(compress_plan{c, vary}, head_of(200, fields), e);
    return e;
}

std::string edited(std::optional<content_coding> c, bool vary, std::string fields) {
    return http::edit_head(head_of(200, fields), edits_for(c, vary, fields), "");
}

TEST(CompressPlan, HeadEdits) {
    EXPECT_EQ(edited(content_coding::gzip, true,
                     "ETag: \"abc\"\r\nAccept-Ranges: bytes\r\nContent-Type: text/plain\r\n"),
              head_of(200, "Content-Type: text/plain\r\nVary: Accept-Encoding\r\n"
                           "Content-Encoding: gzip\r\nETag: W/\"abc\"\r\n"));
    EXPECT_EQ(edited(content_coding::zstd, false, "ETag: W/\"abc\"\r\n"),
              head_of(200, "ETag: W/\"abc\"\r\nContent-Encoding: zstd\r\n"));
    EXPECT_EQ(edited(content_coding::br, false, "ETag: unquoted\r\n"),
              head_of(200, "Content-Encoding: br\r\n"));  // a strong validator that is malformed
    EXPECT_EQ(edited(std::nullopt, true, "ETag: \"abc\"\r\n"),
              head_of(200, "ETag: \"abc\"\r\nVary: Accept-Encoding\r\n"));
    EXPECT_TRUE(edits_for(std::nullopt, false, "ETag: \"abc\"\r\n").empty());
}

// -- encoders ------------------------------------------------------------------------------------

std::string gunzip(std::string_view in) {
    z_stream z{};
    EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    char buf[16384];
    int rc = Z_OK;
    do {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        rc = inflate(&z, Z_SYNC_FLUSH);
        out.append(buf, sizeof buf - z.avail_out);
    } while (rc == Z_OK && (z.avail_in != 0 || z.avail_out == 0));
    inflateEnd(&z);
    return out;
}

std::string unbrotli(std::string_view in) {
    auto* d = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
    const auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
    std::size_t avail_in = in.size();
    std::string out;
    BrotliDecoderResult rc;
    do {
        std::uint8_t buf[16384];
        std::uint8_t* next_out = buf;
        std::size_t avail_out = sizeof buf;
        rc = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, nullptr);
        out.append(reinterpret_cast<char*>(buf), sizeof buf - avail_out);
        // Out of input with a full buffer, it may still hold output: it says so only when asked.
    } while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT || BrotliDecoderHasMoreOutput(d));
    EXPECT_NE(rc, BROTLI_DECODER_RESULT_ERROR);
    BrotliDecoderDestroyInstance(d);
    return out;
}

std::string unzstd(std::string_view in) {
    auto* d = ZSTD_createDCtx();
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    std::string out;
    std::size_t rc = 0;
    do {
        char buf[16384];
        ZSTD_outBuffer output{buf, sizeof buf, 0};
        rc = ZSTD_decompressStream(d, &output, &input);
        EXPECT_FALSE(ZSTD_isError(rc)) << ZSTD_getErrorName(rc);
        if (ZSTD_isError(rc)) break;
        out.append(buf, output.pos);
        if (output.pos < sizeof buf && input.pos == input.size) break;
    } while (true);
    ZSTD_freeDCtx(d);
    return out;
}

std::string decode(content_coding c, std::string_view in) {
    switch (c) {
        case content_coding::gzip: return gunzip(in);
        case content_coding::br: return unbrotli(in);
        case content_coding::zstd: return unzstd(in);
    }
    return {};
}

// Text that compresses like a real page and still varies (a fixed seed).
std::string sample_text(std::size_t n) {
    std::mt19937 rng(7);
    const char* words[] = {"porthole ", "relay ", "tunnel ", "<div class=\"row\">", "</div>\n",
                           "visitor ", "compress ", "{\"id\": ", "}, ", "0123456789 "};
    std::string s;
    while (s.size() < n) s += words[rng() % 10];
    s.resize(n);
    return s;
}

class Encoders : public ::testing::TestWithParam<content_coding> {};

TEST_P(Encoders, StreamedInPiecesEachFlushDecodesToWhatWasGiven) {
    const content_coding c = GetParam();
    const std::string text = sample_text(300 * 1000);
    auto e = http::make_encoder(c, c == content_coding::br ? 1 : 1);
    ASSERT_TRUE(e);
    http::byte_buffer out;
    std::size_t given = 0;
    for (std::size_t piece : {1u, 7u, 100u, 4096u, 16384u, 65536u, 1u, 30000u}) {
        piece = std::min(piece, text.size() - given);
        ASSERT_TRUE(e->encode(std::string_view(text).substr(given, piece), http::encode_step::more,
                              out));
        given += piece;
        ASSERT_TRUE(e->encode({}, http::encode_step::flush, out));
        // Everything given so far comes out of what was sent so far: nothing waits in the encoder.
        EXPECT_EQ(decode(c, out.view()), text.substr(0, given)) << given;
    }
    ASSERT_TRUE(e->encode(std::string_view(text).substr(given), http::encode_step::finish, out));
    EXPECT_EQ(decode(c, out.view()), text);
    EXPECT_LT(out.size(), text.size() / 3);  // it did compress
}

TEST_P(Encoders, EveryLevelRoundTripsAndACachedEncoderStartsAFreshStream) {
    const content_coding c = GetParam();
    const std::string text = sample_text(50 * 1000);
    const int low = c == content_coding::br ? 0 : 1;
    const int high = c == content_coding::br ? 11 : 9;
    for (int level = low; level <= high; ++level) {
        for (int round = 0; round < 2; ++round) {
            http::content_encoder* first = nullptr;
            {
                auto e = http::make_encoder(c, level);
                ASSERT_TRUE(e);
                first = e.get();
                http::byte_buffer out;
                ASSERT_TRUE(e->encode(text, http::encode_step::more, out));
                // Abandoned half-way in round 0: the cache must still hand out a clean one.
                if (round == 1) {
                    ASSERT_TRUE(e->encode({}, http::encode_step::finish, out));
                    EXPECT_EQ(decode(c, out.view()), text) << level;
                }
            }
            auto again = http::make_encoder(c, level);
            EXPECT_EQ(again.get(), first) << "a finished encoder is reused";
            http::byte_buffer out;
            ASSERT_TRUE(again->encode("hello", http::encode_step::finish, out));
            EXPECT_EQ(decode(c, out.view()), "hello") << level;
        }
    }
}

TEST_P(Encoders, AnEmptyBodyIsAValidStream) {
    const content_coding c = GetParam();
    auto e = http::make_encoder(c, 1);
    http::byte_buffer out;
    ASSERT_TRUE(e->encode({}, http::encode_step::finish, out));
    EXPECT_GT(out.size(), 0u);
    EXPECT_EQ(decode(c, out.view()), "");
}

INSTANTIATE_TEST_SUITE_P(Codings, Encoders,
                         ::testing::Values(content_coding::gzip, content_coding::br,
                                           content_coding::zstd),
                         [](const auto& info) {
                             return std::string(http::coding_name(info.param));
                         });

TEST(EncoderCache, KeepsTheMostRecentlyFinishedFew) {
    std::vector<http::encoder_handle> held;
    std::vector<http::content_encoder*> seen;
    for (std::size_t i = 0; i < http::encoder_cache_size + 3; ++i) {
        held.push_back(http::make_encoder(content_coding::gzip, 3));
        seen.push_back(held.back().get());
    }
    held.clear();
    std::size_t reused = 0;
    for (std::size_t i = 0; i < http::encoder_cache_size + 3; ++i) {
        held.push_back(http::make_encoder(content_coding::gzip, 3));
        reused += std::find(seen.begin(), seen.end(), held.back().get()) != seen.end();
    }
    // Freed memory may be handed out again at the same address, so "at most" is what holds.
    EXPECT_GE(reused, http::encoder_cache_size);
}

// -- the forwarding core re-framing an encoded body --------------------------------------------

// An upstream that hands out scripted reads, then end of stream; `bulk`: it says the next read
// is there already, as a fast upstream's socket would.
class scripted_upstream final : public http::forward_endpoint {
public:
    scripted_upstream(std::deque<std::string> reads, bool bulk)
        : reads_(std::move(reads)), bulk_(bulk) {}
    bool readable_now() override { return bulk_ && !reads_.empty(); }
    boost::asio::awaitable<bool> read_more(net::io_buffer& in) override {
        if (reads_.empty()) co_return false;
        const std::string next = std::move(reads_.front());
        reads_.pop_front();
        auto b = in.prepare(next.size());
        std::memcpy(b.data(), next.data(), next.size());
        in.commit(next.size());
        ++reads;
        co_return true;
    }
    boost::asio::awaitable<bool> write(std::string_view, std::string_view) override {
        co_return true;
    }
    void shutdown_send() override {}
    void close() override {}
    void cancel() override {}
    int reads = 0;

private:
    std::deque<std::string> reads_;
    bool bulk_;
};

// A visitor that records each write, and how many reads of the upstream preceded it.
class recording_visitor final : public http::forward_endpoint {
public:
    explicit recording_visitor(const scripted_upstream& up) : up_(up) {}
    boost::asio::awaitable<bool> read_more(net::io_buffer&) override { co_return false; }
    boost::asio::awaitable<bool> write(std::string_view a, std::string_view b) override {
        writes.push_back(std::string(a) + std::string(b));
        reads_before.push_back(up_.reads);
        co_return true;
    }
    void shutdown_send() override {}
    void close() override {}
    void cancel() override { cancelled = true; }
    std::vector<std::string> writes;
    std::vector<int> reads_before;
    bool cancelled = false;

private:
    const scripted_upstream& up_;
};

struct forwarded {
    http::response_result result;
    std::string bytes;
    std::vector<int> reads_before;
    bool cancelled = false;
};

forwarded forward(std::deque<std::string> reads, http::message_head request, bool http10 = false,
                  bool bulk = false) {
    static const compression p{config::compress_settings{}};
    response_compressor compressor(p, request, false);
    scripted_upstream up(std::move(reads), bulk);
    recording_visitor visitor(up);
    net::io_buffer in;
    http::response_options options;
    options.transform = &compressor;
    options.visitor_http10 = http10;
    options.head_request = request.method == "HEAD";
    forwarded out;
    boost::asio::io_context io;
    boost::asio::co_spawn(
        io,
        [](scripted_upstream& u, net::io_buffer& i, recording_visitor& v,
           const http::response_options& o, forwarded& f) -> boost::asio::awaitable<void> {
            f.result = co_await http::forward_response(u, i, v, o);
        }(up, in, visitor, options, out),
        boost::asio::detached);
    io.run();
    for (const auto& w : visitor.writes) out.bytes += w;
    out.reads_before = visitor.reads_before;
    out.cancelled = visitor.cancelled;
    return out;
}

struct parsed_response {
    std::string head;
    std::string body;  // chunked framing removed
    bool chunked = false;
};

parsed_response split(const std::string& bytes) {
    parsed_response r;
    const auto end = bytes.find("\r\n\r\n");
    r.head = bytes.substr(0, end + 4);
    std::string rest = bytes.substr(end + 4);
    r.chunked = r.head.find("Transfer-Encoding: chunked\r\n") != std::string::npos;
    if (!r.chunked) {
        r.body = rest;
        return r;
    }
    std::size_t pos = 0;
    for (;;) {
        const auto eol = rest.find("\r\n", pos);
        const std::size_t size = std::stoul(rest.substr(pos, eol - pos), nullptr, 16);
        pos = eol + 2;
        if (size == 0) {
            EXPECT_EQ(rest.substr(pos), "\r\n") << "the last chunk ends the message";
            return r;
        }
        r.body += rest.substr(pos, size);
        EXPECT_EQ(rest.substr(pos + size, 2), "\r\n");
        pos += size + 2;
    }
}

std::string chunked_body(const std::string& body, std::size_t chunk) {
    std::string out;
    for (std::size_t at = 0; at < body.size(); at += chunk) {
        const std::string part = body.substr(at, chunk);
        char line[32];
        std::snprintf(line, sizeof line, "%zx;ext=1\r\n", part.size());
        out += line + part + "\r\n";
    }
    return out + "0\r\nX-Trailer: t\r\n\r\n";
}

// Every split of `wire` into reads of `read_size` bytes.
std::deque<std::string> reads_of(const std::string& wire, std::size_t read_size) {
    std::deque<std::string> reads;
    for (std::size_t at = 0; at < wire.size(); at += read_size)
        reads.push_back(wire.substr(at, read_size));
    return reads;
}

TEST(CompressForward, EachUpstreamFramingIsDecodedEncodedAndReframed) {
    const std::string body = sample_text(200 * 1000);
    const std::string text = "Content-Type: text/plain\r\nETag: \"v1\"\r\n";
    const std::vector<std::pair<std::string, std::string>> upstreams = {
        {"content-length", "HTTP/1.1 200 OK\r\n" + text + "Content-Length: " +
                               std::to_string(body.size()) + "\r\n\r\n" + body},
        {"chunked", "HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: chunked\r\nTrailer: "
                    "X-Trailer\r\n\r\n" + chunked_body(body, 7000)},
        {"close-delimited", "HTTP/1.1 200 OK\r\n" + text + "\r\n" + body},
    };
    for (const auto& [coding, accept] :
         std::vector<std::pair<content_coding, std::string>>{{content_coding::gzip, "gzip"},
                                                             {content_coding::br, "br"},
                                                             {content_coding::zstd, "zstd"}}) {
        for (const auto& [name, wire] : upstreams) {
            for (const auto& [read_size, bulk] :
                 std::vector<std::pair<std::size_t, bool>>{{std::size_t{1} << 14, false},
                                                          {std::size_t{1000}, false},
                                                          {std::size_t{1} << 14, true},
                                                          {std::size_t{999}, true}}) {
                SCOPED_TRACE(accept + " " + name + " reads of " + std::to_string(read_size) +
                             (bulk ? " coming fast" : ""));
                const auto f = forward(reads_of(wire, read_size),
                                       get({{"Accept-Encoding", accept}}), false, bulk);
                ASSERT_EQ(f.result.state, http::response_state::complete);
                const auto r = split(f.bytes);
                EXPECT_TRUE(r.chunked);
                EXPECT_NE(r.head.find("Content-Encoding: " + accept + "\r\n"), std::string::npos);
                EXPECT_NE(r.head.find("Vary: Accept-Encoding\r\n"), std::string::npos);
                EXPECT_NE(r.head.find("ETag: W/\"v1\"\r\n"), std::string::npos);
                EXPECT_EQ(r.head.find("Content-Length"), std::string::npos);
                EXPECT_EQ(r.head.find("Trailer"), std::string::npos);
                EXPECT_EQ(decode(coding, r.body), body);
                EXPECT_TRUE(f.result.keep_alive) << "a re-framed body lets the visitor go on";
                EXPECT_EQ(f.result.reusable, name != "close-delimited");
            }
        }
    }
}

TEST(CompressForward, AFastUpstreamIsNotFlushedAfterEveryRead) {
    const std::string body = sample_text(400 * 1000);
    const std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body;
    const auto slow = forward(reads_of(wire, 4096), get({{"Accept-Encoding", "gzip"}}));
    const auto fast =
        forward(reads_of(wire, 4096), get({{"Accept-Encoding", "gzip"}}), false, true);
    EXPECT_GT(slow.reads_before.size(), 90u);  // one write per read of 4 KiB
    EXPECT_LT(fast.reads_before.size(), 20u);  // batches of 16 KiB encoded
    EXPECT_LT(split(fast.bytes).body.size(), split(slow.bytes).body.size());
    EXPECT_EQ(gunzip(split(fast.bytes).body), body);
}

TEST(CompressForward, AnHttp10VisitorGetsABodyDelimitedByTheClose) {
    const std::string body = sample_text(5000);
    const auto f = forward({"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: "
                            "keep-alive\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body},
                           get({{"Accept-Encoding", "gzip"}}), true);
    ASSERT_EQ(f.result.state, http::response_state::complete);
    const auto r = split(f.bytes);
    EXPECT_FALSE(r.chunked);
    EXPECT_NE(r.head.find("Connection: close\r\n"), std::string::npos);
    EXPECT_EQ(r.head.find("keep-alive"), std::string::npos);
    EXPECT_EQ(gunzip(r.body), body);
    EXPECT_FALSE(f.result.keep_alive);
    EXPECT_TRUE(f.result.reusable);
}

TEST(CompressForward, AnHttp10ResponseIsEndedByTheCloseAndAnUpstreamCloseEndsTheVisitorToo) {
    const std::string body = sample_text(5000);
    // An HTTP/1.0 response may not be chunked, whatever the visitor speaks.
    auto f = forward({"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + body},
                     get({{"Accept-Encoding", "br"}}));
    ASSERT_EQ(f.result.state, http::response_state::complete);
    auto r = split(f.bytes);
    EXPECT_FALSE(r.chunked);
    EXPECT_NE(r.head.find("Connection: close\r\n"), std::string::npos);
    EXPECT_EQ(unbrotli(r.body), body);
    EXPECT_FALSE(f.result.keep_alive);
    // An HTTP/1.1 upstream that says close: chunked, and the visitor's connection ends after it.
    f = forward({"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n" +
                 body},
                get({{"Accept-Encoding", "br"}}));
    ASSERT_EQ(f.result.state, http::response_state::complete);
    r = split(f.bytes);
    EXPECT_TRUE(r.chunked);
    EXPECT_EQ(unbrotli(r.body), body);
    EXPECT_FALSE(f.result.keep_alive);
    EXPECT_FALSE(f.result.reusable);
}

TEST(CompressForward, AStreamingUpstreamIsSentOnBeforeTheNextReadWaits) {
    // An SSE-like body: every event arrives in a read of its own, and must reach the visitor
    // before the relay reads again.
    std::deque<std::string> reads{"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"};
    std::string events;
    for (int i = 0; i < 5; ++i) {
        const std::string event = "data: event " + std::to_string(i) + "\n\n";
        events += event;
        char line[16];
        std::snprintf(line, sizeof line, "%zx\r\n", event.size());
        reads.push_back(line + event + "\r\n");
    }
    reads.push_back("0\r\n\r\n");
    const auto f = forward(reads, get({{"Accept-Encoding", "gzip"}}));
    ASSERT_EQ(f.result.state, http::response_state::complete);
    // The head goes before the first event is read, then one write per event read.
    ASSERT_GE(f.reads_before.size(), 6u);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(f.reads_before[static_cast<std::size_t>(i)], i + 1);
    EXPECT_EQ(gunzip(split(f.bytes).body), events);
}

TEST(CompressForward, ResponsesThatDoNotQualifyGoExactlyAsFramed) {
    const std::string small = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                              "\r\nhello";
    auto f = forward({small}, get({{"Accept-Encoding", "gzip"}}));
    EXPECT_EQ(f.bytes, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                       "Vary: Accept-Encoding\r\n\r\nhello");
    const std::string png = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: "
                            "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    f = forward({png}, get({{"Accept-Encoding", "gzip"}}));
    EXPECT_EQ(f.bytes, png);
    const std::string head_response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                      "Content-Length: 5000\r\n\r\n";
    f = forward({head_response}, get({{"Accept-Encoding", "gzip"}}, "HEAD"));
    EXPECT_EQ(f.result.state, http::response_state::complete);
    EXPECT_EQ(f.bytes, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n"
                       "Vary: Accept-Encoding\r\n\r\n");
}

TEST(CompressForward, ABadChunkFromTheUpstreamCutsTheVisitor) {
    const auto f = forward({"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: "
                            "chunked\r\n\r\n5\r\nhello\r\nzz\r\n"},
                           get({{"Accept-Encoding", "gzip"}}));
    EXPECT_NE(f.result.state, http::response_state::complete);
    EXPECT_TRUE(f.cancelled);
    EXPECT_FALSE(f.result.problem.empty());
}

TEST(CompressForward, AnUpstreamThatStopsEarlyIsNotAComplete) {
    const auto f = forward({"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000"
                            "\r\n\r\nonly this"},
                           get({{"Accept-Encoding", "zstd"}}));
    EXPECT_EQ(f.result.state, http::response_state::partial);
    EXPECT_TRUE(f.cancelled);
}

// -- config --------------------------------------------------------------------------------------

std::string config_error(const std::string& table) {
    return test::site_policy_error("type = \"compress\"\n" + table);
}

TEST(CompressConfig, DefaultsAndErrors) {
    EXPECT_EQ(config_error(""), "");
    EXPECT_EQ(config_error("encodings = [\"gzip\"]\ngzip_level = 9\nbr_level = 0\nzstd_level = 9\n"
                           "min_length = \"2KiB\"\ntypes = [\"Text/*\", \"application/json\"]\n"),
              "");
    EXPECT_EQ(config_error("min_length = 0\n"), "");
    const std::pair<std::string, std::string> bad[] = {
        {"encodings = [\"deflate\"]\n", "p.toml:6: 'encodings': \"deflate\" is not an encoding"},
        {"encodings = []\n", "p.toml:6: 'encodings' must be a non-empty array"},
        {"encodings = [\"gzip\", \"gzip\"]\n", "listed twice"},
        {"gzip_level = 0\n", "p.toml:6: 'gzip_level' must be a whole number from 1 to 9"},
        {"br_level = 12\n", "'br_level' must be a whole number from 0 to 11"},
        {"zstd_level = 10\n", "'zstd_level' must be a whole number from 1 to 9"},
        {"min_length = -1\n", "p.toml:6: 'min_length' must be a number of bytes"},
        {"min_length = \"lots\"\n", "'min_length' must be a number of bytes"},
        {"types = [\"text\"]\n", "p.toml:6: 'types': \"text\" is not a media type"},
        {"types = [\"text/html; charset=utf-8\"]\n", "without parameters"},
        {"types = [\"*/*\"]\n", "is not a media type"},
        {"level = 5\n", "p.toml:6: unknown key 'level' in a compress policy (known: encodings, "
                        "gzip_level, br_level, zstd_level"},
    };
    for (const auto& [table, want] : bad)
        EXPECT_NE(config_error(table).find(want), std::string::npos)
            << table << " -> " << config_error(table);
}

TEST(CompressConfig, TheClientFlagMakesACompressTable) {
    config::owner_policy_flags f;
    f.compress = true;
    auto text = config::policies_from_flags(f, "");
    ASSERT_TRUE(text) << text.error();
    EXPECT_NE(text->find("type = 'compress'"), std::string::npos) << *text;
    auto read = config::load_owner_policies(*text, "owner", {});
    ASSERT_TRUE(read);
    ASSERT_EQ(read->policies.size(), 1u);
    EXPECT_EQ(config::type_of(read->policies.front()), "compress");
    EXPECT_FALSE(read->cache);
    EXPECT_FALSE(config::load_owner_policies(*text, "owner", {"compress"}));
}

}  // namespace
}  // namespace porthole::policy
