#pragma once
// RFC 9110 section 5.6.2: the characters of a token (field names, methods, parameter names).
#include <string_view>

namespace porthole::http {

constexpr bool token_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace porthole::http
