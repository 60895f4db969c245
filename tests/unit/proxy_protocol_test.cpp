#include "net/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::net {
namespace {

namespace ip = boost::asio::ip;
using tcp = ip::tcp;
using namespace std::string_literals;

tcp::endpoint endpoint(const char* address, unsigned short port) {
    return {ip::make_address(address), port};
}

std::string bytes(std::initializer_list<unsigned> list) {
    std::string s;
    for (auto b : list) s += static_cast<char>(b);
    return s;
}

const std::string v2_signature = bytes({0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55,
                                        0x49, 0x54, 0x0a});

// A v2 header: signature, version and command, family and transport, length, then `block`.
std::string v2(unsigned ver_cmd, unsigned family, const std::string& block) {
    return v2_signature + bytes({ver_cmd, family, static_cast<unsigned>(block.size() >> 8),
                                 static_cast<unsigned>(block.size() & 0xff)}) +
           block;
}

const std::string v4_block = bytes({192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb});

struct parsed {
    proxy_parse result;
    proxy_header header;
    std::string error;
};

parsed parse(std::string_view b) {
    parsed p;
    p.result = parse_proxy_header(b, p.header, p.error);
    return p;
}

void expect_invalid(const std::string& input, std::string_view why) {
    SCOPED_TRACE(testing::PrintToString(input));
    const auto p = parse(input);
    EXPECT_EQ(p.result, proxy_parse::invalid);
    EXPECT_EQ(p.error, why);
}

void expect_every_prefix_needs_more(const std::string& header) {
    SCOPED_TRACE(testing::PrintToString(header));
    for (std::size_t n = 0; n < header.size(); ++n) {
        // 0xff past the end, valid nowhere in a header, so a read beyond the prefix shows
        const auto buffer = header.substr(0, n) + '\xff';
        EXPECT_EQ(parse(std::string_view(buffer).substr(0, n)).result, proxy_parse::need_more) << n;
    }
    EXPECT_EQ(parse(header).result, proxy_parse::done);
}

TEST(ProxyV1, WritesTheSpecsExample) {
    EXPECT_EQ(proxy_v1_header(endpoint("192.168.0.1", 56324), endpoint("192.168.0.11", 443)),
              "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST(ProxyV1, RoundTripsIpv4AndLeavesTheDataAfterIt) {
    const auto src = endpoint("192.0.2.1", 56324), dst = endpoint("198.51.100.2", 443);
    const auto line = proxy_v1_header(src, dst);
    const auto p = parse(line + "GET / HTTP/1.1\r\n");
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_FALSE(p.header.local);
    EXPECT_EQ(p.header.source, src);
    EXPECT_EQ(p.header.destination, dst);
    EXPECT_EQ(p.header.size, line.size());
    EXPECT_EQ(p.error, "");
}

TEST(ProxyV1, RoundTripsIpv6) {
    const auto src = endpoint("2001:db8::1", 1234), dst = endpoint("2001:db8::2", 80);
    const auto line = proxy_v1_header(src, dst);
    EXPECT_EQ(line, "PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n");
    const auto p = parse(line);
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_EQ(p.header.source, src);
    EXPECT_EQ(p.header.destination, dst);
    EXPECT_EQ(p.header.size, line.size());
}

TEST(ProxyV1, AcceptsTheExtremes) {
    const auto p = parse("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_EQ(p.header.source, endpoint("0.0.0.0", 0));
    EXPECT_EQ(p.header.destination, endpoint("255.255.255.255", 65535));

    const std::string all_f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const auto longest = "PROXY TCP6 " + all_f + " " + all_f + " 65535 65535\r\n";
    EXPECT_EQ(longest.size(), 104u);  // the spec's longest TCP6 line
    const auto q = parse(longest);
    ASSERT_EQ(q.result, proxy_parse::done) << q.error;
    EXPECT_EQ(q.header.source, endpoint(all_f.c_str(), 65535));

    const auto r = parse("PROXY TCP6 0001:0DB8:0:0:0:0:0:1 ::ffff:192.0.2.1 1 2\r\n");
    ASSERT_EQ(r.result, proxy_parse::done) << r.error;
    EXPECT_EQ(r.header.source, endpoint("1:db8::1", 1));
    EXPECT_EQ(r.header.destination, endpoint("::ffff:192.0.2.1", 2));
}

TEST(ProxyV1, UnknownIsLocalWhateverFollows) {
    for (const std::string line : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ::1 65535 1\r\n",
                                   "PROXY UNKNOWN any thing at all\r\n"}) {
        SCOPED_TRACE(line);
        const auto p = parse(line + "data");
        ASSERT_EQ(p.result, proxy_parse::done) << p.error;
        EXPECT_TRUE(p.header.local);
        EXPECT_EQ(p.header.source, tcp::endpoint());
        EXPECT_EQ(p.header.size, line.size());
    }
}

TEST(ProxyV1, EveryPrefixNeedsMore) {
    expect_every_prefix_needs_more("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    expect_every_prefix_needs_more("PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n");
    expect_every_prefix_needs_more("PROXY UNKNOWN\r\n");
}

TEST(ProxyV1, TheLineEndsWithin107Bytes) {
    const std::string start = "PROXY UNKNOWN ";
    const auto fits = start + std::string(107 - 2 - start.size(), 'x') + "\r\n";
    ASSERT_EQ(fits.size(), proxy_v1_max_size);
    const auto p = parse(fits);
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_EQ(p.header.size, 107u);

    const auto too_long = start + std::string(107 - 1 - start.size(), 'x') + "\r\n";
    expect_invalid(too_long, "PROXY v1: no CRLF in 107 bytes");
    expect_invalid(too_long.substr(0, 107), "PROXY v1: no CRLF in 107 bytes");  // CR is byte 107
    expect_invalid(start + std::string(200, 'x'), "PROXY v1: no CRLF in 107 bytes");
}

TEST(ProxyV1, TheLineEndsWithCrlfOnly) {
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY v1: LF without CR");
    expect_invalid("PROXY TCP4 1.2\n", "PROXY v1: LF without CR");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "PROXY v1: CR without LF");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "PROXY v1: CR without LF");
    expect_invalid("PROXY UNKNOWN \n\r\n", "PROXY v1: LF without CR");
}

TEST(ProxyV1, AWrongFamilyIsRejectedBeforeTheLineEnds) {
    expect_invalid("PROXY TCP5", "PROXY v1: unknown protocol family");
    expect_invalid("PROXY UDP4 1.2.3.4", "PROXY v1: unknown protocol family");
    expect_invalid("PROXY TCP4\t", "PROXY v1: unknown protocol family");
}

TEST(ProxyV1, EachMalformedFieldIsNamed) {
    const std::vector<std::pair<std::string, std::string_view>> cases = {
        {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: unknown protocol family"},
        {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: unknown protocol family"},
        {"PROXY \r\n", "PROXY v1: unknown protocol family"},
        {"PROXY UNKNOWNX\r\n", "PROXY v1: unknown protocol family"},
        {"PROXY TCP4\r\n", "PROXY v1: wrong number of fields"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "PROXY v1: wrong number of fields"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROXY v1: wrong number of fields"},
        {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: wrong number of fields"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "PROXY v1: wrong number of fields"},
        {"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", "PROXY v1: wrong number of fields"},
        {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 1.2.3.00 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 +1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"s, "PROXY v1: bad source address"},
        {"PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n", "PROXY v1: bad destination address"},
        {"PROXY TCP4 1.2.3.4 localhost 1 2\r\n", "PROXY v1: bad destination address"},
        {"PROXY TCP4 1.2.3.4 2001:db8::1 1 2\r\n", "PROXY v1: bad destination address"},
        {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP6 1::2::3 ::1 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP6 12345::1 ::1 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP6 [::1] ::1 1 2\r\n", "PROXY v1: bad source address"},
        {"PROXY TCP6 ::1\0:1 ::1 1 2\r\n"s, "PROXY v1: bad source address"},
        {"PROXY TCP6 ::1 ::g 1 2\r\n", "PROXY v1: bad destination address"},
        {"PROXY TCP6 ::1 1.2.3.4 1 2\r\n", "PROXY v1: bad destination address"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "PROXY v1: bad source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 99999999999 2\r\n", "PROXY v1: bad source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "PROXY v1: bad source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "PROXY v1: bad source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "PROXY v1: bad source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", "PROXY v1: bad source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "PROXY v1: bad destination port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "PROXY v1: bad destination port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x50\r\n", "PROXY v1: bad destination port"},
    };
    for (const auto& [input, why] : cases) expect_invalid(input, why);
}

TEST(ProxyV2, WritesIpv4ByteForByte) {
    const auto expected = bytes({
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,  // signature
        0x21,                                                                    // v2, PROXY
        0x11,                                                                    // TCP over IPv4
        0x00, 0x0c,                                                              // 12 bytes follow
        0xc0, 0x00, 0x02, 0x01,                                                  // 192.0.2.1
        0xc6, 0x33, 0x64, 0x02,                                                  // 198.51.100.2
        0xdc, 0x04,                                                              // 56324
        0x01, 0xbb,                                                              // 443
    });
    EXPECT_EQ(proxy_v2_header(endpoint("192.0.2.1", 56324), endpoint("198.51.100.2", 443)),
              expected);
}

TEST(ProxyV2, WritesIpv6ByteForByte) {
    const auto expected = bytes({
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,  // signature
        0x21,                                                                    // v2, PROXY
        0x21,                                                                    // TCP over IPv6
        0x00, 0x24,                                                              // 36 bytes follow
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,           // 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,           // 2001:db8::2
        0x04, 0xd2,                                                              // 1234
        0x00, 0x50,                                                              // 80
    });
    EXPECT_EQ(proxy_v2_header(endpoint("2001:db8::1", 1234), endpoint("2001:db8::2", 80)),
              expected);
}

TEST(ProxyV2, RoundTripsIpv4AndIpv6) {
    for (const auto& [src, dst] :
         {std::pair{endpoint("192.0.2.1", 56324), endpoint("198.51.100.2", 443)},
          std::pair{endpoint("2001:db8::1", 0), endpoint("ffff::ffff", 65535)}}) {
        SCOPED_TRACE(src.address().to_string());
        const auto header = proxy_v2_header(src, dst);
        const auto p = parse(header + "\x16\x03\x01");
        ASSERT_EQ(p.result, proxy_parse::done) << p.error;
        EXPECT_FALSE(p.header.local);
        EXPECT_EQ(p.header.source, src);
        EXPECT_EQ(p.header.destination, dst);
        EXPECT_EQ(p.header.size, header.size());
        EXPECT_EQ(p.error, "");
    }
}

TEST(ProxyV2, EveryPrefixNeedsMore) {
    expect_every_prefix_needs_more(proxy_v2_header(endpoint("192.0.2.1", 1), endpoint("::1", 2)));
    expect_every_prefix_needs_more(proxy_v2_header(endpoint("192.0.2.1", 1),
                                                   endpoint("198.51.100.2", 2)));
    expect_every_prefix_needs_more(v2(0x21, 0x11, v4_block + bytes({0x04, 0x00, 0x02, 0, 0})));
    expect_every_prefix_needs_more(v2(0x20, 0x00, ""));
}

TEST(ProxyV2, SkipsTlvs) {
    const auto tlvs = bytes({0x01, 0x00, 0x02, 'h', '2'}) +                    // ALPN
                      bytes({0x02, 0x00, 0x0b}) + "example.com" +             // AUTHORITY
                      bytes({0x04, 0x00, 0x00}) +                              // NOOP
                      bytes({0x20, 0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00});  // SSL, verified
    const auto header = v2(0x21, 0x11, v4_block + tlvs);
    const auto p = parse(header + "GET / HTTP/1.1\r\n");
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_EQ(p.header.size, 16 + 12 + tlvs.size());
    EXPECT_EQ(p.header.source, endpoint("192.0.2.1", 56324));
    EXPECT_EQ(p.header.destination, endpoint("198.51.100.2", 443));
}

TEST(ProxyV2, LeavesTlvBytesUnreadEvenWhenTheyAreNotWholeTlvs) {
    const auto p = parse(v2(0x21, 0x11, v4_block + bytes({0x05, 0xff})));
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_EQ(p.header.size, 16u + 12 + 2);
}

TEST(ProxyV2, LocalCommandIgnoresAnyAddresses) {
    const auto bare = parse(v2(0x20, 0x00, "") + "data");
    ASSERT_EQ(bare.result, proxy_parse::done) << bare.error;
    EXPECT_TRUE(bare.header.local);
    EXPECT_EQ(bare.header.size, 16u);

    const auto with_addresses = parse(v2(0x20, 0x11, v4_block));
    ASSERT_EQ(with_addresses.result, proxy_parse::done) << with_addresses.error;
    EXPECT_TRUE(with_addresses.header.local);
    EXPECT_EQ(with_addresses.header.source, tcp::endpoint());
    EXPECT_EQ(with_addresses.header.destination, tcp::endpoint());
    EXPECT_EQ(with_addresses.header.size, 28u);
}

TEST(ProxyV2, FamiliesWeDontCarryAreLocal) {
    const std::vector<std::pair<unsigned, std::string>> cases = {
        {0x00, ""},                           // AF_UNSPEC
        {0x31, std::string(216, '\0')},       // AF_UNIX stream
        {0x32, std::string(216, '\0')},       // AF_UNIX datagram
        {0x12, v4_block},                     // UDP over IPv4
        {0x22, std::string(36, '\1')},        // UDP over IPv6
        {0x10, v4_block},                     // IPv4, transport unspecified
        {0x01, ""},                           // family unspecified, stream
    };
    for (const auto& [family, block] : cases) {
        SCOPED_TRACE(family);
        const auto p = parse(v2(0x21, family, block));
        ASSERT_EQ(p.result, proxy_parse::done) << p.error;
        EXPECT_TRUE(p.header.local);
        EXPECT_EQ(p.header.source, tcp::endpoint());
        EXPECT_EQ(p.header.size, 16 + block.size());
    }
}

TEST(ProxyV2, EachMalformedFieldIsNamedAsSoonAsItArrives) {
    const auto head = [](unsigned ver_cmd, unsigned family, unsigned length) {
        return v2_signature + bytes({ver_cmd, family, length >> 8, length & 0xff});
    };
    expect_invalid(v2_signature + bytes({0x11}), "PROXY v2: unsupported version");
    expect_invalid(v2_signature + bytes({0x31}), "PROXY v2: unsupported version");
    expect_invalid(v2_signature + bytes({0x01}), "PROXY v2: unsupported version");
    expect_invalid(v2_signature + bytes({0x22}), "PROXY v2: unsupported command");
    expect_invalid(v2_signature + bytes({0x2f}), "PROXY v2: unsupported command");
    expect_invalid(v2_signature + bytes({0x21, 0x41}), "PROXY v2: unsupported address family");
    expect_invalid(v2_signature + bytes({0x20, 0xf1}), "PROXY v2: unsupported address family");
    expect_invalid(v2_signature + bytes({0x21, 0x13}), "PROXY v2: unsupported transport protocol");
    expect_invalid(head(0x21, 0x11, 11), "PROXY v2: address block too short for IPv4");
    expect_invalid(head(0x21, 0x21, 35), "PROXY v2: address block too short for IPv6");
    expect_invalid(head(0x21, 0x21, 12), "PROXY v2: address block too short for IPv6");
}

TEST(ProxyV2, LengthIsCappedAt4096) {
    const auto head = [](unsigned length) {
        return v2_signature + bytes({0x21, 0x11, length >> 8, length & 0xff});
    };
    expect_invalid(head(4097), "PROXY v2: length over 4096 bytes");
    expect_invalid(head(0xffff), "PROXY v2: length over 4096 bytes");

    const auto longest = head(4096) + v4_block + std::string(4096 - 12, '\0');
    EXPECT_EQ(parse(longest.substr(0, longest.size() - 1)).result, proxy_parse::need_more);
    const auto p = parse(longest);
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_EQ(p.header.size, proxy_header_max_size);
}

TEST(ProxyHeader, AnythingElseIsNotAHeader) {
    for (const auto& input :
         {"GET / HTTP/1.1\r\n"s, "\x16\x03\x01\x02\x00"s, "SSH-2.0-OpenSSH_9.2\r\n"s, "PROXZ"s,
          "proxy TCP4 "s, "PROXY\r\n"s, "\r\n\r\n\0\r\nQUIX\n"s, "\r\nGET"s, "\0"s}) {
        expect_invalid(input, "not a PROXY protocol header");
    }
    EXPECT_EQ(parse("").result, proxy_parse::need_more);
}

TEST(ProxyHeader, OutIsWrittenOnlyOnDoneAndErrorOnlyOnInvalid) {
    proxy_header out{.local = true, .source = endpoint("192.0.2.9", 9), .size = 99};
    std::string error = "untouched";
    EXPECT_EQ(parse_proxy_header("GET /", out, error), proxy_parse::invalid);
    EXPECT_TRUE(out.local);
    EXPECT_EQ(out.source, endpoint("192.0.2.9", 9));
    EXPECT_EQ(out.size, 99u);
    error = "untouched";
    EXPECT_EQ(parse_proxy_header("PROXY TCP4 1.2.3.4", out, error), proxy_parse::need_more);
    EXPECT_EQ(out.size, 99u);
    EXPECT_EQ(parse_proxy_header("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", out, error),
              proxy_parse::done);
    EXPECT_EQ(error, "untouched");
    EXPECT_FALSE(out.local);
    EXPECT_EQ(out.size, 32u);
}

TEST(ProxyWriters, MappedIpv4WithAnIpv4PeerIsWrittenAsIpv4) {
    const auto src = endpoint("::ffff:192.0.2.1", 56324), dst = endpoint("198.51.100.2", 443);
    EXPECT_EQ(proxy_v1_header(src, dst), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    EXPECT_EQ(proxy_v2_header(src, dst), v2(0x21, 0x11, v4_block));
    const auto both_mapped = endpoint("::ffff:198.51.100.2", 443);
    EXPECT_EQ(proxy_v1_header(src, both_mapped), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    EXPECT_EQ(proxy_v2_header(src, both_mapped), v2(0x21, 0x11, v4_block));
}

TEST(ProxyWriters, MixedFamiliesGoAsIpv6WithTheIpv4OneMapped) {
    const auto src = endpoint("192.0.2.1", 56324), dst = endpoint("2001:db8::2", 443);
    const auto line = proxy_v1_header(src, dst);
    EXPECT_EQ(line, "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 56324 443\r\n");
    const auto p = parse(line);
    ASSERT_EQ(p.result, proxy_parse::done) << p.error;
    EXPECT_EQ(p.header.source, endpoint("::ffff:192.0.2.1", 56324));
    EXPECT_EQ(p.header.destination, dst);

    const auto mapped = bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1});
    const auto v6 = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02});
    EXPECT_EQ(proxy_v2_header(src, dst),
              v2(0x21, 0x21, mapped + v6 + bytes({0xdc, 0x04, 0x01, 0xbb})));
    EXPECT_EQ(proxy_v2_header(dst, src),
              v2(0x21, 0x21, v6 + mapped + bytes({0x01, 0xbb, 0xdc, 0x04})));
}

TEST(ProxyWriters, LeaveOutTheScopeOfALinkLocalAddress) {
    const auto link_local = ip::make_address_v6("fe80::1").to_bytes();
    const tcp::endpoint src(ip::address_v6(link_local, 3), 1234);
    const auto line = proxy_v1_header(src, endpoint("fe80::2", 80));
    EXPECT_EQ(line, "PROXY TCP6 fe80::1 fe80::2 1234 80\r\n");
    EXPECT_EQ(parse(line).result, proxy_parse::done);
}

}  // namespace
}  // namespace porthole::net
