#include "http/accept_encoding.hpp"

#include "http/token_char.hpp"

#include <algorithm>
#include <array>

namespace porthole::http {

namespace {

constexpr std::size_t coding_count = 3;

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        if (c != b[i]) return false;
    }
    return true;
}

// A weight (RFC 9110 section 12.4.2: "0" to "1" with up to three decimals) in thousandths;
// -1 when malformed.
int weight(std::string_view q) {
    if (q.empty() || (q[0] != '0' && q[0] != '1')) return -1;
    int value = (q[0] - '0') * 1000;
    if (q.size() == 1) return value;
    if (q[1] != '.' || q.size() > 5) return -1;
    int scale = 100;
    for (char c : q.substr(2)) {
        if (c < '0' || c > '9') return -1;
        value += (c - '0') * scale;
        scale /= 10;
    }
    return value > 1000 ? -1 : value;
}

// The weight of one element's parameters (";q=0.5"); 1000 without one, -1 when malformed.
int element_weight(std::string_view params) {
    int w = 1000;
    while (!params.empty()) {
        params.remove_prefix(1);  // the ';'
        const std::size_t next = params.find(';');
        std::string_view param = trim_ows(params.substr(0, next));
        params = next == std::string_view::npos ? std::string_view() : params.substr(next);
        if (param.empty()) continue;
        const std::size_t eq = param.find('=');
        if (eq == std::string_view::npos) return -1;
        // No other parameter is defined.
        if (!iequals(trim_ows(param.substr(0, eq)), "q")) continue;
        w = weight(trim_ows(param.substr(eq + 1)));
        if (w < 0) return -1;
    }
    return w;
}

}  // namespace

std::string_view coding_name(content_coding c) {
    switch (c) {
        case content_coding::gzip: return "gzip";
        case content_coding::br: return "br";
        case content_coding::zstd: return "zstd";
    }
    return "";
}

std::optional<content_coding> coding_named(std::string_view name) {
    for (auto c : {content_coding::gzip, content_coding::br, content_coding::zstd})
        if (coding_name(c) == name) return c;
    return std::nullopt;
}

std::optional<content_coding> negotiate(std::span<const std::string_view> accepted,
                                        std::span<const content_coding> offered) {
    if (accepted.empty()) return std::nullopt;
    // -1: not named. The highest weight wins where a coding is named more than once.
    std::array<int, coding_count> named{-1, -1, -1};
    int any = -1, identity = -1;
    for (std::string_view field : accepted) {
        while (!field.empty()) {
            const std::size_t comma = field.find(',');
            const std::string_view element = field.substr(0, comma);
            field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
            const std::size_t semi = element.find(';');
            const std::string_view coding = trim_ows(element.substr(0, semi));
            if (coding.empty()) continue;
            const int w =
                semi == std::string_view::npos ? 1000 : element_weight(element.substr(semi));
            if (w < 0) continue;
            int* slot = nullptr;
            if (iequals(coding, "*")) slot = &any;
            else if (iequals(coding, "identity")) slot = &identity;
            else if (iequals(coding, "gzip") || iequals(coding, "x-gzip"))
                slot = &named[static_cast<std::size_t>(content_coding::gzip)];
            else if (iequals(coding, "br"))
                slot = &named[static_cast<std::size_t>(content_coding::br)];
            else if (iequals(coding, "zstd"))
                slot = &named[static_cast<std::size_t>(content_coding::zstd)];
            if (slot && w > *slot) *slot = w;
        }
    }
    std::optional<content_coding> best;
    int best_weight = 0;
    for (content_coding c : offered) {
        int w = named[static_cast<std::size_t>(c)];
        if (w < 0) w = any;
        if (w > best_weight) {
            best = c;
            best_weight = w;
        }
    }
    // A visitor that names identity (or "*") above every acceptable coding gets the content as
    // it is; one that does not name it asked for a coding.
    const int identity_weight = identity >= 0 ? identity : std::max(any, 0);
    if (best && identity_weight > best_weight) return std::nullopt;
    return best;
}

}  // namespace porthole::http
