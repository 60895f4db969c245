#include "net/client_hello.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace porthole::net {
namespace {

using status = client_hello_sni::status;

// Byte by byte: GCC 12 warns falsely on vector range inserts here.
void append(std::vector<std::uint8_t>& v, const std::vector<std::uint8_t>& more) {
    for (auto b : more) v.push_back(b);
}

void put16(std::vector<std::uint8_t>& v, std::size_t n) {
    v.push_back(static_cast<std::uint8_t>(n >> 8));
    v.push_back(static_cast<std::uint8_t>(n));
}

// A minimal TLS 1.2/1.3-style ClientHello record, with a server_name extension when `sni` is set.
std::vector<std::uint8_t> client_hello(const std::string& sni,
                                       const std::vector<std::string>& alpn = {}) {
    std::vector<std::uint8_t> ext;
    if (!alpn.empty()) {
        std::vector<std::uint8_t> list;
        for (const auto& p : alpn) {
            list.push_back(static_cast<std::uint8_t>(p.size()));
            for (char c : p) list.push_back(static_cast<std::uint8_t>(c));
        }
        put16(ext, 16);  // application_layer_protocol_negotiation, before the name
        put16(ext, list.size() + 2);
        put16(ext, list.size());
        append(ext, list);
    }
    if (!sni.empty()) {
        put16(ext, 0);  // server_name
        put16(ext, sni.size() + 5);
        put16(ext, sni.size() + 3);
        ext.push_back(0);  // host_name
        put16(ext, sni.size());
        for (char c : sni) ext.push_back(static_cast<std::uint8_t>(c));
    }
    put16(ext, 0x000a);  // supported_groups, to be skipped
    put16(ext, 4);
    put16(ext, 2);
    put16(ext, 0x001d);
    std::vector<std::uint8_t> body;
    body.push_back(0x03);
    body.push_back(0x03);
    for (int i = 0; i < 32; ++i) body.push_back(0x42);  // random
    body.push_back(0);  // session id
    put16(body, 2);
    put16(body, 0x1301);
    body.push_back(1);
    body.push_back(0);
    put16(body, ext.size());
    append(body, ext);
    std::vector<std::uint8_t> hs;
    hs.push_back(1);
    hs.push_back(0);
    put16(hs, body.size());
    append(hs, body);
    std::vector<std::uint8_t> record;
    record.push_back(22);
    record.push_back(3);
    record.push_back(1);
    put16(record, hs.size());
    append(record, hs);
    return record;
}

TEST(FindSni, FindsTheNameLowercased) {
    const auto hello = client_hello("Svc.Example.COM");
    auto r = find_sni(hello);
    EXPECT_EQ(r.what, status::found);
    EXPECT_EQ(r.name, "svc.example.com");
}

TEST(FindSni, SeesAnAcmeTlsAlpnValidation) {
    auto r = find_sni(client_hello("a.example.com", {"acme-tls/1"}));
    EXPECT_EQ(r.what, status::found);
    EXPECT_EQ(r.name, "a.example.com");
    EXPECT_TRUE(r.acme_tls);
    r = find_sni(client_hello("a.example.com", {"h2", "http/1.1"}));
    EXPECT_EQ(r.what, status::found);
    EXPECT_FALSE(r.acme_tls);
    EXPECT_FALSE(find_sni(client_hello("a.example.com", {"acme-tls/12"})).acme_tls);
    EXPECT_FALSE(find_sni(client_hello("a.example.com")).acme_tls);
}

TEST(FindSni, SeesAClientByItsAlpn) {
    auto r = find_sni(client_hello("relay.example.com", {"porthole/1"}));
    EXPECT_EQ(r.what, status::found);
    EXPECT_TRUE(r.control);
    EXPECT_FALSE(r.acme_tls);
    EXPECT_FALSE(find_sni(client_hello("relay.example.com", {"http/1.1"})).control);
    EXPECT_FALSE(find_sni(client_hello("relay.example.com", {"porthole/2"})).control);
}

TEST(FindSni, EveryPrefixNeedsMore) {
    const auto hello = client_hello("svc.localhost");
    for (std::size_t n = 0; n < hello.size(); ++n)
        EXPECT_EQ(find_sni({hello.data(), n}).what, status::need_more) << n;
}

TEST(FindSni, AbsentWithoutTheExtension) {
    EXPECT_EQ(find_sni(client_hello("")).what, status::absent);
}

TEST(FindSni, PlainHttpIsNotTls) {
    const std::string get = "GET / HTTP/1.1\r\n";
    EXPECT_EQ(find_sni({reinterpret_cast<const std::uint8_t*>(get.data()), get.size()}).what,
              status::not_tls);
}

TEST(FindSni, LengthsPointingPastTheRecordAreAbsentNotCrashes) {
    auto hello = client_hello("svc.localhost");
    hello[hello.size() - 20] = 0xff;  // corrupt a length inside the extensions
    const auto r = find_sni(hello);
    EXPECT_NE(r.what, status::need_more);
}

}  // namespace
}  // namespace porthole::net
