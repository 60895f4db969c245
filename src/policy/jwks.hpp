#pragma once
// A JSON Web Key Set (RFC 7517) -> the public keys a jwt policy verifies signatures with, each as
// a PEM SubjectPublicKeyInfo (what libjwt takes) and as an OpenSSL key. RSA (2048 to 8192 bits),
// EC P-256 and Ed25519 keys are kept; keys of another type or curve, or not meant for
// signatures, are skipped as RFC 7517 section 5 asks, each with the reason. Pure: OpenSSL builds
// the keys, nothing is read.
#include <openssl/types.h>
#include <tl/expected.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::policy {

struct jwk {
    enum class type { rsa, ec_p256, ed25519 };
    type kind = type::rsa;
    std::string kid;  // empty when the key has none
    std::string alg;  // the key's own "alg" (RS256, ES256 or EdDSA), empty when it has none
    std::string pem;  // -----BEGIN PUBLIC KEY-----
    std::shared_ptr<EVP_PKEY> key;  // the same key, read once (EdDSA is checked with it)
    bool operator==(const jwk& o) const {
        return kind == o.kind && kid == o.kid && alg == o.alg && pem == o.pem;
    }
};

struct jwk_set {
    std::vector<jwk> keys;
    std::vector<std::string> skipped;  // why each key left out was left out
};

// Fails only when `json` is not a JWK Set at all (not JSON, no "keys" array); a set whose every
// key was skipped comes back with no keys.
tl::expected<jwk_set, std::string> parse_jwks(std::string_view json);

// The key type a JWS "alg" needs: RS256 -> rsa, ES256 -> ec_p256, EdDSA -> ed25519.
std::optional<jwk::type> key_type_for(std::string_view alg);

// Base64url without padding (RFC 7515 section 2); trailing '=' is tolerated. nullopt when `text`
// holds another character or cannot be a whole encoding.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace porthole::policy
