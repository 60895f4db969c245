#include "protocol/frame.hpp"
#include "protocol/auth.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace porthole::protocol {
namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::span<const std::uint8_t, header_size> header_of(std::string_view wire) {
    return bytes_of(wire).first<header_size>();
}

std::span<const std::uint8_t> body_of(std::string_view wire) {
    return bytes_of(wire).subspan(header_size);
}

template <std::size_t N>
std::array<std::uint8_t, N> pattern(std::uint8_t start) {
    std::array<std::uint8_t, N> a{};
    for (std::size_t i = 0; i < N; ++i) a[i] = static_cast<std::uint8_t>(start + i);
    return a;
}

// Encodes `in`, checks the length prefix, decodes the body and extracts the same alternative.
template <class M>
void round_trip(const M& in, M& out) {
    const std::string wire = encode(in);
    ASSERT_GT(wire.size(), header_size);
    auto length = decode_length(header_of(wire));
    ASSERT_TRUE(length) << length.error();
    ASSERT_EQ(*length, wire.size() - header_size);
    auto decoded = decode_body(body_of(wire));
    ASSERT_TRUE(decoded) << decoded.error();
    const M* m = std::get_if<M>(&*decoded);
    ASSERT_NE(m, nullptr) << "decoded as alternative " << decoded->index();
    out = *m;
}

std::vector<message> samples() {
    return {
        hello{3, 7, pattern<16>(1), "porthole/0.1 (test)"},
        challenge{2, pattern<32>(9)},
        auth{pattern<32>(50)},
        welcome{pattern<16>(100), 12345, 17, pattern<32>(30)},
        error{error_code::name_taken, "name is taken"},
        open_tunnel{0xA1B2C3D4, tunnel_kind::tcp, "myapp", 20001, "127.0.0.1:3000", "rewrite", "", ""},
        tunnel_opened{77, 0x01020304, "http://myapp.localhost:8080"},
        tunnel_refused{78, error_code::port_unavailable, "port 20001 is in use"},
        pool_want{513},
        ping{0x0102030405060708ULL},
        pong{0xF1F2F3F4F5F6F7F8ULL},
        goaway{"shutting down"},
        data_hello{pattern<16>(200)},
        stream_start{99, "203.0.113.7:51234"},
        stream_ready{},
        stream_failed{"connection refused"},
        data_challenge{pattern<32>(150)},
        data_auth{pattern<32>(170)},
        policy_answered{7, 429, "rate_limit", "203.0.113.7", "GET / HTTP/1.1\r\n\r\n",
                        "HTTP/1.1 429 Too Many Requests\r\n\r\n", "slow down\n"},
        link_open{tunnel_kind::http, "blog", 0, "203.0.113.7"},
        link_ready{"rewrite", "127.0.0.1:3000"},
    };
}

TEST(FrameRoundTrip, LinkOpenAndItsUnknownKind) {
    const link_open in{tunnel_kind::tcp, "", 20001, "198.51.100.4"};
    link_open out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.kind, tunnel_kind::tcp);
    EXPECT_EQ(out.port, 20001);
    EXPECT_EQ(out.visitor, "198.51.100.4");
    std::string bad = encode(message{in});
    bad[5] = 9;  // the kind: no such tunnel kind
    const auto body = std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(bad.data()) + header_size, bad.size() - header_size);
    EXPECT_FALSE(decode_body(body));
}

TEST(FrameRoundTrip, Hello) {
    const hello in{3, 7, pattern<16>(1), "porthole/0.1 (test)"};
    hello out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.min_version, 3);
    EXPECT_EQ(out.max_version, 7);
    EXPECT_EQ(out.client_id, in.client_id);
    EXPECT_EQ(out.agent, "porthole/0.1 (test)");
}

TEST(FrameRoundTrip, Challenge) {
    const challenge in{2, pattern<32>(9)};
    challenge out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.version, 2);
    EXPECT_EQ(out.nonce, in.nonce);
}

TEST(FrameRoundTrip, Auth) {
    const auth in{pattern<32>(50)};
    auth out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.proof, in.proof);
}

TEST(FrameRoundTrip, Welcome) {
    const welcome in{pattern<16>(100), 12345, 17};
    welcome out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.session_id, in.session_id);
    EXPECT_EQ(out.heartbeat_ms, 12345u);
    EXPECT_EQ(out.pool_size, 17);
}

TEST(FrameRoundTrip, Error) {
    const error in{error_code::shutting_down, "bye"};
    error out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.code, error_code::shutting_down);
    EXPECT_EQ(out.message, "bye");
}

