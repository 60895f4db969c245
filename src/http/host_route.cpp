#include "http/host_route.hpp"

#include <fmt/format.h>
#include <idn2.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>

namespace porthole::http {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// What IDNA's lookup makes of `label` (UTS #46 nontransitional, as browsers do): its A-label, or
// libidn2's reason.
tl::expected<std::string, std::string> idna_lookup(std::string_view label) {
    const std::string in(label);
    char* out = nullptr;
    const int rc = idn2_lookup_u8(reinterpret_cast<const std::uint8_t*>(in.c_str()),
                                  reinterpret_cast<std::uint8_t**>(&out), IDN2_NONTRANSITIONAL);
    std::string result = rc == IDN2_OK && out ? std::string(out) : std::string();
    idn2_free(out);
    if (rc != IDN2_OK) return tl::unexpected(std::string(idn2_strerror(rc)));
    return result;
}

bool has_ace_prefix(std::string_view s) {
    return s.size() >= 4 && lower(s[0]) == 'x' && lower(s[1]) == 'n' && s.substr(2, 2) == "--";
}

// An A-label is valid when IDNA's lookup gives it back as it is (RFC 5891 5.4): it decodes, and
// what it decodes to is a name IDNA would encode the same way.
bool valid_a_label(std::string_view s) {
    std::string label(s);
    std::transform(label.begin(), label.end(), label.begin(), lower);
    const auto back = idna_lookup(label);
    return back && *back == label;
}

// Letters, digits and hyphens, as a DNS label.
bool ldh_label(std::string_view s, bool allow_upper) {
    if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
    // "--" in the third and fourth places is kept for IDNA prefixes (RFC 5891 4.2.3.1): only
    // punycode's "xn--" may use it.
    if (s.size() >= 4 && s.substr(2, 2) == "--" && !(s.substr(0, 2) == "xn" || s.substr(0, 2) == "XN"))
        return false;
    return std::all_of(s.begin(), s.end(),
                       [&](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                                  (allow_upper && c >= 'A' && c <= 'Z');
                       });
}

bool valid_label(std::string_view s, bool allow_upper) {
    return ldh_label(s, allow_upper) && (!has_ace_prefix(s) || valid_a_label(s));
}

bool ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// A Host without its port and final dot; nullopt when the port is not digits or it is too long.
std::optional<std::string_view> without_port(std::string_view host) {
    if (host.size() > 255) return std::nullopt;
    if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
        const auto port = host.substr(colon + 1);
        if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return std::nullopt;
        host = host.substr(0, colon);
    }
    if (host.ends_with('.')) host.remove_suffix(1);
    return host;
}

}  // namespace

std::optional<std::string> tunnel_name_for_host(std::string_view host, std::string_view domain) {
    const auto bare = without_port(host);
    if (!bare) return std::nullopt;
    host = *bare;
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

std::optional<std::string> bare_host(std::string_view host) {
    const auto bare = without_port(host);
    if (!bare) return std::nullopt;
    std::string name(*bare);
    std::transform(name.begin(), name.end(), name.begin(), lower);
    if (!valid_domain(name)) return std::nullopt;
    return name;
}

tl::expected<std::string, std::string> custom_domain_from_user(std::string_view text) {
    std::string name(text);
    std::transform(name.begin(), name.end(), name.begin(), lower);
    if (name.ends_with('.')) name.pop_back();
    if (name.find('.') == std::string::npos || !valid_domain(name))
        return tl::unexpected(fmt::format(
            "'{}' is not a domain name such as app.example.com (for a name under the relay's "
            "domain, use --subdomain)",
            text));
    return name;
}

bool custom_domain_allowed(std::string_view pattern, std::string_view name) {
    if (pattern.starts_with("*.")) {
        const auto suffix = pattern.substr(1);  // ".example.com"
        return name.size() > suffix.size() && name.ends_with(suffix);
    }
    return pattern == name;
}

std::optional<std::string> name_problem(std::string_view name) {
    if (valid_name(name)) return std::nullopt;
    if (has_ace_prefix(name) && ldh_label(name, false))
        return fmt::format("'{}' starts with 'xn--' but is not a valid IDNA A-label (punycode); "
                           "write the name in Unicode and porthole encodes it",
                           name);
    return fmt::format("'{}' is not a valid subdomain: use 1-63 characters a-z, 0-9 and '-', not "
                       "starting or ending with '-' (or a name in Unicode)",
                       name);
}

tl::expected<std::string, std::string> subdomain_from_user(std::string_view text) {
    if (ascii(text)) {
        if (auto problem = name_problem(text)) return tl::unexpected(*problem);
        return std::string(text);
    }
    auto a_label = idna_lookup(text);
    if (!a_label)
        return tl::unexpected(fmt::format("'{}' cannot be a subdomain: {}", text, a_label.error()));
    if (a_label->find('.') != std::string::npos || !valid_name(*a_label))
        return tl::unexpected(fmt::format(
            "'{}' cannot be a subdomain: it is not one DNS label of 1-63 characters ('{}')", text,
            *a_label));
    return std::move(*a_label);
}

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
