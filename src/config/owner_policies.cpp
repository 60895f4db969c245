#include "config/owner_policies.hpp"

#include "config/policy_config.hpp"
#include "config/toml_source.hpp"
#include "net/network_list.hpp"

#include <crypt.h>
#include <fmt/format.h>
#include <openssl/sha.h>

#include <memory>
#include <sstream>

namespace porthole::config {

namespace {

// bcrypt of `password`: with a fresh salt (libcrypt takes it from the system's random source),
// or, given `salt_seed`, with a salt derived from it.
tl::expected<std::string, std::string> bcrypt(const std::string& password,
                                              const std::string& salt_seed) {
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    unsigned char seed[SHA256_DIGEST_LENGTH];
    if (!salt_seed.empty())
        SHA256(reinterpret_cast<const unsigned char*>(salt_seed.data()), salt_seed.size(), seed);
    if (!crypt_gensalt_rn("$2b$", 10, salt_seed.empty() ? nullptr : reinterpret_cast<const char*>(seed),
                          salt_seed.empty() ? 0 : 16, salt, sizeof salt))
        return tl::unexpected(std::string("libcrypt cannot make a bcrypt salt"));
    auto data = std::make_unique<crypt_data>();
    const char* hash = crypt_rn(password.c_str(), salt, data.get(), sizeof(crypt_data));
    if (!hash || hash[0] == '*') return tl::unexpected(std::string("libcrypt cannot hash with bcrypt"));
    return std::string(hash);
}

// The text as sent, checked with the relay's reader; `what` names it in errors.
tl::expected<std::string, std::string> checked(const toml::array& policies,
                                               const std::string& what) {
    if (policies.empty()) return std::string();
    std::ostringstream text;
    text << toml::table{{"policies", policies}} << "\n";
    auto parsed = load_owner_policies(text.str(), what, {});
    if (!parsed) return tl::unexpected(parsed.error());
    if (text.str().size() > max_policy_text)
        return tl::unexpected(fmt::format("{}: the policies take {} bytes; at most {} fit in a "
                                          "tunnel request",
                                          what, text.str().size(), max_policy_text));
    return text.str();
}

}  // namespace

tl::expected<std::string, std::string> policies_from_flags(const owner_policy_flags& f,
                                                           const std::string& group_key) {
    toml::array policies;
    if (f.https_only) policies.push_back(toml::table{{"type", "https_only"}});
    const auto networks = [](const char* flag, const std::vector<std::string>& cidrs)
        -> tl::expected<toml::array, std::string> {
        if (auto parsed = net::network_list::parse(cidrs); !parsed)
            return tl::unexpected(fmt::format("{}: {}", flag, parsed.error()));
        toml::array out;
        for (const auto& c : cidrs) out.push_back(c);
        return out;
    };
    if (!f.deny_ip.empty()) {
        auto cidrs = networks("--deny-ip", f.deny_ip);
        if (!cidrs) return tl::unexpected(cidrs.error());
        policies.push_back(toml::table{{"type", "ip_deny"}, {"cidrs", std::move(*cidrs)}});
    }
    if (!f.allow_ip.empty()) {
        auto cidrs = networks("--allow-ip", f.allow_ip);
        if (!cidrs) return tl::unexpected(cidrs.error());
        policies.push_back(toml::table{{"type", "ip_allow"}, {"cidrs", std::move(*cidrs)}});
    }
    if (!f.rate_limit.empty()) {
        if (auto rate = parse_rate(f.rate_limit); !rate)
            return tl::unexpected("--rate-limit: " + rate.error());
        policies.push_back(toml::table{{"type", "rate_limit"}, {"rate", f.rate_limit}});
    }
    if (!f.basic_auth.empty()) {
        toml::array users;
        for (const auto& pair : f.basic_auth) {
            const auto colon = pair.find(':');
            if (colon == std::string::npos || colon == 0 || colon + 1 == pair.size())
                return tl::unexpected(std::string(
                    "--basic-auth: give USER:PASSWORD, like --basic-auth alice:a-long-password"));
            const std::string user = pair.substr(0, colon);
            auto hash = bcrypt(pair.substr(colon + 1),
                               group_key.empty() ? std::string()
                                                 : "porthole-basic-auth-salt\n" + group_key +
                                                       "\n" + user);
            if (!hash) return tl::unexpected("--basic-auth: " + hash.error());
            users.push_back(pair.substr(0, colon) + ":" + *hash);
        }
        policies.push_back(toml::table{{"type", "basic_auth"}, {"users", std::move(users)}});
    }
    if (!f.verify_webhook.empty()) {
        // The secret is never echoed: only the provider part appears in messages.
        const auto colon = f.verify_webhook.find(':');
        const std::string provider = f.verify_webhook.substr(0, colon);
        const bool known = provider == "github" || provider == "stripe" || provider == "slack" ||
                           provider == "shopify" || provider == "twilio";
        if (colon == std::string::npos || colon + 1 == f.verify_webhook.size() || !known)
            return tl::unexpected(std::string(
                "--verify-webhook: give PROVIDER:SECRET with a provider of github, stripe, slack, "
                "shopify or twilio, like --verify-webhook github:YOUR_WEBHOOK_SECRET (a generic "
                "HMAC needs its header: write a [[tunnels.NAME.policies]] table)"));
        policies.push_back(toml::table{{"type", "verify_webhook"},
                                       {"provider", provider},
                                       {"secret", f.verify_webhook.substr(colon + 1)}});
    }
    if (f.compress) policies.push_back(toml::table{{"type", "compress"}});
    auto text = checked(policies,
                        "--basic-auth, --allow-ip, --deny-ip, --rate-limit, --https-only, "
                        "--verify-webhook, --compress");
    if (text && f.cache) text = with_cache(*text);
    return text;
}

std::string with_cache(const std::string& text) {
    // A top-level key goes before the [[policies]] tables.
    return "cache = true\n" + text;
}

tl::expected<std::string, std::string> policies_from_file(const toml::node& n,
                                                          const std::string& path,
                                                          const std::string& name) {
    const auto* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables())
        return tl::unexpected(fmt::format("{}:{}: write a tunnel's policies as "
                                          "[[tunnels.{}.policies]] tables",
                                          path, n.source().begin.line, name));
    // Checked where they were written first, so errors name the file's own lines.
    auto own = load_policies(n, path, fmt::format("tunnels.{}.policies", name), true);
    if (!own) return tl::unexpected(own.error());
    return checked(*arr, fmt::format("{} (tunnel {}'s policies)", path, name));
}

}  // namespace porthole::config