TEST(FrameRoundTrip, OpenTunnelHttp) {
    const open_tunnel in{0xA1B2C3D4, tunnel_kind::http, "myapp", 8081, "127.0.0.1:3000",
                         "example.test", "", ""};
    open_tunnel out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.request_id, 0xA1B2C3D4u);
    EXPECT_EQ(out.kind, tunnel_kind::http);
    EXPECT_EQ(out.name, "myapp");
    EXPECT_EQ(out.port, 8081);
    EXPECT_EQ(out.target, "127.0.0.1:3000");
    EXPECT_EQ(out.host_header, "example.test");
    EXPECT_EQ(out.group, "");
}

TEST(FrameRoundTrip, OpenTunnelWithGroupCarriesItLast) {
    const std::string digest = group_digest("shared key");
    const open_tunnel in{9, tunnel_kind::http, "shop", 0, "127.0.0.1:3000", "preserve", digest, ""};
    open_tunnel out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.name, "shop");
    EXPECT_EQ(out.group, digest);
    // Without a group the frame is what a relay that knows no groups reads; with one, the
    // group is the last string.
    const std::string without = encode(open_tunnel{9, tunnel_kind::http, "shop", 0,
                                                   "127.0.0.1:3000", "preserve", "", ""});
    const std::string with = encode(in);
    EXPECT_EQ(with.substr(header_size), without.substr(header_size) +
                                            std::string("\0\x40", 2) + digest);
}

TEST(FrameRoundTrip, OpenTunnelPoliciesFollowTheGroupFieldEvenWhenItIsEmpty) {
    const std::string policies = "[[policies]]\ntype = \"ip_allow\"\ncidrs = [\"10.0.0.0/8\"]\n";
    const open_tunnel in{9, tunnel_kind::http, "shop", 0, "127.0.0.1:3000", "preserve", "", policies};
    open_tunnel out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.group, "");
    EXPECT_EQ(out.policies, policies);
    const std::string without = encode(open_tunnel{9, tunnel_kind::http, "shop", 0,
                                                   "127.0.0.1:3000", "preserve", "", ""});
    EXPECT_EQ(encode(in).substr(header_size),
              without.substr(header_size) + std::string("\0\0", 2) +
                  std::string(1, static_cast<char>(policies.size() >> 8)) +
                  std::string(1, static_cast<char>(policies.size() & 0xff)) + policies);
    const open_tunnel both{9, tunnel_kind::http, "shop", 0, "t", "preserve",
                           group_digest("k"), policies};
    ASSERT_NO_FATAL_FAILURE(round_trip(both, out));
    EXPECT_EQ(out.group, group_digest("k"));
    EXPECT_EQ(out.policies, policies);
}

TEST(FrameDecodeBody, RejectsAnEmptyPoliciesField) {
    std::string wire = encode(open_tunnel{1, tunnel_kind::http, "a", 0, "t", "preserve", "", ""});
    wire.append(std::string("\0\0\0\0", 4));
    auto decoded = decode_body(body_of(wire));
    ASSERT_FALSE(decoded);
    EXPECT_NE(decoded.error().find("empty policies"), std::string::npos) << decoded.error();
}

TEST(GroupDigest, IsHexAndApartFromTheTokenKey) {
    const std::string d = group_digest("k");
    EXPECT_EQ(d.size(), 64u);
    EXPECT_NE(d, to_hex(key_of_token("k")));
    EXPECT_EQ(d, group_digest("k"));
    EXPECT_NE(d, group_digest("K"));
}

TEST(FrameRoundTrip, OpenTunnelTcp) {
    const open_tunnel in{5, tunnel_kind::tcp, "db", 20001, "10.0.0.2:5432", "rewrite", "", ""};
    open_tunnel out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.request_id, 5u);
    EXPECT_EQ(out.kind, tunnel_kind::tcp);
    EXPECT_EQ(out.name, "db");
    EXPECT_EQ(out.port, 20001);
    EXPECT_EQ(out.target, "10.0.0.2:5432");
    EXPECT_EQ(out.host_header, "rewrite");
}

TEST(FrameRoundTrip, TunnelOpened) {
    const tunnel_opened in{77, 0x01020304, "http://myapp.localhost:8080"};
    tunnel_opened out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.request_id, 77u);
    EXPECT_EQ(out.tunnel_id, 0x01020304u);
    EXPECT_EQ(out.url, "http://myapp.localhost:8080");
}

TEST(FrameRoundTrip, TunnelRefused) {
    const tunnel_refused in{78, error_code::port_unavailable, "port 20001 is in use"};
    tunnel_refused out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.request_id, 78u);
    EXPECT_EQ(out.code, error_code::port_unavailable);
    EXPECT_EQ(out.message, "port 20001 is in use");
}

