#include "policy/jwks.hpp"

#include "core/printable.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <array>
#include <memory>

namespace porthole::policy {

namespace {

using json = nlohmann::json;

struct free_pkey {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct free_pkey_ctx {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct free_bn {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
struct free_param_bld {
    void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct free_params {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct free_bio {
    void operator()(BIO* p) const { BIO_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, free_pkey>;

constexpr std::size_t max_jwks_keys = 100;

// -1: not a base64url character.
int sextet(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

// A string member of `key`; nullopt when it is absent or not a string.
std::optional<std::string> member(const json& key, const char* name) {
    const auto it = key.find(name);
    if (it == key.end() || !it->is_string()) return std::nullopt;
    return it->get_ref<const std::string&>();
}

// A key made from OSSL_PARAMs of key type `name` ("RSA", "EC"), checked as a public key.
pkey_ptr from_params(const char* name, OSSL_PARAM_BLD* bld) {
    const std::unique_ptr<OSSL_PARAM, free_params> params(OSSL_PARAM_BLD_to_param(bld));
    const std::unique_ptr<EVP_PKEY_CTX, free_pkey_ctx> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, name, nullptr));
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return nullptr;
    EVP_PKEY* made = nullptr;
    if (EVP_PKEY_fromdata(ctx.get(), &made, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) return nullptr;
    pkey_ptr key(made);
    const std::unique_ptr<EVP_PKEY_CTX, free_pkey_ctx> check(
        EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
    return key;
}

tl::expected<pkey_ptr, std::string> rsa_key(const json& key) {
    const auto n = member(key, "n");
    const auto e = member(key, "e");
    if (!n || !e) return tl::unexpected(std::string("an RSA key needs \"n\" and \"e\""));
    const auto modulus = base64url_decode(*n);
    const auto exponent = base64url_decode(*e);
    if (!modulus || !exponent || modulus->empty() || exponent->empty())
        return tl::unexpected(std::string("\"n\" or \"e\" is not base64url"));
    if (exponent->size() > 8) return tl::unexpected(std::string("\"e\" is too large"));
    const auto bytes = [](const std::string& s) {
        return std::unique_ptr<BIGNUM, free_bn>(BN_bin2bn(
            reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()), nullptr));
    };
    const auto bn_n = bytes(*modulus);
    const auto bn_e = bytes(*exponent);
    if (!bn_n || !bn_e) return tl::unexpected(std::string("out of memory"));
    const int bits = BN_num_bits(bn_n.get());
    if (bits < 2048 || bits > 8192)
        return tl::unexpected(fmt::format("an RSA key of {} bits (2048 to 8192 are taken)", bits));
    const std::unique_ptr<OSSL_PARAM_BLD, free_param_bld> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
        return tl::unexpected(std::string("out of memory"));
    auto made = from_params("RSA", bld.get());
    if (!made) return tl::unexpected(std::string("not a valid RSA public key"));
    return made;
}

tl::expected<pkey_ptr, std::string> ec_key(const json& key) {
    const auto crv = member(key, "crv");
    if (!crv || *crv != "P-256")
        return tl::unexpected(fmt::format("EC curve \"{}\" (only P-256 is taken)",
                                          core::printable(crv.value_or(""))));
    const auto x = member(key, "x");
    const auto y = member(key, "y");
    const auto xb = x ? base64url_decode(*x) : std::nullopt;
    const auto yb = y ? base64url_decode(*y) : std::nullopt;
    // RFC 7518 section 6.2.1.2: each coordinate is the full 32 bytes.
    if (!xb || !yb || xb->size() != 32 || yb->size() != 32)
        return tl::unexpected(std::string("an EC key needs \"x\" and \"y\" of 32 bytes each"));
    std::array<unsigned char, 65> point{};
    point[0] = 0x04;  // uncompressed
    std::copy(xb->begin(), xb->end(), point.begin() + 1);
    std::copy(yb->begin(), yb->end(), point.begin() + 33);
    const std::unique_ptr<OSSL_PARAM_BLD, free_param_bld> bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1)
        return tl::unexpected(std::string("out of memory"));
    auto made = from_params("EC", bld.get());
    if (!made) return tl::unexpected(std::string("not a point on P-256"));
    return made;
}

tl::expected<pkey_ptr, std::string> okp_key(const json& key) {
    const auto crv = member(key, "crv");
    if (!crv || *crv != "Ed25519")
        return tl::unexpected(fmt::format("OKP curve \"{}\" (only Ed25519 is taken)",
                                          core::printable(crv.value_or(""))));
    const auto x = member(key, "x");
    const auto xb = x ? base64url_decode(*x) : std::nullopt;
    if (!xb || xb->size() != 32)
        return tl::unexpected(std::string("an Ed25519 key needs \"x\" of 32 bytes"));
    pkey_ptr made(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(xb->data()), 32));
    if (!made) return tl::unexpected(std::string("not a valid Ed25519 public key"));
    return made;
}

std::string pem_of(EVP_PKEY* key) {
    const std::unique_ptr<BIO, free_bio> out(BIO_new(BIO_s_mem()));
    if (!out || PEM_write_bio_PUBKEY(out.get(), key) != 1) return {};
    char* data = nullptr;
    const long size = BIO_get_mem_data(out.get(), &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

// One member of "keys": the key, or why it is skipped.
tl::expected<jwk, std::string> read_key(const json& key) {
    if (!key.is_object()) return tl::unexpected(std::string("not a JSON object"));
    const auto kty = member(key, "kty");
    if (!kty) return tl::unexpected(std::string("no \"kty\""));
    if (const auto use = member(key, "use"); use && *use != "sig")
        return tl::unexpected(
            fmt::format("\"use\": \"{}\" (not for signatures)", core::printable(*use)));
    if (const auto ops = key.find("key_ops"); ops != key.end()) {
        const bool verifies =
            ops->is_array() && std::any_of(ops->begin(), ops->end(), [](auto& o) {
                return o.is_string() && o.template get_ref<const std::string&>() == "verify";
            });
        if (!verifies) return tl::unexpected(std::string("\"key_ops\" without \"verify\""));
    }
    jwk out;
    tl::expected<pkey_ptr, std::string> made = tl::unexpected(std::string());
    if (*kty == "RSA") {
        out.kind = jwk::type::rsa;
        made = rsa_key(key);
    } else if (*kty == "EC") {
        out.kind = jwk::type::ec_p256;
        made = ec_key(key);
    } else if (*kty == "OKP") {
        out.kind = jwk::type::ed25519;
        made = okp_key(key);
    } else if (*kty == "oct") {
        return tl::unexpected(
            std::string("a symmetric key (\"oct\"): give an HS256 secret as the policy's secret"));
    } else {
        return tl::unexpected(
            fmt::format("key type \"{}\" (RSA, EC and OKP are taken)", core::printable(*kty)));
    }
    if (!made) return tl::unexpected(made.error());
    if (const auto alg = member(key, "alg")) {
        if (key_type_for(*alg) != out.kind)
            return tl::unexpected(fmt::format("\"alg\": \"{}\" is not taken for a {} key",
                                              core::printable(*alg), *kty));
        out.alg = *alg;
    }
    if (const auto kid = key.find("kid"); kid != key.end()) {
        if (!kid->is_string()) return tl::unexpected(std::string("\"kid\" is not a string"));
        out.kid = kid->get_ref<const std::string&>();
    }
    out.pem = pem_of(made->get());
    if (out.pem.empty()) return tl::unexpected(std::string("cannot be written as PEM"));
    out.key = std::shared_ptr<EVP_PKEY>(made->release(), EVP_PKEY_free);
    return out;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view text) {
    while (text.ends_with('=')) text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t bits = 0;
    int count = 0;
    for (const char c : text) {
        const int v = sextet(c);
        if (v < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out.push_back(static_cast<char>((bits >> count) & 0xff));
        }
    }
    return out;
}

std::optional<jwk::type> key_type_for(std::string_view alg) {
    if (alg == "RS256") return jwk::type::rsa;
    if (alg == "ES256") return jwk::type::ec_p256;
    if (alg == "EdDSA") return jwk::type::ed25519;
    return std::nullopt;
}

tl::expected<jwk_set, std::string> parse_jwks(std::string_view text) {
    const json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded()) return tl::unexpected(std::string("not JSON"));
    if (!doc.is_object()) return tl::unexpected(std::string("not a JSON object"));
    const auto keys = doc.find("keys");
    if (keys == doc.end() || !keys->is_array())
        return tl::unexpected(std::string("no \"keys\" array (a JWK Set is {\"keys\": [...]})"));
    if (keys->size() > max_jwks_keys)
        return tl::unexpected(fmt::format("more than {} keys", max_jwks_keys));
    jwk_set out;
    std::size_t i = 0;
    for (const auto& key : *keys) {
        auto read = read_key(key);
        if (read) {
            out.keys.push_back(std::move(*read));
        } else {
            const auto kid = key.is_object() ? member(key, "kid") : std::nullopt;
            out.skipped.push_back(
                kid ? fmt::format("key \"{}\": {}", core::printable(*kid), read.error())
                    : fmt::format("key {}: {}", i, read.error()));
        }
        ++i;
    }
    return out;
}

}  // namespace porthole::policy
