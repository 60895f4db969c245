#pragma once
// A tunnel owner's policies as the client sends them to the relay: TOML text of [[policies]]
// tables, and `cache = true`, from flags (--basic-auth, --allow-ip, --deny-ip, --rate-limit,
// --https-only, --verify-webhook, --compress, --cache) or from a [[tunnels.NAME.policies]]
// array and `cache = true` in [tunnels.NAME], checked here with the relay's own parser so that mistakes show
// at start. Passwords given on the command line are hashed (bcrypt) here: only hashes leave.
#include <tl/expected.hpp>

#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace porthole::config {

struct owner_policy_flags {
    std::vector<std::string> basic_auth;  // USER:PASSWORD
    std::vector<std::string> allow_ip, deny_ip;  // CIDR
    std::string rate_limit;  // N/PERIOD
    bool https_only = false;
    std::string verify_webhook;  // PROVIDER:SECRET
    bool compress = false;  // a compress table with its defaults
    bool cache = false;     // --cache: cache = true, the relay's tunnel cache for this tunnel
};

// The [[policies]] text for the flags; empty when none is given. Errors name the flag. In a
// tunnel group (`group_key` not empty) a user's bcrypt salt comes from the key and the user, so
// that members given the same flags send the same text (the relay wants a group to agree).
tl::expected<std::string, std::string> policies_from_flags(const owner_policy_flags& f,
                                                           const std::string& group_key);

// The [[policies]] text for a config file's [[tunnels.NAME.policies]] array; errors name
// FILE:LINE.
tl::expected<std::string, std::string> policies_from_file(const toml::node& n,
                                                          const std::string& path,
                                                          const std::string& name);

// `text` (as made above) with `cache = true` added: the owner asks for the relay's cache.
std::string with_cache(const std::string& text);

// The policy text as it goes on the wire: at most this long.
inline constexpr std::size_t max_policy_text = 4096;

}  // namespace porthole::config