TEST(FrameRoundTrip, PoolWant) {
    const pool_want in{513};
    pool_want out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.count, 513);
}

TEST(FrameRoundTrip, Ping) {
    const ping in{0x0102030405060708ULL};
    ping out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.opaque, 0x0102030405060708ULL);
}

TEST(FrameRoundTrip, Pong) {
    const pong in{0xF1F2F3F4F5F6F7F8ULL};
    pong out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.opaque, 0xF1F2F3F4F5F6F7F8ULL);
}

TEST(FrameRoundTrip, Goaway) {
    const goaway in{"shutting down"};
    goaway out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.reason, "shutting down");
}

TEST(FrameRoundTrip, PolicyAnswered) {
    const policy_answered in{7, 401, "basic_auth", "203.0.113.7",
                             "GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
                             "HTTP/1.1 401 Unauthorized\r\n\r\n", "who?"};
    policy_answered out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.tunnel_id, 7u);
    EXPECT_EQ(out.status, 401);
    EXPECT_EQ(out.policy, "basic_auth");
    EXPECT_EQ(out.visitor, "203.0.113.7");
    EXPECT_EQ(out.request_head, in.request_head);
    EXPECT_EQ(out.response_head, in.response_head);
    EXPECT_EQ(out.response_body, "who?");
}

TEST(FrameRoundTrip, DataHello) {
    const data_hello in{pattern<16>(200)};
    data_hello out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.session_id, in.session_id);
}

TEST(FrameRoundTrip, DataChallengeAndAuth) {
    const data_challenge in{pattern<32>(150)};
    data_challenge out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.nonce, in.nonce);
    const data_auth proof_in{pattern<32>(170)};
    data_auth proof_out;
    ASSERT_NO_FATAL_FAILURE(round_trip(proof_in, proof_out));
    EXPECT_EQ(proof_out.proof, proof_in.proof);
}

TEST(FrameRoundTrip, WelcomeCarriesTheOpenDataKey) {
    const welcome in{pattern<16>(100), 12345, 17, pattern<32>(30)};
    welcome out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.open_data_key, in.open_data_key);
    EXPECT_EQ(out.pool_size, 17);
}

TEST(FrameRoundTrip, StreamStart) {
    const stream_start in{99, "203.0.113.7:51234"};
    stream_start out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.tunnel_id, 99u);
    EXPECT_EQ(out.visitor, "203.0.113.7:51234");
}

TEST(FrameRoundTrip, StreamReady) {
    const std::string wire = encode(stream_ready{});
    EXPECT_EQ(wire, std::string("\0\0\0\1\x16", 5));
    stream_ready out;
    ASSERT_NO_FATAL_FAILURE(round_trip(stream_ready{}, out));
}

TEST(FrameRoundTrip, StreamFailed) {
    const stream_failed in{"connection refused"};
    stream_failed out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.message, "connection refused");
}

TEST(FrameRoundTrip, EmptyAndBinaryStrings) {
    const std::string binary("a\0b\xff\r\n", 6);
    const open_tunnel in{1, tunnel_kind::http, "", 0, binary, "", "", ""};
    open_tunnel out;
    ASSERT_NO_FATAL_FAILURE(round_trip(in, out));
    EXPECT_EQ(out.name, "");
    EXPECT_EQ(out.target, binary);
    EXPECT_EQ(out.host_header, "");
}

TEST(FrameRoundTrip, SamplesCoverEveryMessageType) {
    const auto all = samples();
    ASSERT_EQ(all.size(), std::variant_size_v<message>);
    for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].index(), i);
    for (const auto& m : all) {
        const std::string wire = encode(m);
        auto decoded = decode_body(body_of(wire));
        ASSERT_TRUE(decoded) << decoded.error();
        EXPECT_EQ(decoded->index(), m.index());
        EXPECT_EQ(encode(*decoded), wire);
    }
}

TEST(FrameEncode, WireLayoutIsBigEndianInFieldOrder) {
    EXPECT_EQ(encode(ping{0x0102030405060708ULL}),
              std::string("\0\0\0\x09\x0a\x01\x02\x03\x04\x05\x06\x07\x08", 13));
    EXPECT_EQ(encode(tunnel_refused{0x01020304, error_code::name_taken, "no"}),
              std::string("\0\0\0\x0b\x08\x01\x02\x03\x04\x00\x04\x00\x02no", 15));
    EXPECT_EQ(encode(open_tunnel{7, tunnel_kind::tcp, "a", 0x5000, "t", "", "", ""}),
              std::string("\0\0\0\x10\x06\0\0\0\x07\x02\0\x01" "a\x50\x00\0\x01t\0\0", 20));
}

