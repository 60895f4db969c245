#pragma once
// [acme]: automatic certificates from an ACME CA (docs/design-acme.md). Set by
// the table or by
// --acme-email and friends; `email` or the table itself turns it on.
#include <tl/expected.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace porthole::config {

inline constexpr const char* letsencrypt_directory =
    "https://acme-v02.api.letsencrypt.org/directory";
inline constexpr const char* letsencrypt_staging_directory =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

// dns = { rfc2136 = { ... } }: DNS-01 records by RFC 2136 dynamic update, signed with TSIG.
struct rfc2136_config {
    std::string server{};  // HOST:PORT of the zone's primary (port 53 when absent)
    std::string zone{};    // the zone to update ("example.com")
    std::string tsig_name{};
    std::string tsig_alg = "hmac-sha256";  // hmac-sha256, hmac-sha384, hmac-sha512 or hmac-sha1
    std::string tsig_secret{};             // base64; secret: never printed
    bool operator==(const rfc2136_config&) const = default;
};

// How DNS-01 publishes its TXT records: one of the two.
struct acme_dns_config {
    std::optional<rfc2136_config> rfc2136{};
    std::string hook{};                 // dns_hook: a command run as `HOOK add|remove NAME VALUE`
    std::chrono::milliseconds wait{0};  // dns_wait: after publishing, before telling the CA
    bool operator==(const acme_dns_config&) const = default;
};

struct acme_config {
    std::string email{};
    std::string ca = letsencrypt_directory;  // the directory URL
    std::string ca_root{};                   // an extra trusted root for the CA's own HTTPS
    std::string state_dir{};                 // empty: default_state_dir()
    std::vector<std::string> challenges{"http-01", "tls-alpn-01"};
    double renew_after = 2.0 / 3.0;
    std::string eab_kid{};
    std::string eab_hmac{};  // secret: never printed
    // DNS-01: with it, DOMAIN and *.DOMAIN come in one certificate, ordered at start.
    std::optional<acme_dns_config> dns{};
    bool challenges_given = false;  // `challenges` was written: dns-01 is not added by itself
    bool operator==(const acme_config&) const = default;
};

// "letsencrypt", "letsencrypt-staging" or an https:// directory URL -> the URL.
tl::expected<std::string, std::string> acme_directory(const std::string& ca);
// $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/porthole, else
// ~/.local/state/porthole.
std::string default_state_dir();
// The [acme] table (or acme = { ... }) of `path` over `cfg`.
tl::expected<void, std::string> load_acme(const toml::node& n, const std::string& path,
                                          acme_config& cfg);

}  // namespace porthole::config
