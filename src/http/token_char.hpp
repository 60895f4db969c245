#pragma once
// RFC 9110 section 5.6: the characters of a token (field names, methods, parameter names), and
// the optional whitespace around a field's value and a list's elements; and ASCII lowercasing,
// how names (fields, hosts, schemes) that compare without case are kept.
#include <string>
#include <string_view>

namespace porthole::http {

constexpr bool token_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// OWS (section 5.6.3): spaces and horizontal tabs.
constexpr bool ows(char c) { return c == ' ' || c == '\t'; }

// `s` without the OWS before and after it.
constexpr std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && ows(s.back())) s.remove_suffix(1);
    return s;
}

// `s` with ASCII capitals made small, whatever the locale; other bytes as they are.
inline std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

}  // namespace porthole::http
