#include "config/acme_config.hpp"

#include "config/toml_source.hpp"

#include <fmt/format.h>

#include <cstdlib>

namespace porthole::config {

tl::expected<std::string, std::string> acme_directory(const std::string& ca) {
    if (ca == "letsencrypt") return std::string(letsencrypt_directory);
    if (ca == "letsencrypt-staging") return std::string(letsencrypt_staging_directory);
    if (ca.starts_with("https://") && ca.size() > 8) return ca;
    return tl::unexpected(
        fmt::format("'{}' is not an ACME CA: use \"letsencrypt\", "
                    "\"letsencrypt-staging\" or the https:// URL of an ACME directory",
                    ca));
}

std::string default_state_dir() {
    if (const char* systemd = std::getenv("STATE_DIRECTORY"); systemd && *systemd) {
        const std::string dirs = systemd;
        return dirs.substr(0, dirs.find(':'));  // several StateDirectory= entries: the first
    }
    if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg)
        return std::string(xdg) + "/porthole";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.local/state/porthole";
    return "porthole-state";
}

namespace {

// dns = { rfc2136 = { server, zone, tsig_name, tsig_alg, tsig_secret } }
tl::expected<rfc2136_config, std::string> load_dns(const toml::node& n, const std::string& path) {
    const auto at_of = [&](const toml::node& v) {
        return fmt::format("{}:{}", path, v.source().begin.line);
    };
    const auto* table = n.as_table();
    const auto* inner = table ? table->get("rfc2136") : nullptr;
    if (!table || table->size() != 1 || !inner || !inner->as_table())
        return tl::unexpected(fmt::format(
            "{}: write acme.dns as dns = {{ rfc2136 = {{ server = \"HOST:PORT\", zone = "
            "\"ZONE\", tsig_name = \"NAME\", tsig_secret = \"BASE64\" }} }} (or use dns_hook)",
            at_of(n)));
    rfc2136_config out;
    for (auto&& [k, v] : *inner->as_table()) {
        const std::string_view key = k.str();
        const std::string at = at_of(v);
        const auto text = v.value_exact<std::string>();
        if (key != "server" && key != "zone" && key != "tsig_name" && key != "tsig_alg" &&
            key != "tsig_secret")
            return tl::unexpected(
                unknown_key(at, key, " in acme.dns.rfc2136",
                            {"server", "zone", "tsig_name", "tsig_alg", "tsig_secret"}));
        if (!text || text->empty())
            return tl::unexpected(
                fmt::format("{}: acme.dns.rfc2136.{} must be a non-empty string", at, key));
        if (key == "tsig_alg" && *text != "hmac-sha256" && *text != "hmac-sha384" &&
            *text != "hmac-sha512" && *text != "hmac-sha1")
            return tl::unexpected(fmt::format(
                "{}: acme.dns.rfc2136.tsig_alg '{}': use hmac-sha256, hmac-sha384, hmac-sha512 "
                "or hmac-sha1",
                at, *text));
        (key == "server"      ? out.server
         : key == "zone"      ? out.zone
         : key == "tsig_name" ? out.tsig_name
         : key == "tsig_alg"  ? out.tsig_alg
                              : out.tsig_secret) = *text;
    }
    for (auto [value, key] :
         {std::pair{&out.server, "server"}, std::pair{&out.zone, "zone"},
          std::pair{&out.tsig_name, "tsig_name"}, std::pair{&out.tsig_secret, "tsig_secret"}})
        if (value->empty())
            return tl::unexpected(fmt::format("{}: acme.dns.rfc2136 needs {}", at_of(*inner), key));
    return out;
}

}  // namespace

