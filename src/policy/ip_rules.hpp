#pragma once
// ip_allow and ip_deny: 403 for a visitor outside (allow) or inside (deny) a list of networks.
#include "net/network_list.hpp"
#include "policy/policy.hpp"

namespace porthole::policy {

class ip_rule final : public policy {
public:
    ip_rule(bool allow, net::network_list networks)
        : allow_(allow), networks_(std::move(networks)) {}
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return allow_ ? "ip_allow" : "ip_deny"; }

private:
    bool allow_;
    net::network_list networks_;
};

}  // namespace porthole::policy
