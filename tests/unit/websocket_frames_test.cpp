#include "http/websocket_frames.hpp"

#include <boost/beast/zlib/deflate_stream.hpp>
#include <gtest/gtest.h>

#include <string>

namespace porthole::http {
namespace {

// A frame as a client sends it (masked) or a server (not).
std::string frame(std::uint8_t first, std::string_view payload, bool masked) {
    std::string out(1, static_cast<char>(first));
    const std::uint8_t mask_bit = masked ? 0x80 : 0;
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(mask_bit | payload.size()));
    } else if (payload.size() < 65536) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xFF));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xFF));
    }
    const char key[4] = {0x12, 0x34, 0x56, 0x78};
    if (masked) out.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        out.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
    return out;
}

TEST(WebSocketFrames, UnmasksATextFrame) {
    ws_frame_reader r(4096);
    auto frames = r.feed(frame(0x81, "hello", true));
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, 0x1);
    EXPECT_TRUE(frames[0].fin);
    EXPECT_EQ(frames[0].payload, "hello");
    EXPECT_EQ(frames[0].size, 5u);
    EXPECT_FALSE(frames[0].truncated);
}

TEST(WebSocketFrames, ReadsFramesSplitAcrossReadsByteByByte) {
    ws_frame_reader r(4096);
    const std::string wire = frame(0x82, std::string(300, 'x'), true) + frame(0x89, "p", false) +
                             frame(0x88, "\x03\xe8", true);
    std::vector<ws_frame> all;
    for (char c : wire)
        for (auto& f : r.feed(std::string_view(&c, 1))) all.push_back(std::move(f));
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].opcode, 0x2);
    EXPECT_EQ(all[0].payload, std::string(300, 'x'));
    EXPECT_EQ(all[1].opcode, 0x9);
    EXPECT_EQ(all[2].opcode, 0x8);
    EXPECT_EQ(opcode_name(all[2].opcode), "close");
}

TEST(WebSocketFrames, KeepsOnlyTheLimitButCountsTheWholeFrame) {
    ws_frame_reader r(10);
    auto frames = r.feed(frame(0x82, std::string(70000, 'y'), false));
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].size, 70000u);
    EXPECT_EQ(frames[0].payload, std::string(10, 'y'));
    EXPECT_TRUE(frames[0].truncated);
}

TEST(WebSocketFrames, FragmentedMessageIsReportedFrameByFrame) {
    ws_frame_reader r(4096);
    auto frames = r.feed(frame(0x01, "hel", true) + frame(0x80, "lo", true));
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_FALSE(frames[0].fin);
    EXPECT_EQ(frames[1].opcode, 0x0);
    EXPECT_EQ(frames[1].payload, "lo");
}

TEST(WebSocketFrames, StopsOnBytesThatAreNotFraming) {
    ws_frame_reader r(4096);
    r.feed("GET / HTTP/1.1\r\n");
    EXPECT_TRUE(r.failed());
    EXPECT_TRUE(r.feed(frame(0x81, "x", true)).empty());
}

TEST(WebSocketFrames, RefusesCompressedFramesWithoutTheExtension) {
    ws_frame_reader r(4096);
    r.feed(frame(0xC1, "x", true));
    EXPECT_TRUE(r.failed());
}

std::string deflate_message(boost::beast::zlib::deflate_stream& d, std::string_view text) {
    namespace zlib = boost::beast::zlib;
    std::string out(text.size() + 64, '\0');
    zlib::z_params z;
    z.next_in = text.data();
    z.avail_in = text.size();
    z.next_out = out.data();
    z.avail_out = out.size();
    boost::system::error_code ec;
    d.write(z, zlib::Flush::sync, ec);
    out.resize(out.size() - z.avail_out);
    EXPECT_GE(out.size(), 4u);
    out.resize(out.size() - 4);  // RFC 7692 7.2.1: drop the 00 00 ff ff tail
    return out;
}

TEST(WebSocketFrames, InflatesPermessageDeflateAcrossMessagesWithContextTakeover) {
    boost::beast::zlib::deflate_stream d;
    d.reset(6, 15, 8, boost::beast::zlib::Strategy::normal);
    const std::string first = deflate_message(d, "hello hello hello");
    const std::string second = deflate_message(d, "hello hello hello again");
    ws_frame_reader r(4096, parse_ws_deflate("permessage-deflate; client_max_window_bits", true));
    auto frames = r.feed(frame(0xC1, first, true) + frame(0xC1, second, true));
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_TRUE(frames[0].compressed);
    EXPECT_EQ(frames[0].payload, "hello hello hello");
    EXPECT_EQ(frames[1].payload, "hello hello hello again");
    EXPECT_EQ(frames[1].size, 23u);
    EXPECT_EQ(frames[1].wire_size, second.size());
    EXPECT_FALSE(r.failed());
}

TEST(WebSocketFrames, BytesAfterAFinalDeflateBlockNeitherHangNorLoseTheConnection) {
    namespace zlib = boost::beast::zlib;
    zlib::deflate_stream d;
    d.reset(6, 15, 8, zlib::Strategy::normal);
    const std::string text = "hello";
    std::string final_block(64, '\0');
    zlib::z_params z;
    z.next_in = text.data();
    z.avail_in = text.size();
    z.next_out = final_block.data();
    z.avail_out = final_block.size();
    boost::system::error_code ec;
    d.write(z, zlib::Flush::finish, ec);
    final_block.resize(final_block.size() - z.avail_out);
    // A final block, then bytes that are no deflate stream at all, in one message.
    ws_frame_reader r(4096, parse_ws_deflate("permessage-deflate", true));
    auto frames = r.feed(frame(0xC1, final_block + std::string(40, '\xff'), true));
    EXPECT_TRUE(frames.size() == 1 || r.failed());
    if (!frames.empty()) {
        EXPECT_EQ(frames[0].payload.substr(0, 5), "hello");
    }
}

TEST(WebSocketFrames, ParsesDeflateParametersPerDirection) {
    const auto ext = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10";
    const auto c2s = parse_ws_deflate(ext, true);
    EXPECT_TRUE(c2s.enabled);
    EXPECT_FALSE(c2s.reset_each_message);
    EXPECT_EQ(c2s.window_bits, 10);
    const auto s2c = parse_ws_deflate(ext, false);
    EXPECT_TRUE(s2c.reset_each_message);
    EXPECT_EQ(s2c.window_bits, 15);
    EXPECT_FALSE(parse_ws_deflate("x-webkit-deflate-frame", true).enabled);
}

}  // namespace
}  // namespace porthole::http