TEST(FrameEncode, FrameTypeNumbersMatchTheProtocol) {
    const std::vector<std::uint8_t> expected = {1,  2,  3,  4,  5,  6,  7,  8,  9,
                                                10, 11, 12, 20, 21, 22, 23, 24, 25, 13, 30, 31};
    const auto all = samples();
    ASSERT_EQ(all.size(), expected.size());
    for (std::size_t i = 0; i < all.size(); ++i)
        EXPECT_EQ(static_cast<std::uint8_t>(encode(all[i])[header_size]), expected[i]);
}

TEST(FrameEncode, StringsUpToTheLimitRoundTrip) {
    const std::string reason(max_string, 'r');
    const std::string wire = encode(goaway{reason});
    ASSERT_EQ(wire.size(), header_size + 1 + 2 + max_string);
    auto decoded = decode_body(body_of(wire));
    ASSERT_TRUE(decoded) << decoded.error();
    EXPECT_EQ(std::get<goaway>(*decoded).reason, reason);
}

TEST(FrameEncode, LongerStringsAreTruncated) {
    std::string reason(max_string + 100, 'a');
    reason.replace(max_string, std::string::npos, 100, 'z');
    const std::string wire = encode(goaway{reason});
    ASSERT_EQ(wire.size(), header_size + 1 + 2 + max_string);
    auto decoded = decode_body(body_of(wire));
    ASSERT_TRUE(decoded) << decoded.error();
    EXPECT_EQ(std::get<goaway>(*decoded).reason, std::string(max_string, 'a'));
}

TEST(FrameEncode, TruncatesEachStringFieldIndependently) {
    const open_tunnel in{1, tunnel_kind::http, std::string(65536, 'n'), 2,
                         std::string(65540, 't'), "h", "", ""};
    auto decoded = decode_body(body_of(encode(in)));
    ASSERT_TRUE(decoded) << decoded.error();
    const auto& out = std::get<open_tunnel>(*decoded);
    EXPECT_EQ(out.name, std::string(max_string, 'n'));
    EXPECT_EQ(out.port, 2);
    EXPECT_EQ(out.target, std::string(max_string, 't'));
    EXPECT_EQ(out.host_header, "h");
}

TEST(FrameEncode, EncodedFramesStayWithinMaxFrameBody) {
    const std::string wire = encode(goaway{std::string(70000, 'x')});
    auto length = decode_length(header_of(wire));
    EXPECT_TRUE(length) << length.error();
    EXPECT_LE(wire.size() - header_size, max_frame_body);
}

TEST(FrameDecodeBody, RejectsStringOverTheLimit) {
    std::string body(1, static_cast<char>(frame_type::goaway));
    body += static_cast<char>((max_string + 1) >> 8);
    body += static_cast<char>((max_string + 1) & 0xff);
    body += std::string(max_string + 1, 'x');
    auto decoded = decode_body({reinterpret_cast<const std::uint8_t*>(body.data()), body.size()});
    EXPECT_FALSE(decoded);
}

TEST(FrameDecodeLength, AcceptsOneUpToMaxFrameBody) {
    const std::uint8_t one[] = {0, 0, 0, 1};
    const std::uint8_t max[] = {0, 1, 0, 0};
    const std::uint8_t mid[] = {0, 0, 0x12, 0x34};
    ASSERT_EQ(max_frame_body, 65536u);
    EXPECT_EQ(decode_length(one).value(), 1u);
    EXPECT_EQ(decode_length(max).value(), 65536u);
    EXPECT_EQ(decode_length(mid).value(), 0x1234u);
}

TEST(FrameDecodeLength, RejectsZero) {
    const std::uint8_t zero[] = {0, 0, 0, 0};
    auto length = decode_length(zero);
    ASSERT_FALSE(length);
    EXPECT_NE(length.error().find("empty"), std::string::npos) << length.error();
}

TEST(FrameDecodeLength, RejectsOverMaxFrameBody) {
    const std::uint8_t just_over[] = {0, 1, 0, 1};
    const std::uint8_t huge[] = {0xFF, 0xFF, 0xFF, 0xFF};
    const std::uint8_t high_byte[] = {1, 0, 0, 0};
    EXPECT_FALSE(decode_length(just_over));
    EXPECT_FALSE(decode_length(huge));
    EXPECT_FALSE(decode_length(high_byte));
    EXPECT_NE(decode_length(just_over).error().find("65537"), std::string::npos);
}

