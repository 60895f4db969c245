#pragma once
// A route's policy steps, built from their settings (checked when the config was read).
#include "config/policy_config.hpp"
#include "policy/policy.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace porthole::policy {

using chain = std::vector<std::shared_ptr<policy>>;

class jwks_sources;  // policy/jwks_fetch.hpp

// `jwks` holds the key rings of jwks_url policies (null: such a policy has no keys).
chain build_chain(const std::vector<config::policy_config>& configs,
                  const jwks_sources* jwks = nullptr);

// A step of `c` keeps state that is the first event loop's alone (policy::keeps_state, and not
// shared_by_loops): a route or tunnel with such a step is served by the first loop.
bool keeps_first_loop_state(const chain& c);

// The steps of `first`, built on the first event loop from the same settings as `mine`, put in
// place of `mine`'s where the loops share their state (policy::shared_by_loops). False, and
// `mine` as it was, when the two are not the same steps.
bool share_steps(chain& mine, const chain& first);

// The most body bytes any step of `c` judges; 0 when none reads the body, the usual case, in
// which the edge streams the body as it arrives.
std::uint64_t body_needed(const chain& c);

}  // namespace porthole::policy
