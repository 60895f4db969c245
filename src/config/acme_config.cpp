#include "config/acme_config.hpp"

#include "config/toml_source.hpp"

#include <fmt/format.h>

#include <cstdlib>

namespace porthole::config {

tl::expected<std::string, std::string> acme_directory(const std::string &ca) {
  if (ca == "letsencrypt")
    return std::string(letsencrypt_directory);
  if (ca == "letsencrypt-staging")
    return std::string(letsencrypt_staging_directory);
  if (ca.starts_with("https://") && ca.size() > 8)
    return ca;
  return tl::unexpected(
      fmt::format("'{}' is not an ACME CA: use \"letsencrypt\", "
                  "\"letsencrypt-staging\" or the https:// "
                  "URL of an ACME directory",
                  ca));
}

std::string default_state_dir() {
  if (const char *systemd = std::getenv("STATE_DIRECTORY");
      systemd && *systemd) {
    const std::string dirs = systemd;
    return dirs.substr(
        0, dirs.find(':')); // several StateDirectory= entries: the first
  }
  if (const char *xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/porthole";
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.local/state/porthole";
  return "porthole-state";
}

tl::expected<void, std::string>
load_acme(const toml::node &n, const std::string &path, acme_config &cfg) {
  const auto at_of = [&](const toml::node &v) {
    return fmt::format("{}:{}", path, v.source().begin.line);
  };
  const auto *table = n.as_table();
  if (!table)
    return tl::unexpected(fmt::format(
        "{}: write acme as a table: [acme] with email = \"you@example.com\"",
        at_of(n)));
  for (auto &&[k, v] : *table) {
    const std::string_view key = k.str();
    const std::string at = at_of(v);
    const auto text = v.value_exact<std::string>();
    const auto need_text = [&]() -> tl::expected<std::string, std::string> {
      if (!text)
        return tl::unexpected(
            fmt::format("{}: acme.{} must be a string", at, key));
      return *text;
    };
    if (key == "email") {
      auto t = need_text();
      if (!t)
        return tl::unexpected(t.error());
      if (!t->empty() && (t->find('@') == std::string::npos ||
                          t->find_first_of(" \t\r\n<>,") != std::string::npos))
        return tl::unexpected(
            fmt::format("{}: acme.email '{}' is not an email address", at, *t));
      cfg.email = *t;
    } else if (key == "ca") {
      auto t = need_text().and_then([&](std::string s) {
        return acme_directory(s).map_error([&](std::string e) {
          return fmt::format("{}: acme.ca {}", at, e);
        });
      });
      if (!t)
        return tl::unexpected(t.error());
      cfg.ca = *t;
    } else if (key == "ca_root" || key == "state_dir" || key == "eab_kid" ||
               key == "eab_hmac") {
      auto t = need_text();
      if (!t)
        return tl::unexpected(t.error());
      (key == "ca_root"     ? cfg.ca_root
       : key == "state_dir" ? cfg.state_dir
       : key == "eab_kid"   ? cfg.eab_kid
                            : cfg.eab_hmac) = *t;
    } else if (key == "challenges") {
      const auto *list = v.as_array();
      if (!list || list->empty())
        return tl::unexpected(
            fmt::format("{}: acme.challenges must be a list such as "
                        "[\"http-01\", \"tls-alpn-01\"]",
                        at));
      cfg.challenges.clear();
      for (auto &&item : *list) {
        const auto c = item.value_exact<std::string>();
        if (c && *c == "dns-01")
          return tl::unexpected(fmt::format(
              "{}: acme.challenges: dns-01 is not available in this version; "
              "use "
              "\"http-01\" and \"tls-alpn-01\" (certificates per name)",
              at_of(item)));
        if (!c || (*c != "http-01" && *c != "tls-alpn-01"))
          return tl::unexpected(fmt::format("{}: acme.challenges: '{}' is not "
                                            "a challenge; use \"http-01\" or "
                                            "\"tls-alpn-01\"",
                                            at_of(item), c.value_or("?")));
        if (std::find(cfg.challenges.begin(), cfg.challenges.end(), *c) ==
            cfg.challenges.end())
          cfg.challenges.push_back(*c);
      }
    } else if (key == "renew_after") {
      const auto f = v.value<double>();
      if (!f || !(*f > 0) || !(*f < 1))
        return tl::unexpected(
            fmt::format("{}: acme.renew_after must be a fraction of a "
                        "certificate's lifetime "
                        "between 0 and 1 (0.667 renews at two thirds)",
                        at));
      cfg.renew_after = *f;
    } else {
      return tl::unexpected(
          unknown_key(at, key, " in [acme]",
                      {"email", "ca", "ca_root", "state_dir", "challenges",
                       "renew_after", "eab_kid", "eab_hmac"}));
    }
  }
  if (cfg.eab_kid.empty() != cfg.eab_hmac.empty())
    return tl::unexpected(
        fmt::format("{}: acme needs both eab_kid and eab_hmac for External "
                    "Account Binding, or neither",
                    at_of(n)));
  return {};
}

} // namespace porthole::config
