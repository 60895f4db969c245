#pragma once
// [[sites.policies]], [[sites.routes.policies]] and [tunnel_policy] tables -> typed settings,
// with FILE:LINE errors and a fix. Pure but for reading htpasswd, secret and JWK Set files.
// docs/policies.md is the contract.
#include <tl/expected.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace porthole::config {

struct ip_rule_settings {
    bool allow = true;  // ip_allow; false: ip_deny
    std::vector<std::string> cidrs;
};

struct basic_auth_settings {
    std::string realm = "porthole";
    std::vector<std::pair<std::string, std::string>> users;  // name, crypt(3) hash
    bool forward_auth_header = false;
};

struct rate_limit_settings {
    enum class key_kind { ip, header, route };
    std::uint32_t count = 0;  // `count` requests per `period` in the long run
    std::chrono::nanoseconds period{};
    std::uint32_t burst = 0;  // at once
    key_kind key = key_kind::ip;
    std::string header;  // key_kind::header
    unsigned ipv6_prefix = 64;
    std::size_t max_keys = 100000;
};

struct header_settings {
    std::vector<std::pair<std::string, std::string>> request_set, request_add, response_set,
        response_add;  // values may hold {variables}
    std::vector<std::string> request_remove, response_remove;  // lowercase
    bool request_id = true;
};

struct redirect_settings {
    std::string to;  // may hold {host} {path} {query} {uri}
    unsigned status = 308;
};

struct https_only_settings {
    unsigned status = 308;
};

struct respond_settings {
    unsigned status = 200;
    std::string body;
    std::string content_type = "text/plain; charset=utf-8";
};

struct max_body_settings {
    std::uint64_t size = 0;
};

struct webhook_settings {
    enum class provider_kind { github, stripe, slack, shopify, twilio, hmac };
    enum class digest_kind { sha1, sha256, sha512 };
    enum class encoding_kind { hex, base64 };
    provider_kind provider = provider_kind::github;
    std::string secret;  // never logged or shown
    std::chrono::seconds tolerance{300};  // stripe, slack
    std::uint64_t max_body = 1 << 20;
    // provider = "hmac": where the signature is and how it is written
    std::string header;
    digest_kind algorithm = digest_kind::sha256;
    encoding_kind encoding = encoding_kind::hex;
    std::string prefix;
    std::string url;  // twilio: the public URL it signs; empty: the request's own
};

// The path sent upstream: `strip_prefix` off, then the first match of `from` (RE2) replaced by
// `to` (\0 the match, \1-\9 its groups), then `add_prefix` on. The query stays as it was.
struct rewrite_settings {
    std::string strip_prefix, from, to, add_prefix;
};

struct jwt_settings {
    // One key source: a JWK Set file (its text, read and checked at load), a URL, or a secret.
    std::string jwks_file;  // the path, for messages
    std::string jwks;       // the file's text
    std::string jwks_url;
    std::chrono::milliseconds jwks_refresh = std::chrono::hours(1);
    std::string secret;  // HS256
    std::string issuer;    // empty: any
    std::string audience;  // empty: any
    std::vector<std::string> algorithms;  // RS256, ES256, EdDSA, HS256
    std::chrono::milliseconds leeway = std::chrono::seconds(30);
    std::vector<std::pair<std::string, std::string>> claims_to_headers;  // claim, field name
    bool forward_token = true;
};

// Bytes a second through one route (all its visitors together), each direction; 0: unshaped.
struct bandwidth_settings {
    std::uint64_t up = 0;    // from visitors (request bodies, upgraded streams)
    std::uint64_t down = 0;  // to visitors (responses)
    std::uint64_t burst = 0;  // bytes that may pass at once; 0: a tenth of a second's worth
};

// Responses compressed on their way to the visitor (docs/policies.md, compress).
struct compress_settings {
    std::vector<std::string> encodings{"zstd", "br", "gzip"};  // the relay's preference first
    int gzip_level = 1;  // 1-9
    int br_level = 1;    // 0-11
    int zstd_level = 1;  // 1-9 (above 9 its tables take tens of MiB per response)
    std::uint64_t min_length = 1024;  // a Content-Length below this is sent as it is
    // Media types, lowercase: "type/subtype", or "type/*" for every subtype.
    std::vector<std::string> types{"text/*",
                                   "application/json",
                                   "application/javascript",
                                   "application/xml",
                                   "application/xhtml+xml",
                                   "application/rss+xml",
                                   "application/atom+xml",
                                   "application/ld+json",
                                   "application/manifest+json",
                                   "application/geo+json",
                                   "application/wasm",
                                   "image/svg+xml",
                                   "image/x-icon",
                                   "font/ttf",
                                   "font/otf"};
};

using policy_settings =
    std::variant<ip_rule_settings, basic_auth_settings, rate_limit_settings, header_settings,
                 redirect_settings, https_only_settings, respond_settings, max_body_settings,
                 webhook_settings, rewrite_settings, jwt_settings, bandwidth_settings,
                 compress_settings>;

struct policy_config {
    policy_settings settings;
    std::size_t line = 0;
    // The table as TOML, its keys in order: what relays of a cluster compare (a digest of it),
    // since two policies alike in text act alike.
    std::string source{};
};

// `n` must be an array of tables (`[[NAME]]`); `name` is how errors call it ("sites.policies").
// `from_owner`: a tunnel's owner wrote them, so keys that would make the relay read a file or
// fetch a URL are refused.
tl::expected<std::vector<policy_config>, std::string> load_policies(const toml::node& n,
                                                                    const std::string& path,
                                                                    std::string_view name,
                                                                    bool from_owner = false);

// What a tunnel's owner asks of the relay for it: policies, and whether the relay's tunnel
// cache keeps its responses (and serves them while the client is away).
struct owner_settings {
    std::vector<policy_config> policies;
    bool cache = false;
};

// A tunnel owner's settings as the client sends them: TOML text of [[policies]] tables and
// `cache = true`, named `name` in errors. Keys that would make the relay read a file or fetch a
// URL are refused, and so are the types in `forbidden` ("cache" among them: the owner may not
// ask for the cache).
tl::expected<owner_settings, std::string> load_owner_policies(
    std::string_view text, const std::string& name, const std::vector<std::string>& forbidden);

bool is_policy_type(std::string_view type);
std::string policy_type_names();  // "ip_allow, ip_deny, ..."
std::string_view type_of(const policy_config& p);

// "100/min" -> 100 per minute; N/s, N/min, N/h, N/day.
tl::expected<std::pair<std::uint32_t, std::chrono::nanoseconds>, std::string> parse_rate(
    std::string_view text);

// An http:// or https:// URL -> its origin ("https://idp.example:8443", a parse_member URL) and
// its request target ("/jwks.json", "/" when it has no path).
tl::expected<std::pair<std::string, std::string>, std::string> split_url(std::string_view url);

}  // namespace porthole::config
