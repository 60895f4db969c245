#include "cache/cache_control.hpp"

#include "http/token_char.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

namespace porthole::cache {

namespace {

// delta-seconds (RFC 9111 section 1.2.2): digits only; a value too large to hold is the
// largest one (2^31 is what the RFC asks for at least).
std::optional<std::uint64_t> delta_seconds(std::string_view v) {
    if (v.empty() || v.size() > 64) return std::nullopt;
    std::uint64_t n = 0;
    for (const char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n > (UINT64_MAX - 9) / 10 ? UINT64_MAX : n * 10 + static_cast<unsigned>(c - '0');
    }
    return std::min<std::uint64_t>(n, std::uint64_t{1} << 31);
}

// Sets `slot` from the directive's value; a second, different value or a bad one invalidates
// the whole field.
void set_delta(std::optional<std::uint64_t>& slot, std::optional<std::string_view> value,
               directives& d) {
    const auto n = value ? delta_seconds(*value) : std::nullopt;
    if (!n || (slot && *slot != *n)) {
        d.invalid = true;
        return;
    }
    slot = n;
}

// Calls `f(name, value)` for each element of a comma-separated list of `name[=value]`, where a
// value is a token or a quoted string (unquoted here, commas inside it kept).
template <class F>
void for_each_directive(std::string_view list, F&& f) {
    std::size_t i = 0;
    while (i < list.size()) {
        while (i < list.size() && (http::ows(list[i]) || list[i] == ',')) ++i;
        const std::size_t name_start = i;
        while (i < list.size() && list[i] != ',' && list[i] != '=') ++i;
        const std::string_view name = http::trim_ows(list.substr(name_start, i - name_start));
        std::optional<std::string> value;
        if (i < list.size() && list[i] == '=') {
            ++i;
            while (i < list.size() && http::ows(list[i])) ++i;
            value.emplace();
            if (i < list.size() && list[i] == '"') {
                for (++i; i < list.size() && list[i] != '"'; ++i) {
                    if (list[i] == '\\' && i + 1 < list.size()) ++i;
                    value->push_back(list[i]);
                }
                if (i < list.size()) ++i;  // the closing quote
                while (i < list.size() && list[i] != ',') ++i;
            } else {
                const std::size_t start = i;
                while (i < list.size() && list[i] != ',') ++i;
                value->assign(http::trim_ows(list.substr(start, i - start)));
            }
        }
        if (!name.empty())
            f(name, value ? std::optional<std::string_view>(*value) : std::nullopt);
    }
}

}  // namespace

directives parse_directives(std::string_view value) {
    directives d;
    using boost::beast::iequals;
    for_each_directive(value, [&](std::string_view name, std::optional<std::string_view> v) {
        if (iequals(name, "max-age"))
            set_delta(d.max_age, v, d);
        else if (iequals(name, "s-maxage"))
            set_delta(d.s_maxage, v, d);
        else if (iequals(name, "min-fresh"))
            set_delta(d.min_fresh, v, d);
        else if (iequals(name, "max-stale")) {
            if (v)
                set_delta(d.max_stale, v, d);
            else
                d.any_stale = true;
        } else if (iequals(name, "stale-while-revalidate"))
            set_delta(d.stale_while_revalidate, v, d);
        else if (iequals(name, "stale-if-error"))
            set_delta(d.stale_if_error, v, d);
        else if (iequals(name, "no-store"))
            d.no_store = true;
        else if (iequals(name, "no-cache"))
            d.no_cache = true;
        else if (iequals(name, "private"))
            d.private_ = true;
        else if (iequals(name, "public"))
            d.public_ = true;
        else if (iequals(name, "must-revalidate"))
            d.must_revalidate = true;
        else if (iequals(name, "proxy-revalidate"))
            d.proxy_revalidate = true;
        else if (iequals(name, "must-understand"))
            d.must_understand = true;
        else if (iequals(name, "immutable"))
            d.immutable = true;
        else if (iequals(name, "only-if-cached"))
            d.only_if_cached = true;
    });
    return d;
}

namespace {

// Digits at s[at, at + n) as a number; -1 when any is not a digit.
int digits_at(std::string_view s, std::size_t at, std::size_t n) {
    if (at + n > s.size()) return -1;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int month_at(std::string_view s, std::size_t at) {
    static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (at + 3 > s.size()) return -1;
    for (int m = 0; m < 12; ++m)
        if (boost::beast::iequals(s.substr(at, 3), months[m])) return m;
    return -1;
}

// "HH:MM:SS" at `at` into tm.
bool time_at(std::string_view s, std::size_t at, std::tm& tm) {
    tm.tm_hour = digits_at(s, at, 2);
    tm.tm_min = digits_at(s, at + 3, 2);
    tm.tm_sec = digits_at(s, at + 6, 2);
    return at + 8 <= s.size() && s[at + 2] == ':' && s[at + 5] == ':' && tm.tm_hour >= 0 &&
           tm.tm_hour < 24 && tm.tm_min >= 0 && tm.tm_min < 60 && tm.tm_sec >= 0 &&
           tm.tm_sec <= 60;
}

std::optional<std::int64_t> epoch_of(std::tm& tm) {
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_mon < 0 || tm.tm_year < 0) return std::nullopt;
    return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace

std::optional<directives> parse_cdn_directives(std::string_view value) {
    const auto key_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               c == '.' || c == '*';
    };
    std::string_view rest = value;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view member = http::trim_ows(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        // an empty member, a trailing comma included
        if (member.empty() || (comma != std::string_view::npos && http::trim_ows(rest).empty()))
            return std::nullopt;
        const auto eq = member.find('=');
        const std::string_view key = member.substr(0, eq);
        if (key.empty() || !((key[0] >= 'a' && key[0] <= 'z') || key[0] == '*') ||
            !std::all_of(key.begin(), key.end(), key_char))
            return std::nullopt;
        if (eq == std::string_view::npos) continue;
        const std::string_view v = member.substr(eq + 1);
        const bool integer = !v.empty() && v.size() <= 15 &&
                             std::all_of(v.begin(), v.end(), [](char c) {
                                 return c >= '0' && c <= '9';
                             });
        const bool seconds = key == "max-age" || key == "s-maxage" ||
                             key == "stale-while-revalidate" || key == "stale-if-error";
        if (seconds && !integer) return std::nullopt;
        // Other members' values: an integer, a token, a boolean or a quoted string.
        const bool token = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) ||
                   std::string_view("*_-.:/%+!#$&'^`|~?").find(c) != std::string_view::npos;
        });
        const bool quoted = v.size() >= 2 && v.front() == '"' && v.back() == '"';
        if (!integer && !token && !quoted) return std::nullopt;
    }
    return parse_directives(value);
}