TEST(FrameDecodeBody, RejectsEmptyBody) {
    auto decoded = decode_body({});
    ASSERT_FALSE(decoded);
    EXPECT_NE(decoded.error().find("empty"), std::string::npos) << decoded.error();
}

TEST(FrameDecodeBody, RejectsUnknownTypes) {
    for (int type : {0, 14, 19, 26, 100, 255}) {
        const std::uint8_t body[] = {static_cast<std::uint8_t>(type), 0, 0, 0, 0, 0, 0, 0, 0};
        auto decoded = decode_body(body);
        ASSERT_FALSE(decoded) << "type " << type;
        EXPECT_NE(decoded.error().find("unknown frame type"), std::string::npos) << decoded.error();
        EXPECT_NE(decoded.error().find(std::to_string(type)), std::string::npos) << decoded.error();
    }
}

TEST(FrameDecodeBody, RejectsEveryTruncation) {
    for (const auto& m : samples()) {
        const std::string wire = encode(m);
        const auto body = body_of(wire);
        for (std::size_t n = 1; n < body.size(); ++n) {
            auto decoded = decode_body(body.first(n));
            ASSERT_FALSE(decoded) << "type " << int(body[0]) << " cut to " << n << " bytes";
            EXPECT_NE(decoded.error().find("truncated"), std::string::npos) << decoded.error();
        }
    }
}

TEST(FrameDecodeBody, RejectsStringLengthBeyondPayload) {
    const std::uint8_t body[] = {12, 0, 5, 'a', 'b', 'c'};
    auto decoded = decode_body(body);
    ASSERT_FALSE(decoded);
    EXPECT_NE(decoded.error().find("truncated"), std::string::npos) << decoded.error();
}

TEST(FrameDecodeBody, RejectsTrailingBytes) {
    for (const auto& m : samples()) {
        std::string wire = encode(m);
        wire.push_back('\0');
        auto decoded = decode_body(body_of(wire));
        ASSERT_FALSE(decoded) << "type " << int(static_cast<std::uint8_t>(wire[header_size]));
        // OPEN_TUNNEL's last field is optional: a lone byte there is a truncated group.
        const bool open = std::holds_alternative<open_tunnel>(m);
        EXPECT_NE(decoded.error().find(open ? "truncated" : "trailing"), std::string::npos)
            << decoded.error();
    }
}

TEST(FrameDecodeBody, RejectsAnEmptyGroupField) {
    // An absent group and an empty one would decode alike but encode differently.
    std::string wire = encode(open_tunnel{1, tunnel_kind::http, "a", 0, "t", "preserve", "", ""});
    wire.append(std::string("\0\0", 2));
    auto decoded = decode_body(body_of(wire));
    ASSERT_FALSE(decoded);
    EXPECT_NE(decoded.error().find("empty group"), std::string::npos) << decoded.error();
}

TEST(FrameDecodeBody, RejectsUnknownTunnelKind) {
    const std::string wire = encode(open_tunnel{1, tunnel_kind::http, "a", 0, "t", "preserve", "", ""});
    constexpr std::size_t kind_offset = header_size + 1 + 4;
    ASSERT_EQ(static_cast<std::uint8_t>(wire[kind_offset]), 1);
    for (std::uint8_t kind : {0, 4, 255}) {
        std::string bad = wire;
        bad[kind_offset] = static_cast<char>(kind);
        auto decoded = decode_body(body_of(bad));
        ASSERT_FALSE(decoded) << "kind " << int(kind);
        EXPECT_NE(decoded.error().find("tunnel kind"), std::string::npos) << decoded.error();
    }
}

TEST(FrameNameOf, NamesEveryErrorCode) {
    EXPECT_EQ(name_of(error_code::unsupported_version), "unsupported_version");
    EXPECT_EQ(name_of(error_code::unauthorized), "unauthorized");
    EXPECT_EQ(name_of(error_code::bad_name), "bad_name");
    EXPECT_EQ(name_of(error_code::name_taken), "name_taken");
    EXPECT_EQ(name_of(error_code::port_unavailable), "port_unavailable");
    EXPECT_EQ(name_of(error_code::limit), "limit");
    EXPECT_EQ(name_of(error_code::protocol), "protocol");
    EXPECT_EQ(name_of(error_code::shutting_down), "shutting_down");
    EXPECT_EQ(name_of(error_code::bad_policy), "bad_policy");
    EXPECT_EQ(name_of(static_cast<error_code>(999)), "unknown");
}

}  // namespace
}  // namespace porthole::protocol
