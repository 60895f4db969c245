#pragma once
// Cache-Control directives (RFC 9111 section 5.2), HTTP dates (RFC 9110 section 5.6.7) and Vary
// (RFC 9110 section 12.5.5): pure parsers over field values, fuzzed (tests/fuzz/cache_fields).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::cache {

// The directives of every Cache-Control field of one message, joined with commas. A delta-seconds
// directive given twice with different values, or with a value that is not a number, is `invalid`:
// RFC 9111 section 4.2.1 says such a response is stale.
struct directives {
    std::optional<std::uint64_t> max_age;
    std::optional<std::uint64_t> s_maxage;
    std::optional<std::uint64_t> min_fresh;               // requests
    std::optional<std::uint64_t> max_stale;               // requests; any_stale: no value
    std::optional<std::uint64_t> stale_while_revalidate;  // RFC 5861
    std::optional<std::uint64_t> stale_if_error;          // RFC 5861, requests and responses
    bool any_stale = false;
    bool no_store = false;
    bool no_cache = false;  // its qualified form (no-cache="Field") counts as the plain one
    bool private_ = false;  // so does private="Field"
    bool public_ = false;
    bool must_revalidate = false;
    bool proxy_revalidate = false;
    bool must_understand = false;
    bool immutable = false;
    bool only_if_cached = false;
    bool invalid = false;
};

directives parse_directives(std::string_view value);
// CDN-Cache-Control (RFC 9213) is a Structured Fields dictionary: a member that is not one (a
// bad key, a delta-seconds directive whose value is not an integer) makes the whole field
// ignored (nullopt), and Cache-Control decides.
std::optional<directives> parse_cdn_directives(std::string_view value);

// Seconds since the epoch of an IMF-fixdate, an RFC 850 date or an asctime() date; nullopt for
// anything else.
std::optional<std::int64_t> parse_http_date(std::string_view text);
// The IMF-fixdate of `epoch_seconds`: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string format_http_date(std::int64_t epoch_seconds);

// The field names a Vary value lists, lowercased; "*" is kept as one name.
std::vector<std::string> vary_names(std::string_view value);

// A request field's value as a Vary match compares it: the values of every field of that name
// joined with ", ", with runs of whitespace around commas and at the ends removed.
std::string normalized_values(const std::vector<std::string_view>& values);

}  // namespace porthole::cache