std::optional<std::int64_t> parse_http_date(std::string_view s) {
    s = http::trim_ows(s);
    std::tm tm{};
    // IMF-fixdate, exactly: "Sun, 06 Nov 1994 08:49:37 GMT".
    if (s.size() == 29 && s[3] == ',' && s[4] == ' ' && s[7] == ' ' && s[11] == ' ' &&
        s[16] == ' ' && s[25] == ' ' && boost::beast::iequals(s.substr(26), "GMT")) {
        tm.tm_mday = digits_at(s, 5, 2);
        tm.tm_mon = month_at(s, 8);
        tm.tm_year = digits_at(s, 12, 4) - 1900;
        if (!time_at(s, 17, tm)) return std::nullopt;
        return epoch_of(tm);
    }
    // Obsolete RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit years: 1970-2069).
    if (const auto comma = s.find(", "); comma != std::string_view::npos && comma >= 6 &&
                                         s.size() == comma + 24) {
        const std::string_view rest = s.substr(comma + 2);
        if (rest[2] != '-' || rest[6] != '-' || rest[9] != ' ' || rest[18] != ' ' ||
            !boost::beast::iequals(rest.substr(19), "GMT"))
            return std::nullopt;
        tm.tm_mday = digits_at(rest, 0, 2);
        tm.tm_mon = month_at(rest, 3);
        const int yy = digits_at(rest, 7, 2);
        if (yy < 0 || !time_at(rest, 10, tm)) return std::nullopt;
        tm.tm_year = yy < 70 ? yy + 100 : yy;
        return epoch_of(tm);
    }
    // asctime(): "Sun Nov  6 08:49:37 1994".
    if (s.size() == 24 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[19] == ' ') {
        tm.tm_mon = month_at(s, 4);
        tm.tm_mday = s[8] == ' ' ? digits_at(s, 9, 1) : digits_at(s, 8, 2);
        tm.tm_year = digits_at(s, 20, 4) - 1900;
        if (!time_at(s, 11, tm)) return std::nullopt;
        return epoch_of(tm);
    }
    return std::nullopt;
}

std::string format_http_date(std::int64_t epoch_seconds) {
    const auto t = static_cast<std::time_t>(epoch_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char out[40];
    const std::size_t n = std::strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(out, n);
}

std::vector<std::string> vary_names(std::string_view value) {
    std::vector<std::string> names;
    while (!value.empty()) {
        const auto comma = value.find(',');
        std::string name(http::trim_ows(value.substr(0, comma)));
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        if (name.empty()) continue;
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (std::find(names.begin(), names.end(), name) == names.end())
            names.push_back(std::move(name));
    }
    return names;
}

std::string normalized_values(const std::vector<std::string_view>& values) {
    std::string out;
    for (const auto value : values) {
        std::string_view rest = value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            const std::string_view part = http::trim_ows(rest.substr(0, comma));
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
            if (part.empty()) continue;
            if (!out.empty()) out += ", ";
            out += part;
        }
    }
    return out;
}

}  // namespace porthole::cache
