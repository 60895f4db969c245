#pragma once
// jwt: 401 unless the request's `Authorization: Bearer` token is a JWS (compact JWT) signed by one
// of the policy's keys with an allowed algorithm, in its validity window (exp/nbf with leeway),
// from the configured issuer and for the configured audience. Chosen claims go upstream as
// header fields. RS256, ES256 and HS256 signatures are checked by libjwt, EdDSA (Ed25519) by
// OpenSSL (libjwt 1.10 has no EdDSA); "none" is never accepted. The token is never logged.
#include "config/policy_config.hpp"
#include "policy/key_ring.hpp"
#include "policy/policy.hpp"

#include <nlohmann/json_fwd.hpp>
#include <tl/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace porthole::policy {

// Why a token was refused: the RFC 6750 error_description the visitor gets.
namespace jwt_error {
inline constexpr std::string_view malformed = "malformed";
inline constexpr std::string_view algorithm = "algorithm";
inline constexpr std::string_view no_key_for_kid = "no key for kid";
inline constexpr std::string_view no_key = "no key for algorithm";
inline constexpr std::string_view no_keys = "no keys";
inline constexpr std::string_view signature = "signature";
inline constexpr std::string_view expired = "expired";
inline constexpr std::string_view not_yet_valid = "not yet valid";
inline constexpr std::string_view issuer = "issuer";
inline constexpr std::string_view audience = "audience";
}  // namespace jwt_error

class jwt_auth final : public policy {
public:
    using clock = std::chrono::system_clock;
    jwt_auth(const config::jwt_settings& s, std::shared_ptr<const key_ring> keys,
             std::function<clock::time_point()> now = clock::now);
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "jwt"; }
    // Each event loop's copy keeps its own cache of tokens; a jwks_url's ring, refilled on the
    // first loop, is read by all of them (policy/key_ring.hpp).

    // The claims of a token that passes every check, else which check failed.
    tl::expected<nlohmann::json, std::string_view> verify(std::string_view token);

private:
    bool signed_by(std::string_view token, const std::string& alg, const std::string& kid,
                   std::string_view& failure) const;

    std::vector<std::string> algorithms_;
    std::string issuer_, audience_;
    std::chrono::milliseconds leeway_;
    std::vector<std::pair<std::string, std::string>> claims_to_headers_;
    bool forward_token_;
    std::shared_ptr<const key_ring> ring_;
    key_ring::snapshot keys_;  // the ring's keys when this policy last looked
    std::function<clock::time_point()> now_;
    // Digests of tokens whose signature checked out with the ring's keys of `verified_keys_`
    // (a generation):
    // OpenSSL 3 takes longer to read a PEM key than to verify with it, so a visitor's repeated
    // requests are verified once (their claims every time). Bounded; emptied when full or when
    // the keys change.
    std::unordered_set<std::string> verified_;
    std::uint64_t verified_keys_ = 0;
};

// A claim's value as a header field value: strings as they are, numbers and booleans as JSON
// writes them, an array of those joined by ", ", anything else as compact JSON; nullopt for null
// or a string with control characters (which would end the field).
std::optional<std::string> claim_field_value(const nlohmann::json& claim);

}  // namespace porthole::policy
