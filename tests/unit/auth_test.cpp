#include "protocol/auth.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <initializer_list>
#include <string>

namespace porthole::protocol {
namespace {

constexpr std::string_view sha256_abc =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr std::string_view sha256_empty =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

template <std::size_t N>
std::array<std::uint8_t, N> filled(std::uint8_t v) {
    std::array<std::uint8_t, N> a{};
    a.fill(v);
    return a;
}

key32 reference_hmac(std::span<const std::uint8_t> key,
                     std::initializer_list<std::string_view> parts) {
    std::string message;
    for (auto part : parts) message.append(part);
    key32 out{};
    unsigned len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(), &len);
    EXPECT_EQ(len, out.size());
    return out;
}

std::string_view chars(std::span<const std::uint8_t> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TEST(AuthToHex, EncodesLowercaseTwoDigitsPerByte) {
    EXPECT_EQ(to_hex({}), "");
    const std::uint8_t bytes[] = {0x00, 0x0f, 0x10, 0xa5, 0xff};
    EXPECT_EQ(to_hex(bytes), "000f10a5ff");
}

TEST(AuthKeyOfToken, IsSha256) {
    EXPECT_EQ(to_hex(key_of_token("abc")), sha256_abc);
    EXPECT_EQ(to_hex(key_of_token("")), sha256_empty);
}

TEST(AuthKeyOfToken, DistinguishesTokens) {
    EXPECT_EQ(key_of_token("secret"), key_of_token("secret"));
    EXPECT_NE(key_of_token("secret"), key_of_token("Secret"));
    EXPECT_NE(key_of_token("secret"), key_of_token("secret "));
}

TEST(AuthParseTokenEntry, PlainTokenIsHashed) {
    auto key = parse_token_entry("abc");
    ASSERT_TRUE(key) << key.error();
    EXPECT_EQ(*key, verifier_of(key_of_token("abc")));
}

TEST(AuthParseTokenEntry, VerifierEntryIsKeptAsItIs) {
    const verifier v = verifier_of(key_of_token("tok"));
    auto parsed = parse_token_entry("verifier:" + to_hex(v));
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_EQ(*parsed, v);
    auto bad = parse_token_entry("verifier:abcd");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("verifier: entry needs exactly 64"), std::string::npos) << bad.error();
}

TEST(AuthVerifier, IsSha256OfTheKey) {
    const token_key key = key_of_token("abc");
    EXPECT_EQ(to_hex(verifier_of(key)), to_hex(key_of_token(chars(key))));
}

TEST(AuthParseTokenEntry, DigestEntryEqualsKeyOfPlainToken) {
    const token_key plain = key_of_token("correct horse battery staple");
    auto key = parse_token_entry("sha256:" + to_hex(plain));
    ASSERT_TRUE(key) << key.error();
    EXPECT_EQ(*key, verifier_of(plain));

    auto abc = parse_token_entry(std::string("sha256:") + std::string(sha256_abc));
    ASSERT_TRUE(abc) << abc.error();
    EXPECT_EQ(*abc, verifier_of(key_of_token("abc")));
}

TEST(AuthParseTokenEntry, DigestAcceptsUppercaseHex) {
    std::string upper(sha256_abc);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto key = parse_token_entry("sha256:" + upper);
    ASSERT_TRUE(key) << key.error();
    EXPECT_EQ(*key, verifier_of(key_of_token("abc")));
}

TEST(AuthParseTokenEntry, RejectsEmptyEntry) {
    EXPECT_FALSE(parse_token_entry(""));
}

TEST(AuthParseTokenEntry, RejectsDigestOfWrongLength) {
    const std::string hex(sha256_abc);
    EXPECT_FALSE(parse_token_entry("sha256:"));
    EXPECT_FALSE(parse_token_entry("sha256:" + hex.substr(0, 63)));
    EXPECT_FALSE(parse_token_entry("sha256:" + hex + "0"));
    EXPECT_FALSE(parse_token_entry("sha256:" + hex.substr(0, 62)));
    auto short_entry = parse_token_entry("sha256:abcd");
    ASSERT_FALSE(short_entry);
    EXPECT_NE(short_entry.error().find("64"), std::string::npos) << short_entry.error();
}

TEST(AuthParseTokenEntry, RejectsNonHexDigest) {
    for (char bad : {'g', 'G', 'z', ' ', ':', '-', 'x'}) {
        std::string hex(sha256_abc);
        hex[10] = bad;
        auto key = parse_token_entry("sha256:" + hex);
        ASSERT_FALSE(key) << "digit '" << bad << "'";
        EXPECT_NE(key.error().find("hex"), std::string::npos) << key.error();
    }
    std::string last(sha256_abc);
    last.back() = 'g';
    EXPECT_FALSE(parse_token_entry("sha256:" + last));
}

TEST(AuthSessionProof, MatchesHmacOverLabelNonceAndClientId) {
    const token_key key = key_of_token("tok");
    const key32 nonce = filled<32>(0x5a);
    const id16 client = filled<16>(0x33);
    key32 expected = reference_hmac(verifier_of(key), {"porthole-auth-v2", chars(nonce), chars(client)});
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] ^= key[i];
    EXPECT_EQ(session_proof(key, nonce, client), expected);
}

