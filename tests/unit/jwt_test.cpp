// The jwt policy's pure parts: JWK Sets -> keys, the checks a token passes or fails (tokens are
// signed here with keys made here, by OpenSSL), claims -> header fields, its config table, and
// the reading of a fetched JWK Set's HTTP response.
#include "config/policy_config.hpp"
#include "config/server_config.hpp"
#include "policy/jwks.hpp"
#include "policy/jwks_fetch.hpp"
#include "policy/jwt_auth.hpp"
#include "site_policy_text.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace porthole::policy {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string b64url(std::string_view bytes) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    for (const unsigned char c : bytes) {
        bits = (bits << 8) | c;
        count += 8;
        while (count >= 6) {
            count -= 6;
            out.push_back(alphabet[(bits >> count) & 63]);
        }
    }
    if (count > 0) out.push_back(alphabet[(bits << (6 - count)) & 63]);
    return out;
}

struct pkey_deleter {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using pkey = std::shared_ptr<EVP_PKEY>;

pkey make_key(const char* type) {
    EVP_PKEY* k = std::string_view(type) == "RSA"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                  : std::string_view(type) == "EC"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    return pkey(k, pkey_deleter{});
}

std::string bn_bytes(const EVP_PKEY* k, const char* name, int pad = 0) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(k, name, &bn);
    std::string out(
        pad ? static_cast<std::size_t>(pad) : static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    BN_free(bn);
    return out;
}

// The public JWK of `k`.
json jwk_of(const pkey& k, const std::string& kid) {
    json j;
    switch (EVP_PKEY_get_base_id(k.get())) {
        case EVP_PKEY_RSA:
            j = {{"kty", "RSA"},
                 {"n", b64url(bn_bytes(k.get(), OSSL_PKEY_PARAM_RSA_N))},
                 {"e", b64url(bn_bytes(k.get(), OSSL_PKEY_PARAM_RSA_E))}};
            break;
        case EVP_PKEY_EC:
            j = {{"kty", "EC"},
                 {"crv", "P-256"},
                 {"x", b64url(bn_bytes(k.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32))},
                 {"y", b64url(bn_bytes(k.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
            break;
        default: {
            unsigned char raw[32];
            std::size_t len = sizeof raw;
            EVP_PKEY_get_raw_public_key(k.get(), raw, &len);
            j = {{"kty", "OKP"},
                 {"crv", "Ed25519"},
                 {"x", b64url(std::string_view(reinterpret_cast<char*>(raw), len))}};
        }
    }
    if (!kid.empty()) j["kid"] = kid;
    return j;
}

std::string pem_of(const pkey& k) {
    BIO* out = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(out, k.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(out, &data);
    std::string pem(data, static_cast<std::size_t>(n));
    BIO_free(out);
    return pem;
}

std::string sign(const pkey& k, std::string_view input) {
    const int id = EVP_PKEY_get_base_id(k.get());
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, nullptr, id == EVP_PKEY_ED25519 ? nullptr : EVP_sha256(), nullptr,
                       k.get());
    std::size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (id != EVP_PKEY_EC) return sig;
    // JWS wants ECDSA's r and s as two 32-byte numbers, not DER.
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* der = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(der), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(der), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(der);
    return raw;
}

std::string hmac(std::string_view secret, std::string_view input) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string token(const json& header, const json& claims, const pkey& k) {
    const std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
    return input + "." + b64url(sign(k, input));
}

std::string hs256_token(const json& claims, std::string_view secret,
                        json header = {{"alg", "HS256"}, {"typ", "JWT"}}) {
    const std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
    return input + "." + b64url(hmac(secret, input));
}

// Keys made once: an RSA key takes a while.
struct keys {
    pkey rsa = make_key("RSA"), rsa2 = make_key("RSA"), ec = make_key("EC"), ed = make_key("ED");
};
const keys& test_keys() {
    static const keys k;
    return k;
}

constexpr std::int64_t now_s = 1'700'000'000;
const std::string secret = "a shared secret of more than 32 bytes, for HS256";

config::jwt_settings settings() {
    config::jwt_settings s;
    s.algorithms = {"RS256", "ES256", "EdDSA"};
    s.issuer = "https://idp.example/";
    s.audience = "shop-api";
    s.claims_to_headers = {{"sub", "X-User"}, {"email", "X-Email"}};
    return s;
}

key_ring::key_set keys_of(const json& jwks) {
    auto set = parse_jwks(jwks.dump());
    EXPECT_TRUE(set) << set.error();
    return set ? set->keys : key_ring::key_set{};
}

std::shared_ptr<key_ring> ring_of(const json& jwks) {
    return std::make_shared<key_ring>("", keys_of(jwks));
}

json standard_jwks() {
    const auto& k = test_keys();
    return {{"keys", {jwk_of(k.rsa, "r1"), jwk_of(k.ec, "e1"), jwk_of(k.ed, "d1")}}};
}

jwt_auth policy_of(config::jwt_settings s, std::shared_ptr<const key_ring> ring) {
    return jwt_auth(s, std::move(ring),
                    [] { return jwt_auth::clock::time_point(std::chrono::seconds(now_s)); });
}

json good_claims() {
    return {{"iss", "https://idp.example/"}, {"aud", "shop-api"},  {"sub", "alice"},
            {"email", "alice@example.com"},  {"exp", now_s + 300}, {"nbf", now_s - 10}};
}

json head(const char* alg, const char* kid) {
    json h = {{"alg", alg}, {"typ", "JWT"}};
    if (kid) h["kid"] = kid;
    return h;
}

std::string verdict(jwt_auth& p, const std::string& t) {
    auto r = p.verify(t);
    return r ? std::string("ok") : std::string(r.error());
}

// -- JWK Sets ---------------------------------------------------------------------------------

TEST(Base64url, DecodesWithoutPaddingAndRefusesOtherAlphabets) {
    EXPECT_EQ(base64url_decode("aGVsbG8"), "hello");
    EXPECT_EQ(base64url_decode("aGVsbG8="), "hello");
    EXPECT_EQ(base64url_decode(""), "");
    EXPECT_EQ(base64url_decode("-_8"), std::string("\xfb\xff", 2));
    EXPECT_FALSE(base64url_decode("+/8"));
    EXPECT_FALSE(base64url_decode("a"));  // one character cannot be a whole byte
    EXPECT_FALSE(base64url_decode("aGV sbG8"));
}

TEST(Jwks, RsaEcAndEd25519KeysBecomeThePemsOfTheSameKeys) {
    const auto& k = test_keys();
    auto set = parse_jwks(standard_jwks().dump());
    ASSERT_TRUE(set) << set.error();
    ASSERT_EQ(set->keys.size(), 3u);
    EXPECT_TRUE(set->skipped.empty());
    EXPECT_EQ(set->keys[0].kind, jwk::type::rsa);
    EXPECT_EQ(set->keys[0].kid, "r1");
    EXPECT_EQ(set->keys[0].pem, pem_of(k.rsa));
    EXPECT_EQ(set->keys[1].kind, jwk::type::ec_p256);
    EXPECT_EQ(set->keys[1].pem, pem_of(k.ec));
    EXPECT_EQ(set->keys[2].kind, jwk::type::ed25519);
    EXPECT_EQ(set->keys[2].pem, pem_of(k.ed));
    for (std::size_t i = 0; i < 3; ++i) {
        const pkey& original = i == 0 ? k.rsa : i == 1 ? k.ec : k.ed;
        EXPECT_EQ(EVP_PKEY_eq(set->keys[i].key.get(), original.get()), 1) << i;
    }
}

TEST(Jwks, KeysThisPolicyCannotUseAreSkippedWithTheReason) {
    const auto& k = test_keys();
    json enc = jwk_of(k.rsa, "enc");
    enc["use"] = "enc";
    json ops = jwk_of(k.rsa, "ops");
    ops["key_ops"] = {"encrypt"};
    json p384 = jwk_of(k.ec, "p384");
    p384["crv"] = "P-384";
    json short_x = jwk_of(k.ec, "short");
    short_x["x"] = b64url(std::string(31, 'a'));
    json off_curve = jwk_of(k.ec, "off");
    off_curve["y"] = b64url(std::string(32, '\x01'));
    json small = {
        {"kty", "RSA"}, {"kid", "small"}, {"n", b64url(std::string(128, '\xc5'))}, {"e", "AQAB"}};
    json wrong_alg = jwk_of(k.ed, "alg");
    wrong_alg["alg"] = "RS256";
    json oct = {{"kty", "oct"}, {"kid", "oct"}, {"k", b64url(secret)}};
    json ed448 = {{"kty", "OKP"}, {"crv", "Ed448"}, {"kid", "448"}, {"x", "AA"}};
    json bad_b64 = jwk_of(k.rsa, "b64");
    bad_b64["n"] = "not base64url!";
    json keep = jwk_of(k.ed, "keep");
    keep["alg"] = "EdDSA";
    keep["use"] = "sig";
    const json set_json = {{"keys",
                            {enc, ops, p384, short_x, off_curve, small, wrong_alg, oct, ed448,
                             bad_b64, "not an object", json::object(), keep}}};
    auto set = parse_jwks(set_json.dump());
    ASSERT_TRUE(set) << set.error();
    ASSERT_EQ(set->keys.size(), 1u);
    EXPECT_EQ(set->keys[0].kid, "keep");
    EXPECT_EQ(set->keys[0].alg, "EdDSA");
    ASSERT_EQ(set->skipped.size(), 12u);
    const auto said = [&](std::size_t i, std::string_view what) {
        return set->skipped[i].find(what) != std::string::npos;
    };
    EXPECT_TRUE(said(0, "not for signatures")) << set->skipped[0];
    EXPECT_TRUE(said(1, "key_ops")) << set->skipped[1];
    EXPECT_TRUE(said(2, "P-384")) << set->skipped[2];
    EXPECT_TRUE(said(3, "32 bytes")) << set->skipped[3];
    EXPECT_TRUE(said(4, "not a point on P-256")) << set->skipped[4];
    EXPECT_TRUE(said(5, "1024 bits")) << set->skipped[5];
    EXPECT_TRUE(said(6, "\"alg\": \"RS256\"")) << set->skipped[6];
    EXPECT_TRUE(said(7, "secret")) << set->skipped[7];
    EXPECT_TRUE(said(8, "Ed448")) << set->skipped[8];
    EXPECT_TRUE(said(9, "base64url")) << set->skipped[9];
    EXPECT_TRUE(said(10, "key 10: not a JSON object")) << set->skipped[10];
    EXPECT_TRUE(said(11, "no \"kty\"")) << set->skipped[11];
}

TEST(Jwks, WhatIsNotAJwkSetAtAllFails) {
    for (const char* bad : {"", "{", "[]", "{\"keys\": {}}", "{\"key\": []}", "null", "\"keys\""})
        EXPECT_FALSE(parse_jwks(bad)) << bad;
    json many = {{"keys", json::array()}};
    for (int i = 0; i < 101; ++i) many["keys"].push_back(json::object());
    EXPECT_FALSE(parse_jwks(many.dump()));
    auto empty = parse_jwks("{\"keys\": []}");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->keys.empty());
}

// -- tokens ----------------------------------------------------------------------------------

TEST(JwtAuth, TokensSignedWithEachAlgorithmPass) {
    const auto& k = test_keys();
    auto p = policy_of(settings(), ring_of(standard_jwks()));
    EXPECT_EQ(verdict(p, token(head("RS256", "r1"), good_claims(), k.rsa)), "ok");
    EXPECT_EQ(verdict(p, token(head("ES256", "e1"), good_claims(), k.ec)), "ok");
    EXPECT_EQ(verdict(p, token(head("EdDSA", "d1"), good_claims(), k.ed)), "ok");
    // Without a kid every key of the algorithm's type is tried.
    EXPECT_EQ(verdict(p, token(head("RS256", nullptr), good_claims(), k.rsa)), "ok");
    EXPECT_EQ(verdict(p, token(head("EdDSA", nullptr), good_claims(), k.ed)), "ok");
    auto claims = p.verify(token(head("ES256", "e1"), good_claims(), k.ec));
    ASSERT_TRUE(claims);
    EXPECT_EQ((*claims)["sub"], "alice");

    auto hs = settings();
    hs.algorithms = {"HS256"};
    auto h = policy_of(hs, std::make_shared<key_ring>(secret));
    EXPECT_EQ(verdict(h, hs256_token(good_claims(), secret)), "ok");
    EXPECT_EQ(verdict(h, hs256_token(good_claims(), secret + "x")), "signature");
}

TEST(JwtAuth, TheTimeWindowHasLeeway) {
    const auto& k = test_keys();
    auto p = policy_of(settings(), ring_of(standard_jwks()));  // leeway 30 s
    const auto with = [&](const char* name, std::int64_t value) {
        json c = good_claims();
        c[name] = value;
        return verdict(p, token(head("RS256", "r1"), c, k.rsa));
    };
    EXPECT_EQ(with("exp", now_s - 31), "expired");
    EXPECT_EQ(with("exp", now_s - 30), "expired");  // exp is the first moment it is not valid
    EXPECT_EQ(with("exp", now_s - 29), "ok");
    EXPECT_EQ(with("nbf", now_s + 31), "not yet valid");
    EXPECT_EQ(with("nbf", now_s + 30), "ok");
    json fractional = good_claims();
    fractional["exp"] = static_cast<double>(now_s) - 29.5;
    EXPECT_EQ(verdict(p, token(head("RS256", "r1"), fractional, k.rsa)), "ok");
    json text_exp = good_claims();
    text_exp["exp"] = std::to_string(now_s + 100);
    EXPECT_EQ(verdict(p, token(head("RS256", "r1"), text_exp, k.rsa)), "malformed");
    json no_times = good_claims();
    no_times.erase("exp");
    no_times.erase("nbf");
    EXPECT_EQ(verdict(p, token(head("RS256", "r1"), no_times, k.rsa)), "ok");
    auto strict = settings();
    strict.leeway = 0s;
    auto q = policy_of(strict, ring_of(standard_jwks()));
    json just = good_claims();
    just["exp"] = now_s;
    EXPECT_EQ(verdict(q, token(head("RS256", "r1"), just, k.rsa)), "expired");
}

TEST(JwtAuth, IssuerAndAudienceMustMatch) {
    const auto& k = test_keys();
    auto p = policy_of(settings(), ring_of(standard_jwks()));
    const auto with = [&](const char* name, json value) {
        json c = good_claims();
        if (value.is_null())
            c.erase(name);
        else
            c[name] = value;
        return verdict(p, token(head("ES256", "e1"), c, k.ec));
    };
    EXPECT_EQ(with("iss", "https://evil.example/"), "issuer");
    EXPECT_EQ(with("iss", "https://idp.example"), "issuer");  // exactly, slash and all
    EXPECT_EQ(with("iss", nullptr), "issuer");
    EXPECT_EQ(with("aud", "other-api"), "audience");
    EXPECT_EQ(with("aud", json::array({"other-api", "shop-api"})), "ok");
    EXPECT_EQ(with("aud", json::array({"other-api"})), "audience");
    EXPECT_EQ(with("aud", nullptr), "audience");
    auto any = settings();
    any.issuer.clear();
    any.audience.clear();
    auto q = policy_of(any, ring_of(standard_jwks()));
    json c = good_claims();
    c.erase("iss");
    c.erase("aud");
    EXPECT_EQ(verdict(q, token(head("ES256", "e1"), c, k.ec)), "ok");
}

TEST(JwtAuth, WrongKeysAndAlgorithmsAreRefusedBeforeAnyClaimIsRead) {
    const auto& k = test_keys();
    auto p = policy_of(settings(), ring_of(standard_jwks()));
    // Another key, claiming a known kid and none.
    EXPECT_EQ(verdict(p, token(head("RS256", "r1"), good_claims(), k.rsa2)), "signature");
    EXPECT_EQ(verdict(p, token(head("RS256", nullptr), good_claims(), k.rsa2)), "signature");
    // Claims changed after signing.
    std::string t = token(head("RS256", "r1"), good_claims(), k.rsa);
    json evil = good_claims();
    evil["sub"] = "admin";
    const auto dot1 = t.find('.'), dot2 = t.rfind('.');
    EXPECT_EQ(verdict(p, t.substr(0, dot1 + 1) + b64url(evil.dump()) + t.substr(dot2)),
              "signature");
    // An expired token with a bad signature: the signature is what fails.
    json old = good_claims();
    old["exp"] = now_s - 1000;
    EXPECT_EQ(verdict(p, token(head("RS256", "r1"), old, k.rsa2)), "signature");
    EXPECT_EQ(verdict(p, token(head("RS256", "nope"), good_claims(), k.rsa)), "no key for kid");
    // The kid names an EC key, the token says RS256.
    EXPECT_EQ(verdict(p, token(head("RS256", "e1"), good_claims(), k.rsa)), "algorithm");
    // alg none, unsigned and with an empty signature.
    const std::string unsigned_token = b64url(json({{"alg", "none"}, {"typ", "JWT"}}).dump()) +
                                       "." + b64url(good_claims().dump()) + ".";
    EXPECT_EQ(verdict(p, unsigned_token), "algorithm");
    EXPECT_EQ(verdict(p, unsigned_token + b64url("x")), "algorithm");
    // HS256 is not in the list: a token MACed with the RSA key's PEM as the secret gets nowhere.
    EXPECT_EQ(verdict(p, hs256_token(good_claims(), pem_of(k.rsa), head("HS256", "r1"))),
              "algorithm");
    auto both = settings();
    both.algorithms = {"RS256", "HS256"};
    auto q = policy_of(both, ring_of(standard_jwks()));
    EXPECT_EQ(verdict(q, hs256_token(good_claims(), pem_of(k.rsa), head("HS256", "r1"))),
              "no key for algorithm");
    auto rs_only = settings();
    rs_only.algorithms = {"RS256"};
    auto r = policy_of(rs_only, ring_of(standard_jwks()));
    EXPECT_EQ(verdict(r, token(head("ES256", "e1"), good_claims(), k.ec)), "algorithm");
    // A JWK whose own alg differs from the token's is not used.
    json pinned = jwk_of(k.rsa, "r1");
    pinned["alg"] = "RS256";
    auto s = policy_of(settings(), ring_of({{"keys", {pinned}}}));
    EXPECT_EQ(verdict(s, token(head("RS256", "r1"), good_claims(), k.rsa)), "ok");
}

TEST(JwtAuth, MalformedTokensAndAnEmptyRing) {
    const auto& k = test_keys();
    auto p = policy_of(settings(), ring_of(standard_jwks()));
    const std::string good = token(head("EdDSA", "d1"), good_claims(), k.ed);
    const auto parts = [&](const json& h, const std::string& claims_part) {
        const std::string input = b64url(h.dump()) + "." + claims_part;
        return input + "." + b64url(sign(k.ed, input));
    };
    for (const std::string& bad :
         {std::string(), std::string("abc"), std::string("a.b"), good + ".x", good + " ",
          std::string("!!.!!.!!"), parts(head("EdDSA", "d1"), b64url("[1,2]")),
          parts(head("EdDSA", "d1"), b64url("not json")), parts(head("EdDSA", "d1"), "a"),
          b64url("{}") + "." + b64url("{}") + ".sig",
          parts({{"alg", "EdDSA"}, {"crit", {"exp"}}}, b64url(good_claims().dump())),
          parts({{"alg", "EdDSA"}, {"typ", "at+jwt"}}, b64url(good_claims().dump())),
          parts({{"alg", "EdDSA"}, {"kid", 7}}, b64url(good_claims().dump())),
          parts({{"alg", 5}}, b64url(good_claims().dump())), good.substr(0, good.rfind('.') + 1),
          std::string(20000, 'a')})
        EXPECT_EQ(verdict(p, bad), "malformed") << bad;
    EXPECT_EQ(verdict(p, parts({{"alg", "EdDSA"}, {"typ", "jwt"}}, b64url(good_claims().dump()))),
              "ok");
    auto empty = policy_of(settings(), std::make_shared<key_ring>());
    EXPECT_EQ(verdict(empty, good), "no keys");
}

TEST(JwtAuth, AVerifiedTokenIsCheckedAgainWhenTheKeysChange) {
    const auto& k = test_keys();
    auto ring = ring_of(standard_jwks());
    auto p = policy_of(settings(), ring);
    const std::string t = token(head("RS256", "r1"), good_claims(), k.rsa);
    EXPECT_EQ(verdict(p, t), "ok");
    EXPECT_EQ(verdict(p, t), "ok");  // remembered: claims checked again, the signature not
    json old = good_claims();
    old["exp"] = now_s - 100;
    const std::string expired = token(head("RS256", "r1"), old, k.rsa);
    EXPECT_EQ(verdict(p, expired), "expired");
    EXPECT_EQ(verdict(p, expired), "expired");
    EXPECT_FALSE(ring->replace(keys_of(standard_jwks())));  // a refresh with the same keys
    EXPECT_EQ(ring->generation(), 0u);
    EXPECT_TRUE(ring->replace(keys_of({{"keys", {jwk_of(k.rsa2, "r2")}}})));  // one drops r1
    EXPECT_EQ(ring->generation(), 1u);
    EXPECT_EQ(verdict(p, t), "no key for kid");
    EXPECT_EQ(verdict(p, token(head("RS256", "r2"), good_claims(), k.rsa2)), "ok");
}

http::message_head request_with(std::vector<http::field> fields) {
    return http::message_head{"GET", "/", 0, 11, std::move(fields)};
}

request_context context_of(const http::message_head& h) {
    return request_context{h, "shop.example", "192.0.2.7", boost::asio::ip::make_address("192.0.2.7"), false, 0, "", {}, {}, {}, UINT64_MAX};
}

TEST(JwtAuth, TheAnswerSaysWhatFailedAndClaimsReplaceTheVisitorsFields) {
    const auto& k = test_keys();
    auto p = policy_of(settings(), ring_of(standard_jwks()));
    const auto none = request_with({{"X-User", "mallory"}});
    auto r = context_of(none);
    auto a = p.on_request(r);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->status, 401u);
    EXPECT_EQ(a->fields, "WWW-Authenticate: Bearer\r\n");
    const auto basic = request_with({{"Authorization", "Basic YTpi"}});
    auto rb = context_of(basic);
    a = p.on_request(rb);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->fields, "WWW-Authenticate: Bearer\r\n");

    json expired = good_claims();
    expired["exp"] = now_s - 100;
    const auto old =
        request_with({{"Authorization", "Bearer " + token(head("RS256", "r1"), expired, k.rsa)}});
    auto ro = context_of(old);
    a = p.on_request(ro);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->status, 401u);
    EXPECT_EQ(
        a->fields,
        "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"expired\"\r\n");

    const std::string t = token(head("RS256", "r1"), good_claims(), k.rsa);
    const auto twice =
        request_with({{"Authorization", "Bearer " + t}, {"authorization", "Bearer x"}});
    auto rt = context_of(twice);
    a = p.on_request(rt);
    ASSERT_TRUE(a);
    EXPECT_NE(a->fields.find("malformed"), std::string::npos);

    json no_email = good_claims();
    no_email.erase("email");
    const auto ok = request_with(
        {{"authorization", "bearer  " + token(head("RS256", "r1"), no_email, k.rsa) + " "},
         {"X-User", "mallory"},
         {"X-Email", "mallory@example.com"}});
    auto rk = context_of(ok);
    EXPECT_FALSE(p.on_request(rk));
    EXPECT_TRUE(rk.request.removes("x-user"));
    EXPECT_TRUE(rk.request.removes("x-email"));  // absent from the token: the visitor's goes too
    ASSERT_EQ(rk.request.add.size(), 1u);
    EXPECT_EQ(rk.request.add[0].name, "X-User");
    EXPECT_EQ(rk.request.add[0].value, "alice");
    EXPECT_FALSE(rk.request.removes("authorization"));

    auto hidden = settings();
    hidden.forward_token = false;
    auto q = policy_of(hidden, ring_of(standard_jwks()));
    auto rh = context_of(ok);
    EXPECT_FALSE(q.on_request(rh));
    EXPECT_TRUE(rh.request.removes("authorization"));
}

TEST(JwtAuth, ClaimValuesAsFieldValues) {
    EXPECT_EQ(claim_field_value("alice"), "alice");
    EXPECT_EQ(claim_field_value(42), "42");
    EXPECT_EQ(claim_field_value(true), "true");
    EXPECT_EQ(claim_field_value(json::array({"a", "b", 3})), "a, b, 3");
    EXPECT_EQ(claim_field_value(json({{"k", "v\xc3\xa9"}})), "{\"k\":\"v\\u00e9\"}");
    EXPECT_EQ(claim_field_value(json::array({"a", json::object()})), "[\"a\",{}]");
    EXPECT_EQ(claim_field_value(json::array({"a\r\nX-Admin: 1"})), "[\"a\\r\\nX-Admin: 1\"]");
    EXPECT_FALSE(claim_field_value("a\r\nX-Admin: 1"));
    EXPECT_FALSE(claim_field_value(nullptr));
}

// -- config ------------------------------------------------------------------------------------

std::string jwt_config_error(const std::string& policy_table) {
    return test::site_policy_error("type = \"jwt\"\n" + policy_table);
}

const config::jwt_settings* loaded(const std::string& policy_table, config::server_config& cfg) {
    const std::string text =
        "[[sites]]\nhosts = [\"a.example\"]\nupstream = [\"http://127.0.0.1:9\"]\n"
        "[[sites.policies]]\ntype = \"jwt\"\n" +
        policy_table;
    auto r = config::load_server_text(text, "p.toml", cfg);
    EXPECT_TRUE(r) << r.error();
    if (!r) return nullptr;
    return std::get_if<config::jwt_settings>(&cfg.sites.sites.at(0).policies.at(0).settings);
}

TEST(JwtConfig, DefaultsAndKeySources) {
    config::server_config cfg;
    const auto* s = loaded("jwks_url = \"https://idp.example/.well-known/jwks.json\"\n", cfg);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->algorithms, (std::vector<std::string>{"RS256", "ES256", "EdDSA"}));
    EXPECT_EQ(s->leeway, 30s);
    EXPECT_EQ(s->jwks_refresh, 1h);
    EXPECT_TRUE(s->forward_token);
    config::server_config cfg2;
    s = loaded("secret = \"" + secret +
                   "\"\nleeway = \"5s\"\nforward_token = false\n"
                   "claims_to_headers = { sub = \"X-User\", \"https://x/roles\" = \"X-Roles\" }\n",
               cfg2);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->algorithms, (std::vector<std::string>{"HS256"}));
    EXPECT_EQ(s->leeway, 5s);
    EXPECT_FALSE(s->forward_token);
    ASSERT_EQ(s->claims_to_headers.size(), 2u);

    const auto dir = std::filesystem::temp_directory_path() / "porthole-jwt-test";
    std::filesystem::create_directories(dir);
    const auto file = dir / "keys.json";
    std::ofstream(file) << standard_jwks().dump();
    config::server_config cfg3;
    s = loaded("jwks_file = \"" + file.string() + "\"\n", cfg3);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->jwks, standard_jwks().dump());
    std::ofstream(file) << "{\"keys\": [{\"kty\": \"oct\", \"k\": \"AA\"}]}";
    EXPECT_NE(jwt_config_error("jwks_file = \"" + file.string() + "\"\n").find("p.toml:6: jwks_file"),
              std::string::npos);
    std::ofstream(file) << "{\"keys\": ";
    EXPECT_NE(jwt_config_error("jwks_file = \"" + file.string() + "\"\n").find("not JSON"),
              std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST(JwtConfig, ErrorsNameTheLineAndAFix) {
    const std::string url = "jwks_url = \"https://idp.example/jwks\"\n";
    const auto says = [](const std::string& error, std::string_view what) {
        return error.find(what) != std::string::npos;
    };
    EXPECT_TRUE(says(jwt_config_error(""), "p.toml:4: this jwt policy needs its keys"));
    EXPECT_TRUE(says(jwt_config_error(url + "algorithms = [\"RS256\", \"PS256\"]\n"),
                     "p.toml:7: 'algorithms': unknown algorithm \"PS256\""));
    EXPECT_TRUE(says(jwt_config_error(url + "algorithms = [\"none\"]\n"), "never accepted"));
    EXPECT_TRUE(says(jwt_config_error(url + "algorithms = []\n"), "non-empty"));
    EXPECT_TRUE(
        says(jwt_config_error("secret = \"short\"\n"), "p.toml:6: 'secret' must be at least 32"));
    EXPECT_TRUE(
        says(jwt_config_error("secret = \"" + secret + "\"\nalgorithms = [\"HS256\", \"RS256\"]\n"),
             "p.toml:7: a jwt policy with a secret checks HS256 only"));
    EXPECT_TRUE(says(jwt_config_error(url + "algorithms = [\"HS256\"]\n"), "p.toml:7: HS256 needs"));
    EXPECT_TRUE(says(jwt_config_error(url + "secret = \"" + secret + "\"\n"), "one of jwks_file"));
    EXPECT_TRUE(
        says(jwt_config_error("jwks_url = \"ftp://idp.example/jwks\"\n"),
             "p.toml:6: 'jwks_url': 'ftp://idp.example/jwks' is not an http:// or https://"));
    EXPECT_TRUE(says(jwt_config_error("jwks_url = \"https://idp.example/jwks#x\"\n"), "fragment"));
    EXPECT_TRUE(says(jwt_config_error("jwks_url = \"https://user@idp.example/jwks\"\n"), "user"));
    EXPECT_TRUE(says(jwt_config_error("secret = \"" + secret + "\"\njwks_refresh = \"1m\"\n"),
                     "p.toml:7: jwks_refresh is how often jwks_url is fetched"));
    EXPECT_TRUE(says(jwt_config_error(url + "jwks_refresh = \"500ms\"\n"), "at least \"1s\""));
    EXPECT_TRUE(
        says(jwt_config_error(url + "leeway = \"soon\"\n"), "p.toml:7: 'leeway' must be a duration"));
    EXPECT_TRUE(
        says(jwt_config_error(url + "claims_to_headers = { sub = \"Host\" }\n"), "cannot be edited"));
    EXPECT_TRUE(says(jwt_config_error(url + "claims_to_headers = { sub = \"X User\" }\n"),
                     "not a header field name"));
    EXPECT_TRUE(says(jwt_config_error(url + "audience = \"\"\n"), "non-empty"));
    EXPECT_TRUE(says(jwt_config_error(url + "jwks_fil = \"x\"\n"), "did you mean 'jwks_file'"));
    EXPECT_TRUE(says(jwt_config_error("jwks_file = \"/nonexistent/porthole-keys.json\"\n"),
                     "p.toml:6: /nonexistent/porthole-keys.json: cannot open"));
    EXPECT_EQ(
        jwt_config_error(url + "jwks_refresh = \"1s\"\nleeway = 0\nissuer = \"https://idp.example/\"\n"
                           "audience = \"shop-api\"\nalgorithms = [\"ES256\"]\n"),
        "");
}

// -- the fetched JWK Set's response ------------------------------------------------------------

TEST(JwksFetch, TheBodyOfA200InAnyFraming) {
    const std::string body = "{\"keys\": []}";
    const auto got = [](std::string_view bytes, bool eof) {
        auto r = fetched_body(bytes, eof, 1024);
        if (!r) return "error: " + r.error();
        return *r ? **r : std::string("more");
    };
    const std::string sized = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n" + body;
    EXPECT_EQ(got(sized, false), body);
    for (std::size_t cut = 0; cut < sized.size(); ++cut) {
        EXPECT_EQ(got(sized.substr(0, cut), false), "more") << cut;
        EXPECT_TRUE(got(sized.substr(0, cut), true).starts_with("error")) << cut;
    }
    const std::string chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"key\r\n7\r\ns\": "
        "[]}\r\n0\r\n\r\n";
    EXPECT_EQ(got(chunked, false), body);
    EXPECT_EQ(got(chunked.substr(0, chunked.size() - 3), false), "more");
    const std::string closing = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body;
    EXPECT_EQ(got(closing, false), "more");
    EXPECT_EQ(got(closing, true), body);
    EXPECT_EQ(got("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false),
              "error: the server answered 404");
    EXPECT_EQ(got("HTTP/1.1 301 Moved\r\nLocation: /x\r\n", false), "more");
    EXPECT_EQ(
        got("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + std::string(1025, 'x'), false),
        "error: the answer is over 1024 bytes");
    EXPECT_TRUE(got("SSH-2.0-OpenSSH\r\n\r\n", false).starts_with("error: a malformed"));
}

}  // namespace
}  // namespace porthole::policy
