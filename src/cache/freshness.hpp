#pragma once
// RFC 9111's rules for a shared cache, pure: whether a response may be stored (section 3), how
// long it stays fresh (4.2.1), its age (4.2.3), and whether a stored response may answer a request
// as it is, only after validation, or stale (4.2.4, RFC 5861). Times are seconds since the epoch.
#include "cache/cache_control.hpp"
#include "http/message_head.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::cache {

// What the rules need of a response, read from its fields once when it is stored.
struct response_facts {
    unsigned status = 0;
    directives cc;
    std::optional<std::int64_t> date;
    std::optional<std::int64_t> expires;
    bool expires_invalid = false;  // present but not a date: already expired (5.3)
    std::optional<std::int64_t> last_modified;
    std::uint64_t age = 0;  // the Age field
    bool set_cookie = false;
    std::string etag;
    std::vector<std::string> vary;  // lowercased names; "*" never matches
};
response_facts facts_of(unsigned status, const std::vector<http::field>& fields);

struct request_facts {
    directives cc;
    bool pragma_no_cache = false;  // only counts without Cache-Control (5.4)
    bool authorization = false;
};
request_facts facts_of(const http::message_head& request);

struct freshness_rules {
    // Freshness given to a storable response that states none, before the heuristic; 0: none.
    std::uint64_t default_ttl = 0;
    std::uint64_t heuristic_cap = 24 * 3600;  // the 10%-of-Last-Modified heuristic's ceiling
    bool store_set_cookie = false;
};

// Why the response to `request` may not be stored; nullopt when it may. Only GET responses
// are stored (HEAD is answered from them).
std::optional<std::string_view> refusal_to_store(std::string_view method,
                                                 const request_facts& request,
                                                 const response_facts& response,
                                                 const freshness_rules& rules);

// Seconds the response is fresh for, from its response time (0: stale at once).
std::uint64_t freshness_lifetime(const response_facts& response, const freshness_rules& rules);

// The response's current age at `now`, from when its request was sent and its response came.
std::uint64_t current_age(const response_facts& response, std::int64_t request_time,
                          std::int64_t response_time, std::int64_t now);

enum class use {
    fresh,             // serve it
    stale_allowed,     // stale, but the request's max-stale allows it
    stale_revalidate,  // stale within stale-while-revalidate: serve it and refresh it behind
    validate,          // ask the upstream first (conditionally when it has validators)
};

struct judgement {
    use verdict = use::validate;
    std::uint64_t age = 0;
    std::int64_t ttl = 0;  // lifetime - age; negative when stale
};

judgement judge(const response_facts& response, const request_facts& request,
                std::uint64_t lifetime, std::uint64_t age);

// Whether a stale response may stand in for an upstream error, `stale_for` seconds past its
// freshness: RFC 5861 stale-if-error (the response's or the request's), or `operator_allows`
// (stale_when_offline); never past must-revalidate, proxy-revalidate, s-maxage or no-cache.
bool usable_on_error(const response_facts& response, const request_facts& request,
                     std::uint64_t stale_for, bool operator_allows = false);

}  // namespace porthole::cache