tl::expected<void, std::string> load_acme(const toml::node& n, const std::string& path,
                                          acme_config& cfg) {
    const auto at_of = [&](const toml::node& v) {
        return fmt::format("{}:{}", path, v.source().begin.line);
    };
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(fmt::format(
            "{}: write acme as a table: [acme] with email = \"you@example.com\"", at_of(n)));
    for (auto&& [k, v] : *table) {
        const std::string_view key = k.str();
        const std::string at = at_of(v);
        const auto text = v.value_exact<std::string>();
        const auto need_text = [&]() -> tl::expected<std::string, std::string> {
            if (!text) return tl::unexpected(fmt::format("{}: acme.{} must be a string", at, key));
            return *text;
        };
        if (key == "email") {
            auto t = need_text();
            if (!t) return tl::unexpected(t.error());
            if (!t->empty() && (t->find('@') == std::string::npos ||
                                t->find_first_of(" \t\r\n<>,") != std::string::npos))
                return tl::unexpected(
                    fmt::format("{}: acme.email '{}' is not an email address", at, *t));
            cfg.email = *t;
        } else if (key == "ca") {
            auto t = need_text().and_then([&](std::string s) {
                return acme_directory(s).map_error(
                    [&](std::string e) { return fmt::format("{}: acme.ca {}", at, e); });
            });
            if (!t) return tl::unexpected(t.error());
            cfg.ca = *t;
        } else if (key == "ca_root" || key == "state_dir" || key == "eab_kid" ||
                   key == "eab_hmac") {
            auto t = need_text();
            if (!t) return tl::unexpected(t.error());
            (key == "ca_root"     ? cfg.ca_root
             : key == "state_dir" ? cfg.state_dir
             : key == "eab_kid"   ? cfg.eab_kid
                                  : cfg.eab_hmac) = *t;
        } else if (key == "challenges") {
            const auto* list = v.as_array();
            if (!list || list->empty())
                return tl::unexpected(
                    fmt::format("{}: acme.challenges must be a list such as "
                                "[\"http-01\", \"tls-alpn-01\"]",
                                at));
            cfg.challenges.clear();
            cfg.challenges_given = true;
            for (auto&& item : *list) {
                const auto c = item.value_exact<std::string>();
                if (!c || (*c != "http-01" && *c != "tls-alpn-01" && *c != "dns-01"))
                    return tl::unexpected(fmt::format(
                        "{}: acme.challenges: '{}' is not a challenge; use \"http-01\", "
                        "\"tls-alpn-01\" or \"dns-01\"",
                        at_of(item), c.value_or("?")));
                if (std::find(cfg.challenges.begin(), cfg.challenges.end(), *c) ==
                    cfg.challenges.end())
                    cfg.challenges.push_back(*c);
            }
        } else if (key == "dns") {
            auto dns = load_dns(v, path);
            if (!dns) return tl::unexpected(dns.error());
            if (!cfg.dns) cfg.dns.emplace();
            cfg.dns->rfc2136 = std::move(*dns);
        } else if (key == "dns_hook") {
            auto t = need_text();
            if (!t) return tl::unexpected(t.error());
            if (t->empty() || (*t)[0] != '/')
                return tl::unexpected(fmt::format(
                    "{}: acme.dns_hook must be the absolute path of a command (it is run as "
                    "HOOK add|remove NAME VALUE)",
                    at));
            if (!cfg.dns) cfg.dns.emplace();
            cfg.dns->hook = *t;
        } else if (key == "dns_wait") {
            const auto wait = duration_value(v, std::chrono::minutes(10));
            if (!wait)
                return tl::unexpected(fmt::format(
                    "{}: acme.dns_wait must be a duration up to 10 minutes (\"30s\")", at));
            if (!cfg.dns) cfg.dns.emplace();
            cfg.dns->wait = *wait;
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
                            {"email", "ca", "ca_root", "state_dir", "challenges", "renew_after",
                             "eab_kid", "eab_hmac", "dns", "dns_hook", "dns_wait"}));
        }
    }
    const bool dns_01 =
        std::find(cfg.challenges.begin(), cfg.challenges.end(), "dns-01") != cfg.challenges.end();
    const bool publishes = cfg.dns && (cfg.dns->rfc2136 || !cfg.dns->hook.empty());
    if (cfg.dns && cfg.dns->rfc2136 && !cfg.dns->hook.empty())
        return tl::unexpected(fmt::format(
            "{}: acme has both dns (RFC 2136) and dns_hook: DNS-01 records go one way; keep one",
            at_of(n)));
    if (dns_01 && !publishes)
        return tl::unexpected(fmt::format(
            "{}: acme.challenges has dns-01, which needs somewhere to put its TXT records: "
            "dns = {{ rfc2136 = {{ server = \"ns1.example.com:53\", zone = \"example.com\", "
            "tsig_name = \"acme\", tsig_secret = \"BASE64\" }} }} or dns_hook = \"/path/cmd\"",
            at_of(n)));
    if (publishes && !dns_01) {
        if (cfg.challenges_given)
            return tl::unexpected(fmt::format(
                "{}: acme sets dns or dns_hook but its challenges leave out \"dns-01\": add it",
                at_of(n)));
        cfg.challenges.insert(cfg.challenges.begin(), "dns-01");
    }
    if (cfg.eab_kid.empty() != cfg.eab_hmac.empty())
        return tl::unexpected(
            fmt::format("{}: acme needs both eab_kid and eab_hmac for External "
                        "Account Binding, or neither",
                        at_of(n)));
    return {};
}

}  // namespace porthole::config
