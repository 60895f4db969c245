#include "cache/stored_response.hpp"

#include "http/header_edits.hpp"

#include <boost/beast/core/string.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace porthole::cache {

namespace {

using boost::beast::iequals;

bool hop_by_hop(std::string_view name) {
    constexpr std::array<std::string_view, 11> names{
        "connection", "keep-alive",     "proxy-connection", "te",  "transfer-encoding",
        "upgrade",    "trailer",        "content-length",   "age", "proxy-authenticate",
        "proxy-authorization"};
    return std::any_of(names.begin(), names.end(),
                       [&](std::string_view n) { return iequals(n, name); });
}

// The opaque part of an entity tag, for weak comparison (RFC 9110 section 8.8.3.2).
std::string_view opaque_tag(std::string_view tag) {
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    return tag;
}

bool matches_any(std::string_view list, std::string_view etag) {
    if (etag.empty()) return false;
    while (!list.empty()) {
        const auto comma = list.find(',');
        std::string_view tag = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
        while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
        if (tag == "*" || (!tag.empty() && opaque_tag(tag) == opaque_tag(etag))) return true;
    }
    return false;
}

std::optional<std::uint64_t> number(std::string_view s) {
    std::uint64_t n = 0;
    if (s.empty() || s.size() > 18) return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return n;
}

// One range of "bytes=first-last", "bytes=first-" or "bytes=-suffix" over `size` bytes;
// nullopt for a form this cache leaves alone (several ranges, another unit); `unsatisfiable`
// set when it is well formed but selects nothing.
std::optional<answer_shape> byte_range(std::string_view spec, std::uint64_t size,
                                       bool& unsatisfiable) {
    if (!spec.starts_with("bytes=")) return std::nullopt;
    spec.remove_prefix(6);
    if (spec.find(',') != std::string_view::npos) return std::nullopt;
    const auto dash = spec.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    const auto first = spec.substr(0, dash), last = spec.substr(dash + 1);
    answer_shape s{206, 0, 0};
    if (first.empty()) {
        const auto suffix = number(last);
        if (!suffix) return std::nullopt;
        if (*suffix == 0 || size == 0) {
            unsatisfiable = true;
            return std::nullopt;
        }
        s.length = std::min(*suffix, size);
        s.first = size - s.length;
        return s;
    }
    const auto from = number(first);
    if (!from) return std::nullopt;
    std::uint64_t to = size == 0 ? 0 : size - 1;
    if (!last.empty()) {
        const auto l = number(last);
        if (!l || *l < *from) return std::nullopt;
        to = std::min(to, *l);
    }
    if (*from >= size) {
        unsatisfiable = true;
        return std::nullopt;
    }
    s.first = *from;
    s.length = to - *from + 1;
    return s;
}

}  // namespace

std::size_t stored_response::bytes() const {
    std::size_t n = sizeof *this + body.size();
    for (const auto& f : fields) n += f.name.size() + f.value.size() + sizeof f;
    for (const auto& [name, value] : vary_values) n += name.size() + value.size() + 64;
    return n;
}

const std::string* stored_response::find(std::string_view name) const {
    for (const auto& f : fields)
        if (iequals(f.name, name)) return &f.value;
    return nullptr;
}

std::vector<http::field> storable_fields(const std::vector<http::field>& fields,
                                         std::int64_t now) {
    std::string connection;
    for (const auto& f : fields)
        if (iequals(f.name, "connection")) connection.append(",").append(f.value);
    std::vector<http::field> kept;
    bool date = false;
    for (const auto& f : fields) {
        if (hop_by_hop(f.name) || http::has_token(connection, f.name)) continue;
        date = date || iequals(f.name, "date");
        kept.push_back(f);
    }
    if (!date) kept.push_back({"Date", format_http_date(now)});
    return kept;
}

std::vector<std::pair<std::string, std::string>> vary_values(
    const std::vector<std::string>& names, const http::message_head& request) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& name : names) {
        std::vector<std::string_view> values;
        for (const auto& f : request.fields)
            if (iequals(f.name, name)) values.push_back(f.value);
        out.emplace_back(name, normalized_values(values));
    }
    return out;
}