TEST(AuthCheckSessionProof, TheVerifierChecksAProofAndRecoversTheKey) {
    const token_key key = key_of_token("tok");
    const verifier v = verifier_of(key);
    const key32 nonce = filled<32>(7);
    const id16 client = filled<16>(8);
    const auto recovered = check_session_proof(v, nonce, client, session_proof(key, nonce, client));
    ASSERT_TRUE(recovered);
    EXPECT_EQ(*recovered, key);

    EXPECT_FALSE(check_session_proof(verifier_of(key_of_token("other")), nonce, client,
                                     session_proof(key, nonce, client)));
    key32 other_nonce = nonce;
    other_nonce[0] ^= 1;
    EXPECT_FALSE(check_session_proof(v, other_nonce, client, session_proof(key, nonce, client)));
}

// What the relay stores is not enough to log in: a proof made from the verifier in place of the
// key (what a stolen tokens file allows) is refused.
TEST(AuthCheckSessionProof, AVerifierCannotMakeAProof) {
    const token_key key = key_of_token("tok");
    const verifier v = verifier_of(key);
    const key32 nonce = filled<32>(3);
    const id16 client = filled<16>(4);
    EXPECT_FALSE(check_session_proof(v, nonce, client, session_proof(v, nonce, client)));
    EXPECT_FALSE(check_session_proof(v, nonce, client,
                                     reference_hmac(v, {"porthole-auth-v2", chars(nonce), chars(client)})));
}

TEST(AuthSessionProof, IsDeterministic) {
    const token_key key = key_of_token("tok");
    EXPECT_EQ(session_proof(key, filled<32>(1), filled<16>(2)),
              session_proof(key, filled<32>(1), filled<16>(2)));
}

TEST(AuthSessionProof, ChangesWithNonceClientIdAndKey) {
    const token_key key = key_of_token("tok");
    const key32 nonce = filled<32>(1);
    const id16 client = filled<16>(2);
    const key32 base = session_proof(key, nonce, client);

    key32 other_nonce = nonce;
    other_nonce[31] ^= 1;
    id16 other_client = client;
    other_client[0] ^= 0x80;

    EXPECT_NE(session_proof(key, other_nonce, client), base);
    EXPECT_NE(session_proof(key, nonce, other_client), base);
    EXPECT_NE(session_proof(key_of_token("tok2"), nonce, client), base);
}

TEST(AuthDataKey, MatchesHmacOfTokenKeyOverNonceAndClient) {
    const token_key key = key_of_token("tok");
    const key32 nonce = filled<32>(0x77);
    const id16 client = filled<16>(0x33);
    EXPECT_EQ(data_key(key, nonce, client),
              reference_hmac(key, {"porthole-data-key-v2", chars(nonce), chars(client)}));
}

// What crosses the wire in a session handshake (the nonce, the client id, the AUTH proof) must not
// be enough to compute the data key: only the token is.
TEST(AuthDataKey, IsNotDerivableFromTheSessionProof) {
    const token_key key = key_of_token("tok");
    const key32 nonce = filled<32>(1);
    const id16 client = filled<16>(2);
    const key32 proof = session_proof(key, nonce, client);
    const key32 dkey = data_key(key, nonce, client);
    EXPECT_NE(dkey, proof);
    EXPECT_NE(dkey, data_key(proof, nonce, client));
    EXPECT_NE(dkey, reference_hmac(proof, {"porthole-data-key-v1"}));
    EXPECT_NE(dkey, data_key(key_of_token("tok2"), nonce, client));
}

TEST(AuthDataProof, MatchesHmacOverLabelSessionIdAndConnectionNonce) {
    const key32 key = filled<32>(0x11);
    const id16 session = filled<16>(0x22);
    const key32 nonce = filled<32>(0x44);
    EXPECT_EQ(data_proof(key, session, nonce),
              reference_hmac(key, {"porthole-data-v2", chars(session), chars(nonce)}));
}

TEST(AuthDataProof, DeterministicAndBoundToSessionAndConnection) {
    const key32 dkey = data_key(key_of_token("tok"), filled<32>(1), filled<16>(2));
    const id16 session = filled<16>(9);
    id16 other_session = session;
    other_session[5] ^= 1;
    const key32 nonce = filled<32>(7);
    key32 other_nonce = nonce;
    other_nonce[31] ^= 1;

    EXPECT_EQ(data_proof(dkey, session, nonce), data_proof(dkey, session, nonce));
    EXPECT_NE(data_proof(dkey, session, nonce), dkey);
    EXPECT_NE(data_proof(dkey, session, nonce), data_proof(dkey, other_session, nonce));
    // A proof captured on one data connection does not answer another connection's nonce.
    EXPECT_NE(data_proof(dkey, session, nonce), data_proof(dkey, session, other_nonce));
    key32 other_key = dkey;
    other_key[0] ^= 1;
    EXPECT_NE(data_proof(dkey, session, nonce), data_proof(other_key, session, nonce));
}

TEST(AuthEqualConstantTime, ComparesAllBytes) {
    const key32 a = filled<32>(0xab);
    key32 first = a;
    first[0] ^= 1;
    key32 last = a;
    last[31] ^= 0x80;
    EXPECT_TRUE(equal_constant_time(a, a));
    EXPECT_TRUE(equal_constant_time(a, filled<32>(0xab)));
    EXPECT_FALSE(equal_constant_time(a, first));
    EXPECT_FALSE(equal_constant_time(a, last));
    EXPECT_FALSE(equal_constant_time(a, key32{}));
}

TEST(AuthRandomBytes, DifferBetweenCalls) {
    const auto a16 = random_bytes<16>();
    const auto b16 = random_bytes<16>();
    EXPECT_NE(a16, b16);
    EXPECT_NE(a16, id16{});

    const auto a32 = random_bytes<32>();
    const auto b32 = random_bytes<32>();
    EXPECT_NE(a32, b32);
    EXPECT_NE(a32, key32{});
}

}  // namespace
}  // namespace porthole::protocol
