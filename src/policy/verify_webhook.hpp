#pragma once
// verify_webhook: a request must carry its webhook provider's signature over the body (GitHub,
// Stripe, Slack, Shopify, Twilio, or a generic HMAC of the body), else 401 naming the check that
// failed. The edge reads the whole body (up to max_body) before any of it goes upstream, so what
// the upstream gets is what was verified. The checks are pure functions of the secret, the head,
// the body and the time; docs/policies.md spells out each provider's algorithm.
#include "config/policy_config.hpp"
#include "http/message_head.hpp"
#include "policy/policy.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace porthole::policy {

namespace webhook {

using digest = config::webhook_settings::digest_kind;
using encoding = config::webhook_settings::encoding_kind;

// Why a signature was refused; ok: it passed.
enum class failure {
    ok,
    header_missing,
    header_malformed,
    timestamp_missing,
    timestamp_malformed,
    timestamp_outside,
    body_hash_mismatch,
    signature_mismatch,
};
// The 401's words for `f`: which check failed, never what was expected.
std::string_view reason(failure f);

// HMAC(key, the parts one after the other) as raw bytes.
std::string hmac(digest d, std::string_view key, std::initializer_list<std::string_view> parts);

// The bytes a signature field's value holds: `prefix` (ASCII letters in any case), then hex or
// base64. nullopt when the value is not written that way.
std::optional<std::string> decode_signature(std::string_view value, std::string_view prefix,
                                            encoding e);

// Stripe-Signature: "t=TIMESTAMP,v1=HEX,v1=HEX,v0=..." in any order; the first t counts, and
// every v1. Other schemes and items without '=' are skipped.
struct stripe_signature {
    std::optional<std::int64_t> timestamp;
    bool timestamp_malformed = false;  // a t that is not 1 to 18 decimal digits
    std::vector<std::string_view> v1;  // as written (hex)
};
stripe_signature parse_stripe_signature(std::string_view value);

// A timestamp field: 1 to 18 decimal digits.
std::optional<std::int64_t> parse_timestamp(std::string_view text);

// An application/x-www-form-urlencoded body's fields in order, decoded ('+' is a space, %XX a
// byte; a % not followed by two hex digits stays as it is). Empty pieces are skipped; a piece
// without '=' is a name with an empty value.
std::vector<std::pair<std::string, std::string>> form_fields(std::string_view body);

// What Twilio signs for a form-encoded POST: the URL, then each field's name and value with no
// separator, by name in byte order and, for a repeated name, each distinct value in byte order.
std::string twilio_signed_text(std::string_view url, std::string_view form_body);

// The URL Twilio signed for a request: `configured` (with the request's query when it has none
// of its own), else the visitor's absolute-form target, else scheme://Host + target.
std::string request_url(bool https, std::string_view host, std::string_view target,
                        std::string_view configured);

// The same URL with the scheme's default port added (when it has no port) or its port removed
// (when it has one): Twilio's libraries accept either, as its signing is not consistent about it.
std::string other_port_form(std::string_view url);

// One check per provider. `now` is seconds since the Unix epoch.
failure check_github(std::string_view secret, const http::message_head& head,
                     std::string_view body);
failure check_stripe(std::string_view secret, const http::message_head& head,
                     std::string_view body, std::int64_t now, std::chrono::seconds tolerance);
failure check_slack(std::string_view secret, const http::message_head& head, std::string_view body,
                    std::int64_t now, std::chrono::seconds tolerance);
failure check_shopify(std::string_view secret, const http::message_head& head,
                      std::string_view body);
failure check_twilio(std::string_view secret, const http::message_head& head,
                     std::string_view body, std::string_view url);
struct hmac_scheme {
    std::string_view header;
    digest algorithm = digest::sha256;
    encoding written = encoding::hex;
    std::string_view prefix;
};
failure check_hmac(std::string_view secret, const hmac_scheme& scheme,
                   const http::message_head& head, std::string_view body);

// What can be checked before the body is read: the fields are there and well-formed, and a
// timestamp is within the tolerance.
failure check_head(const config::webhook_settings& s, const http::message_head& head,
                   std::int64_t now);
// The provider's whole check. `url` is only read by Twilio's.
failure check(const config::webhook_settings& s, const http::message_head& head,
              std::string_view body, std::int64_t now, std::string_view url);

}  // namespace webhook

class verify_webhook final : public policy {
public:
    using clock_function = std::function<std::int64_t()>;  // seconds since the Unix epoch
    explicit verify_webhook(const config::webhook_settings& s, clock_function now = unix_now);
    // A missing or stale signature is refused before the body is read; so is a Content-Length
    // over max_body (413).
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "verify_webhook"; }
    std::uint64_t body_needed() const override { return s_.max_body; }
    std::optional<answer> on_body(request_context& r, std::string_view body) override;

    static std::int64_t unix_now();

private:
    config::webhook_settings s_;
    clock_function now_;
};

}  // namespace porthole::policy