bool vary_matches(const stored_response& stored, const http::message_head& request) {
    if (stored.vary_values.empty()) return true;
    std::vector<std::string> names;
    names.reserve(stored.vary_values.size());
    for (const auto& [name, value] : stored.vary_values) names.push_back(name);
    return vary_values(names, request) == stored.vary_values;
}

void refresh(stored_response& stored, const std::vector<http::field>& fields_304,
             std::int64_t request_time, std::int64_t response_time, const freshness_rules& rules) {
    for (const auto& f : storable_fields(fields_304, response_time)) {
        // Content-Length of a 304 describes nothing here; the stored body stays what it is.
        if (iequals(f.name, "content-length")) continue;
        std::erase_if(stored.fields, [&](const http::field& s) { return iequals(s.name, f.name); });
    }
    for (const auto& f : storable_fields(fields_304, response_time)) stored.fields.push_back(f);
    stored.facts = facts_of(stored.status, stored.fields);
    stored.facts.age = facts_of(304, fields_304).age;  // the 304's Age, not a stored field
    stored.lifetime = freshness_lifetime(stored.facts, rules);
    stored.request_time = request_time;
    stored.response_time = response_time;
}

answer_shape shape_answer(const stored_response& stored, const http::message_head& request) {
    const std::uint64_t size = stored.body.size();
    answer_shape whole{stored.status, 0, size};
    const bool safe = request.method == "GET" || request.method == "HEAD";
    if (!safe) return whole;
    const std::string* etag = stored.find("etag");
    if (const std::string* inm = request.find("if-none-match")) {
        if (etag && matches_any(*inm, *etag)) return answer_shape{304, 0, 0};
    } else if (const std::string* ims = request.find("if-modified-since")) {
        const auto since = parse_http_date(*ims);
        const auto modified = stored.facts.last_modified
                                  ? stored.facts.last_modified
                                  : stored.facts.date;
        if (since && modified && *modified <= *since) return answer_shape{304, 0, 0};
    }
    const std::string* range = request.find("range");
    if (!range || stored.status != 200 || request.method != "GET") return whole;
    if (const std::string* if_range = request.find("if-range")) {
        // A strong entity tag equal to ours, or our exact Last-Modified; anything else: whole.
        const bool tag_matches = etag && !etag->starts_with("W/") && *if_range == *etag;
        const auto date = parse_http_date(*if_range);
        const bool date_matches = date && stored.facts.last_modified == date;
        if (!tag_matches && !date_matches) return whole;
    }
    bool unsatisfiable = false;
    const auto part = byte_range(*range, size, unsatisfiable);
    if (part) return *part;
    if (unsatisfiable) return answer_shape{416, 0, 0};
    return whole;
}

std::string answer_head(const stored_response& stored, const answer_shape& shape,
                        const head_options& options) {
    std::string head = fmt::format("HTTP/1.{} {} {}\r\n", options.version == 10 ? 0 : 1,
                                   shape.status, http::reason_phrase(shape.status));
    // A 304 carries the fields RFC 9110 section 15.4.5 names; 416 none of the body's.
    constexpr std::array<std::string_view, 7> for_304{"cache-control", "content-location",
                                                      "date",          "etag",
                                                      "expires",       "vary",
                                                      "last-modified"};
    for (const auto& f : stored.fields) {
        if (shape.status == 304 &&
            std::none_of(for_304.begin(), for_304.end(),
                         [&](std::string_view n) { return iequals(n, f.name); }))
            continue;
        if (shape.status == 416 && iequals(f.name, "content-type")) continue;
        head.append(f.name).append(": ").append(f.value).append("\r\n");
    }
    head.append(fmt::format("Age: {}\r\n", options.age));
    if (!options.cache_status.empty())
        head.append("Cache-Status: ").append(options.cache_status).append("\r\n");
    if (shape.status == 206)
        head.append(fmt::format("Content-Range: bytes {}-{}/{}\r\n", shape.first,
                                shape.first + shape.length - 1, stored.body.size()));
    if (shape.status == 416)
        head.append(fmt::format("Content-Range: bytes */{}\r\n", stored.body.size()));
    if (shape.status != 304 && shape.status != 204)
        head.append(fmt::format("Content-Length: {}\r\n", shape.length));
    if (options.close)
        head.append("Connection: close\r\n");
    else if (options.version == 10)
        head.append("Connection: keep-alive\r\n");
    head.append("\r\n");
    return head;
}

}  // namespace porthole::cache
