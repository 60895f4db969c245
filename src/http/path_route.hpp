#pragma once
// Routing inside one HTTP tunnel by path prefix, like ingress rules: the first prefix that matches
// whole path segments wins ("/api" matches "/api", "/api/v1" and "/api?x", not "/apix").
#include <string>
#include <string_view>
#include <vector>

namespace porthole::http {

// True when `prefix` is a usable route prefix: starts with '/', no query, no whitespace.
bool valid_path_prefix(std::string_view prefix);

bool path_matches(std::string_view prefix, std::string_view request_target);

// Index of the first matching prefix, or prefixes.size() when none matches.
std::size_t match_path(const std::vector<std::string>& prefixes, std::string_view request_target);

}  // namespace porthole::http
