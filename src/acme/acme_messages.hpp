#pragma once
// The JSON objects an ACME server answers with (RFC 8555 section 7.1), read
// into structs; every field is checked for its type, and URLs for being https.
// Pure: bytes in, verdict out (fuzzed).
#include <tl/expected.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::acme {

struct directory {
    std::string new_nonce;
    std::string new_account;
    std::string new_order;
    std::string renewal_info;  // RFC 9773, empty when the CA has none
    std::string terms_of_service;
    bool external_account_required = false;
};

// An error document (RFC 7807, RFC 8555 section 6.7).
struct problem {
    std::string type;  // the part after "urn:ietf:params:acme:error:"
                       // ("badNonce"), else whole
    std::string detail;
    std::vector<std::string> subproblems;  // "identifier: detail" of each
    std::string text() const;              // "rateLimited: too many certificates (...)"
};

struct order {
    std::string status;  // pending, ready, processing, valid, invalid
    std::vector<std::string> authorizations;
    std::string finalize;
    std::string certificate;  // once valid
    std::optional<problem> error;
};

struct challenge {
    std::string type;  // http-01, tls-alpn-01, dns-01, ...
    std::string url;
    std::string token;
    std::string status;
    std::optional<problem> error;
};

struct authorization {
    std::string status;      // pending, valid, invalid, deactivated, expired, revoked
    std::string identifier;  // the DNS name
    bool wildcard = false;
    std::vector<challenge> challenges;
};

tl::expected<directory, std::string> parse_directory(std::string_view json);
tl::expected<order, std::string> parse_order(std::string_view json);
tl::expected<authorization, std::string> parse_authorization(std::string_view json);
// nullopt when `json` is not a problem document.
std::optional<problem> parse_problem(std::string_view json);

// The body of a newOrder request for these DNS names.
std::string new_order_payload(const std::vector<std::string>& names);

}  // namespace porthole::acme
