#pragma once
// The account key of an ACME account (ECDSA P-256) and the JSON Web Signatures
// RFC 8555 wraps every request in: flattened JWS with ES256 (RFC 7515, 7518),
// the key as a JWK and its RFC 7638 thumbprint, and the HS256 External Account
// Binding. Pure: OpenSSL signs, nothing is read.
#include <openssl/types.h>
#include <tl/expected.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace porthole::acme {

// Base64url without padding (RFC 7515 section 2).
std::string base64url(std::string_view bytes);

class account_key {
public:
    static tl::expected<account_key, std::string> generate();
    // A PKCS#8 or SEC1 PEM private key of curve P-256.
    static tl::expected<account_key, std::string> from_pem(std::string_view pem);

    std::string pem() const;  // PKCS#8, to store (0600)
    // {"crv":"P-256","kty":"EC","x":"...","y":"..."}: the members RFC 7638
    // hashes, in its order.
    const std::string& jwk() const { return jwk_; }
    const std::string& thumbprint() const { return thumbprint_; }  // base64url SHA-256 of jwk()
    // The ES256 signature of `data`: r and s, 32 bytes each (not DER).
    tl::expected<std::string, std::string> sign(std::string_view data) const;
    EVP_PKEY* get() const { return key_.get(); }

private:
    static tl::expected<account_key, std::string> adopt(EVP_PKEY* key);  // takes ownership

    std::shared_ptr<EVP_PKEY> key_;
    std::string jwk_;
    std::string thumbprint_;
};

// One request's body: the flattened JWS of `payload` (nullopt: the empty
// payload of a POST-as-GET) with the nonce and URL in its protected header, and
// `kid` (the account URL) or, while the account is being created (empty kid),
// the key itself.
tl::expected<std::string, std::string> sign_request(const account_key& key, std::string_view kid,
                                                    std::string_view nonce, std::string_view url,
                                                    std::optional<std::string_view> payload);

// The externalAccountBinding of a newAccount request (RFC 8555 section 7.3.4):
// the account's JWK signed with HS256 by the CA's MAC key (`hmac_key`,
// base64url as CAs hand it out).
tl::expected<std::string, std::string> external_account_binding(const account_key& key,
                                                                std::string_view eab_kid,
                                                                std::string_view hmac_key,
                                                                std::string_view url);

// TOKEN.THUMBPRINT (RFC 8555 section 8.1).
std::string key_authorization(std::string_view token, const account_key& key);

}  // namespace porthole::acme
