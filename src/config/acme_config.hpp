#pragma once
// [acme]: automatic certificates from an ACME CA (docs/design-acme.md). Set by
// the table or by
// --acme-email and friends; `email` or the table itself turns it on.
#include <tl/expected.hpp>

#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
}
} // namespace toml

namespace porthole::config {

inline constexpr const char *letsencrypt_directory =
    "https://acme-v02.api.letsencrypt.org/directory";
inline constexpr const char *letsencrypt_staging_directory =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

struct acme_config {
  std::string email{};
  std::string ca = letsencrypt_directory; // the directory URL
  std::string ca_root{};   // an extra trusted root for the CA's own HTTPS
  std::string state_dir{}; // empty: default_state_dir()
  std::vector<std::string> challenges{"http-01", "tls-alpn-01"};
  double renew_after = 2.0 / 3.0;
  std::string eab_kid{};
  std::string eab_hmac{}; // secret: never printed
  bool operator==(const acme_config &) const = default;
};

// "letsencrypt", "letsencrypt-staging" or an https:// directory URL -> the URL.
tl::expected<std::string, std::string> acme_directory(const std::string &ca);
// $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/porthole, else
// ~/.local/state/porthole.
std::string default_state_dir();
// The [acme] table (or acme = { ... }) of `path` over `cfg`.
tl::expected<void, std::string>
load_acme(const toml::node &n, const std::string &path, acme_config &cfg);

} // namespace porthole::config
