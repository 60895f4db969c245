#pragma once
// basic_auth: 401 with WWW-Authenticate unless the request's Basic credentials match a user's
// crypt(3) hash (bcrypt or SHA-crypt, checked by libcrypt). The Authorization field stays on this
// side unless forwarding it was asked for.
#include "config/policy_config.hpp"
#include "policy/policy.hpp"

#include <string>
#include <unordered_map>
#include <unordered_set>

namespace porthole::policy {

class basic_auth final : public policy {
public:
    explicit basic_auth(const config::basic_auth_settings& s);
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "basic_auth"; }

private:
    bool verified(std::string_view user, std::string_view password);

    std::unordered_map<std::string, std::string> users_;  // name -> hash
    std::string dummy_hash_;  // an unknown user costs what a known one does
    std::string challenge_;   // the WWW-Authenticate line
    bool forward_;
    // Digests of credentials that matched: bcrypt costs milliseconds on the event loop, so a
    // visitor's repeated requests check once. Bounded; emptied when full. A cache only: each
    // event loop's copy of the policy keeps its own, so its routes are served by every loop.
    std::unordered_set<std::string> good_;
};

}  // namespace porthole::policy
