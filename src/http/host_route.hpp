#pragma once
// Host header -> tunnel name, and the rules names and domains follow. Pure functions (IDNA by libidn2).
#include <tl/expected.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace porthole::http {

// "Abc.Example.com:8080" with domain "example.com" -> "abc". nullopt when the host is not exactly
// one label under the domain.
std::optional<std::string> tunnel_name_for_host(std::string_view host, std::string_view domain);

// A subdomain a client may ask for: one DNS label, lowercase a-z 0-9 and '-', 1-63 characters,
// no leading or trailing '-'; a label starting "xn--" must be a valid IDNA A-label.
bool valid_name(std::string_view name);
// Why `name` is not a valid subdomain, in words for the user; nullopt when it is one.
std::optional<std::string> name_problem(std::string_view name);
// A subdomain as a user wrote it: ASCII as it is, a Unicode name as its A-label ("café" ->
// "xn--caf-dma", UTS #46 nontransitional). The error says why it cannot be a subdomain.
tl::expected<std::string, std::string> subdomain_from_user(std::string_view text);
bool valid_domain(std::string_view domain);

// A Host (or SNI) as a whole DNS name: the port and a final dot gone, lowercase; nullopt when it
// is not a valid domain name. What a custom domain is looked up by.
std::optional<std::string> bare_host(std::string_view host);
// A custom domain a client asks for (--domain): a DNS name of two labels or more, lowercase;
// the error says why not.
tl::expected<std::string, std::string> custom_domain_from_user(std::string_view text);
// Whether `name` matches `pattern`: equal, or "*.suffix" with any labels before ".suffix".
bool custom_domain_allowed(std::string_view pattern, std::string_view name);

// A fresh random name: 8 characters of [a-z0-9], starting with a letter.
std::string random_name();

}  // namespace porthole::http
