// SHA-256 as the relay names things by it: FIPS 180-2's vectors, whole and cut short.
#include "core/sha256.hpp"

#include <gtest/gtest.h>

namespace porthole::core {
namespace {

TEST(Sha256, KnownDigestsInEachForm) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abc", 32), "ba7816bf8f01cfea414140de5dae2223");
    EXPECT_EQ(sha256_hex("abc", 5), "ba781");
    EXPECT_EQ(sha256_hex("abc", 100).size(), 64u);  // never more than the digest has
    const auto bytes = sha256_bytes("abc");
    ASSERT_EQ(bytes.size(), 32u);
    EXPECT_EQ(static_cast<unsigned char>(bytes.front()), 0xba);
    EXPECT_EQ(static_cast<unsigned char>(bytes.back()), 0xad);
    const auto md = sha256(std::string_view("a\0b", 3));  // binary-safe
    EXPECT_NE(md, sha256("a"));
}

}  // namespace
}  // namespace porthole::core
