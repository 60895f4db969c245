#include "http/path_route.hpp"

#include <algorithm>

namespace porthole::http {

bool valid_path_prefix(std::string_view prefix) {
    return !prefix.empty() && prefix.front() == '/' &&
           std::none_of(prefix.begin(), prefix.end(), [](char c) {
               return c == '?' || c == '#' || static_cast<unsigned char>(c) <= ' ' || c == 0x7F;
           });
}

bool path_matches(std::string_view prefix, std::string_view request_target) {
    // An absolute-form target (http://host/path) is routed by its path.
    if (!request_target.empty() && request_target.front() != '/') {
        const auto scheme = request_target.find("://");
        if (scheme == std::string_view::npos) return false;
        const auto path = request_target.find_first_of("/?", scheme + 3);
        request_target = path == std::string_view::npos ? std::string_view("/")
                                                        : request_target.substr(path);
        if (request_target.front() == '?') return prefix == "/";
    }
    if (request_target.substr(0, prefix.size()) != prefix) return false;
    if (prefix.back() == '/' || request_target.size() == prefix.size()) return true;
    const char next = request_target[prefix.size()];
    return next == '/' || next == '?' || next == '#';
}

std::size_t match_path(const std::vector<std::string>& prefixes, std::string_view request_target) {
    for (std::size_t i = 0; i < prefixes.size(); ++i)
        if (path_matches(prefixes[i], request_target)) return i;
    return prefixes.size();
}

}  // namespace porthole::http
