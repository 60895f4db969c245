#include "http/host_route.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>

namespace porthole::http {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool valid_label(std::string_view s, bool allow_upper) {
    if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
    // "--" in the third and fourth places is kept for IDNA prefixes (RFC 5891 4.2.3.1): only
    // punycode's "xn--" may use it.
    if (s.size() >= 4 && s.substr(2, 2) == "--" && !(s.substr(0, 2) == "xn" || s.substr(0, 2) == "XN"))
        return false;
    return std::all_of(s.begin(), s.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               (allow_upper && c >= 'A' && c <= 'Z');
    });
}

}  // namespace

std::optional<std::string> tunnel_name_for_host(std::string_view host, std::string_view domain) {
    if (host.size() > 255) return std::nullopt;
    if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
        const auto port = host.substr(colon + 1);
        if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return std::nullopt;
        host = host.substr(0, colon);
    }
    if (host.ends_with('.')) host.remove_suffix(1);
    if (host.size() <= domain.size() + 1) return std::nullopt;
    const auto suffix = host.substr(host.size() - domain.size());
    if (host[host.size() - domain.size() - 1] != '.' ||
        !std::equal(suffix.begin(), suffix.end(), domain.begin(), domain.end(),
                    [](char a, char b) { return lower(a) == lower(b); }))
        return std::nullopt;
    std::string name(host.substr(0, host.size() - domain.size() - 1));
    std::transform(name.begin(), name.end(), name.begin(), lower);
    if (!valid_label(name, false)) return std::nullopt;
    return name;
}

bool valid_name(std::string_view name) { return valid_label(name, false); }

bool valid_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > 253) return false;
    while (true) {
        const auto dot = domain.find('.');
        if (!valid_label(domain.substr(0, dot), true)) return false;
        if (dot == std::string_view::npos) return true;
        domain.remove_prefix(dot + 1);
    }
}

std::string random_name() {
    static constexpr std::string_view letters = "abcdefghijklmnopqrstuvwxyz";
    static constexpr std::string_view alnum = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::array<unsigned char, 8> r{};
    RAND_bytes(r.data(), static_cast<int>(r.size()));
    std::string name;
    name.push_back(letters[r[0] % letters.size()]);
    for (std::size_t i = 1; i < r.size(); ++i) name.push_back(alnum[r[i] % alnum.size()]);
    return name;
}

}  // namespace porthole::http
