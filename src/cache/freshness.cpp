#include "cache/freshness.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <array>
#include <utility>

namespace porthole::cache {

namespace {

using boost::beast::iequals;

// RFC 9110 section 15.1: statuses a cache may give heuristic freshness to.
bool heuristically_cacheable(unsigned status) {
    constexpr std::array<unsigned, 12> codes{200, 203, 204, 206, 300, 301,
                                             308, 404, 405, 410, 414, 501};
    return std::find(codes.begin(), codes.end(), status) != codes.end();
}

// Final statuses whose caching rules this cache follows (must-understand, RFC 9111 5.2.2.3).
bool understood(unsigned status) {
    return heuristically_cacheable(status) || status == 302 || status == 303 || status == 307;
}

}  // namespace

response_facts facts_of(unsigned status, const std::vector<http::field>& fields) {
    response_facts r;
    r.status = status;
    std::string cache_control, cdn_cache_control, vary;
    bool cdn = false, date = false, expires = false, modified = false, age = false;
    for (const auto& f : fields) {
        // Where a field may appear once, its first line counts.
        if (iequals(f.name, "cache-control")) {
            cache_control.append(cache_control.empty() ? "" : ",").append(f.value);
        } else if (iequals(f.name, "cdn-cache-control")) {
            cdn = true;
            cdn_cache_control.append(cdn_cache_control.empty() ? "" : ",").append(f.value);
        } else if (iequals(f.name, "date") && !std::exchange(date, true)) {
            r.date = parse_http_date(f.value);
        } else if (iequals(f.name, "expires") && !std::exchange(expires, true)) {
            r.expires = parse_http_date(f.value);
            r.expires_invalid = !r.expires;
        } else if (iequals(f.name, "last-modified") && !std::exchange(modified, true)) {
            r.last_modified = parse_http_date(f.value);
        } else if (iequals(f.name, "age") && !std::exchange(age, true)) {
            // delta-seconds; of a list ("7200, 0"), the first
            std::uint64_t n = 0;
            std::size_t digits = 0;
            for (; digits < f.value.size() && f.value[digits] >= '0' && f.value[digits] <= '9';
                 ++digits)
                n = std::min<std::uint64_t>(n * 10 + unsigned(f.value[digits] - '0'), 1u << 31);
            const bool whole = digits > 0 && (digits == f.value.size() || f.value[digits] == ',' ||
                                              f.value[digits] == ' ');
            if (whole) r.age = n;
        } else if (iequals(f.name, "set-cookie")) {
            r.set_cookie = true;
        } else if (iequals(f.name, "etag")) {
            r.etag = f.value;
        } else if (iequals(f.name, "vary")) {
            vary.append(vary.empty() ? "" : ",").append(f.value);
        }
    }
    // CDN-Cache-Control (RFC 9213) speaks to caches like this one: it takes Cache-Control's
    // place here, and goes on to the visitor unchanged.
    std::optional<directives> targeted;
    if (cdn) targeted = parse_cdn_directives(cdn_cache_control);
    r.cc = targeted ? *targeted : parse_directives(cache_control);
    r.vary = vary_names(vary);
    return r;
}

request_facts facts_of(const http::message_head& request) {
    request_facts r;
    std::string cache_control;
    bool has_cache_control = false;
    for (const auto& f : request.fields) {
        if (iequals(f.name, "cache-control")) {
            has_cache_control = true;
            cache_control.append(cache_control.empty() ? "" : ",").append(f.value);
        } else if (iequals(f.name, "authorization")) {
            r.authorization = true;
        } else if (iequals(f.name, "pragma")) {
            r.pragma_no_cache = r.pragma_no_cache || parse_directives(f.value).no_cache;
        }
    }
    r.cc = parse_directives(cache_control);
    if (has_cache_control) r.pragma_no_cache = false;
    return r;
}

std::optional<std::string_view> refusal_to_store(std::string_view method,
                                                 const request_facts& request,
                                                 const response_facts& response,
                                                 const freshness_rules& rules) {
    if (method != "GET") return "only GET responses are stored";
    if (response.status < 200 || response.status == 206 || response.status == 304)
        return "the status is not one this cache stores";
    if (response.cc.must_understand && !understood(response.status))
        return "must-understand with a status this cache does not know";
    if (response.cc.no_store && !(response.cc.must_understand && understood(response.status)))
        return "the response says no-store";
    if (request.cc.no_store) return "the request says no-store";
    if (response.cc.private_) return "the response is private";
    if (request.authorization && !response.cc.public_ && !response.cc.must_revalidate &&
        !response.cc.s_maxage)
        return "the request carried Authorization";
    if (std::find(response.vary.begin(), response.vary.end(), "*") != response.vary.end())
        return "the response varies on *";
    if (response.set_cookie && !rules.store_set_cookie) return "the response sets a cookie";
    const bool explicit_freshness = response.cc.public_ || response.cc.max_age ||
                                    response.cc.s_maxage || response.expires ||
                                    response.expires_invalid;
    if (!explicit_freshness && !heuristically_cacheable(response.status))
        return "the status is not cacheable without explicit freshness";
    return std::nullopt;
}

std::uint64_t freshness_lifetime(const response_facts& response, const freshness_rules& rules) {
    if (response.cc.invalid) return 0;
    if (response.cc.s_maxage) return *response.cc.s_maxage;
    if (response.cc.max_age) return *response.cc.max_age;
    if (response.expires_invalid) return 0;
    if (response.expires) {
        // Date is set when the response is stored, so it is always here.
        const std::int64_t date = response.date.value_or(*response.expires);
        return static_cast<std::uint64_t>(std::max<std::int64_t>(0, *response.expires - date));
    }
    if (!heuristically_cacheable(response.status) && !response.cc.public_) return 0;
    if (rules.default_ttl > 0) return rules.default_ttl;
    if (response.last_modified && response.date && *response.date > *response.last_modified)
        return std::min<std::uint64_t>(
            static_cast<std::uint64_t>(*response.date - *response.last_modified) / 10,
            rules.heuristic_cap);
    return 0;
}

std::uint64_t current_age(const response_facts& response, std::int64_t request_time,
                          std::int64_t response_time, std::int64_t now) {
    const std::int64_t date = response.date.value_or(response_time);
    const std::int64_t apparent_age = std::max<std::int64_t>(0, response_time - date);
    const std::int64_t response_delay = std::max<std::int64_t>(0, response_time - request_time);
    const std::int64_t corrected_age_value = static_cast<std::int64_t>(response.age) +
                                             response_delay;
    const std::int64_t corrected_initial_age = std::max(apparent_age, corrected_age_value);
    const std::int64_t resident_time = std::max<std::int64_t>(0, now - response_time);
    return static_cast<std::uint64_t>(corrected_initial_age + resident_time);
}

judgement judge(const response_facts& response, const request_facts& request,
                std::uint64_t lifetime, std::uint64_t age) {
    judgement j;
    j.age = age;
    j.ttl = static_cast<std::int64_t>(lifetime) - static_cast<std::int64_t>(age);
    const bool fresh = j.ttl > 0;
    if (request.cc.no_cache || request.pragma_no_cache || response.cc.no_cache) return j;
    if (request.cc.max_age && age > *request.cc.max_age) return j;
    if (request.cc.min_fresh && j.ttl < static_cast<std::int64_t>(*request.cc.min_fresh)) return j;
    if (fresh) {
        j.verdict = use::fresh;
        return j;
    }
    // s-maxage means proxy-revalidate to a shared cache (RFC 9111 5.2.2.10).
    if (response.cc.must_revalidate || response.cc.proxy_revalidate || response.cc.s_maxage)
        return j;
    const auto stale_for = static_cast<std::uint64_t>(-j.ttl);
    if (request.cc.any_stale || (request.cc.max_stale && stale_for <= *request.cc.max_stale)) {
        j.verdict = use::stale_allowed;
        return j;
    }
    if (response.cc.stale_while_revalidate && stale_for <= *response.cc.stale_while_revalidate)
        j.verdict = use::stale_revalidate;
    return j;
}

bool usable_on_error(const response_facts& response, const request_facts& request,
                     std::uint64_t stale_for, bool operator_allows) {
    if (response.cc.must_revalidate || response.cc.proxy_revalidate || response.cc.s_maxage ||
        response.cc.no_cache)
        return false;
    if (operator_allows) return true;
    if (request.cc.stale_if_error) return stale_for <= *request.cc.stale_if_error;
    return response.cc.stale_if_error && stale_for <= *response.cc.stale_if_error;
}

}  // namespace porthole::cache
