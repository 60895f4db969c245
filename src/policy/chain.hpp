#pragma once
// A route's policy steps, built from their settings (checked when the config was read).
#include "config/policy_config.hpp"
#include "policy/policy.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace porthole::policy {

using chain = std::vector<std::shared_ptr<policy>>;

chain build_chain(const std::vector<config::policy_config>& configs);

}  // namespace porthole::policy
