#pragma once
// bandwidth: bytes a second through the route, each direction, shared by all its visitors; the
// edge and the pump wait for the budget (nothing is dropped). docs/policies.md has the rules.
#include "config/policy_config.hpp"
#include "net/byte_shaper.hpp"
#include "policy/policy.hpp"

#include <memory>

namespace porthole::policy {

class bandwidth final : public policy {
public:
    explicit bandwidth(const config::bandwidth_settings& s);
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "bandwidth"; }
    bool keeps_state() const override { return true; }
    // Its shapers are the relay's: every loop's route takes from the first loop's.
    bool shared_by_loops() const override { return true; }

private:
    std::shared_ptr<net::byte_shaper> up_, down_;  // null: that direction is not shaped
};

}  // namespace porthole::policy
