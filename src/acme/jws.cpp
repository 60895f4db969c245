#include "acme/jws.hpp"

#include "core/openssl_owned.hpp"
#include "core/sha256.hpp"
#include "policy/jwks.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <nlohmann/json.hpp>

#include <array>

namespace porthole::acme {

using core::openssl_error;
using core::owned;

namespace {

std::string coordinate(EVP_PKEY* key, const char* name) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return {};
    const owned<BIGNUM, BN_free> bn(raw);
    std::array<unsigned char, 32> bytes{};
    if (BN_bn2binpad(bn.get(), bytes.data(), bytes.size()) != 32) return {};
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool is_p256(EVP_PKEY* key) {
    char group[64] = {};
    std::size_t len = 0;
    return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
           EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                          &len) == 1 &&
           std::string_view(group, len) == "prime256v1";
}

}  // namespace

std::string base64url(std::string_view bytes) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    const auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const unsigned v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
        for (int shift : {18, 12, 6, 0}) out += alphabet[(v >> shift) & 63];
    }
    if (bytes.size() - i == 1) {
        const unsigned v = at(i) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (bytes.size() - i == 2) {
        const unsigned v = at(i) << 16 | at(i + 1) << 8;
        for (int shift : {18, 12, 6}) out += alphabet[(v >> shift) & 63];
    }
    return out;
}

tl::expected<account_key, std::string> account_key::adopt(EVP_PKEY* key) {
    account_key out;
    out.key_.reset(key, EVP_PKEY_free);
    if (!is_p256(key)) return tl::unexpected(std::string("not an ECDSA P-256 key"));
    const nlohmann::json jwk = {{"crv", "P-256"},
                                {"kty", "EC"},
                                {"x", base64url(coordinate(key, OSSL_PKEY_PARAM_EC_PUB_X))},
                                {"y", base64url(coordinate(key, OSSL_PKEY_PARAM_EC_PUB_Y))}};
    out.jwk_ = jwk.dump();  // nlohmann orders members by name: RFC 7638's order
    out.thumbprint_ = base64url(core::sha256_bytes(out.jwk_));
    return out;
}

tl::expected<account_key, std::string> account_key::generate() {
    EVP_PKEY* made = EVP_EC_gen("P-256");
    if (!made) return tl::unexpected("cannot make an account key: " + openssl_error());
    return adopt(made);
}

tl::expected<account_key, std::string> account_key::from_pem(std::string_view pem) {
    const owned<BIO, BIO_free> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    EVP_PKEY* read = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (!read) {
        ERR_clear_error();
        return tl::unexpected(std::string("not a PEM private key"));
    }
    return adopt(read);
}

std::string account_key::pem() const { return core::pem_text(key_.get()); }

tl::expected<std::string, std::string> account_key::sign(std::string_view data) const {
    const owned<EVP_MD_CTX, EVP_MD_CTX_free> md(EVP_MD_CTX_new());
    std::size_t len = 0;
    if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) != 1)
        return tl::unexpected("cannot sign: " + openssl_error());
    std::string der(len, '\0');
    if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
        return tl::unexpected("cannot sign: " + openssl_error());
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    const owned<ECDSA_SIG, ECDSA_SIG_free> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
    if (!sig) return tl::unexpected("cannot sign: " + openssl_error());
    std::array<unsigned char, 64> rs{};
    if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), rs.data(), 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), rs.data() + 32, 32) != 32)
        return tl::unexpected(std::string("cannot sign: a signature out of range"));
    return std::string(reinterpret_cast<const char*>(rs.data()), rs.size());
}

tl::expected<std::string, std::string> sign_request(const account_key& key, std::string_view kid,
                                                    std::string_view nonce, std::string_view url,
                                                    std::optional<std::string_view> payload) {
    nlohmann::json header = {{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
    if (kid.empty())
        header["jwk"] = nlohmann::json::parse(key.jwk());
    else
        header["kid"] = kid;
    const std::string protected_b64 = base64url(header.dump());
    const std::string payload_b64 = payload ? base64url(*payload) : std::string();
    auto signature = key.sign(protected_b64 + "." + payload_b64);
    if (!signature) return tl::unexpected(signature.error());
    const nlohmann::json jws = {{"protected", protected_b64},
                                {"payload", payload_b64},
                                {"signature", base64url(*signature)}};
    return jws.dump();
}

tl::expected<std::string, std::string> external_account_binding(const account_key& key,
                                                                std::string_view eab_kid,
                                                                std::string_view hmac_key,
                                                                std::string_view url) {
    const auto mac_key = policy::base64url_decode(hmac_key);
    if (!mac_key || mac_key->empty())
        return tl::unexpected(std::string("eab_hmac is not a base64url key"));
    const nlohmann::json header = {{"alg", "HS256"}, {"kid", eab_kid}, {"url", url}};
    const std::string protected_b64 = base64url(header.dump());
    const std::string payload_b64 = base64url(key.jwk());
    const std::string input = protected_b64 + "." + payload_b64;
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned len = 0;
    if (!HMAC(EVP_sha256(), mac_key->data(), static_cast<int>(mac_key->size()),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &len))
        return tl::unexpected("cannot sign the account binding: " + openssl_error());
    const nlohmann::json jws = {
        {"protected", protected_b64},
        {"payload", payload_b64},
        {"signature", base64url({reinterpret_cast<const char*>(mac.data()), len})}};
    return jws.dump();
}

std::string key_authorization(std::string_view token, const account_key& key) {
    return std::string(token) + "." + key.thumbprint();
}

}  // namespace porthole::acme
