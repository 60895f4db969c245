#pragma once
// The first loop's HTTP and TLS tunnels as the other event loops see them (threads > 1): the names a
// worker may carry itself, and the metrics slot of every tunnel label, so what a worker counts
// adds up under the right name. The first loop builds one after each change and posts it to each
// worker; nobody changes it after. docs/architecture.md#threads
#include "config/policy_config.hpp"
#include "policy/chain.hpp"
#include "relay/relay_context.hpp"
#include "relay/tunnel_registry.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace porthole::relay {

class tunnel_directory {
public:
    // A name any loop may carry: served by a client of this relay, with no policy whose state
    // is the first loop's alone and no cache in its route. Rate limits and bandwidth limits are
    // shared: every loop takes from the first loop's (the owner's through owner_steps, the
    // relay's [tunnel_policy] through shared_tunnel_steps).
    bool carries(const std::string& name) const { return carried_.contains(name); }
    // A TLS passthrough tunnel any loop may carry: served by a client of this relay (nothing of
    // it keeps state: its bytes pass through).
    bool carries_tls(const std::string& name) const { return carried_tls_.contains(name); }
    // Its label's slot (tunnel_labels on the first loop).
    std::uint32_t slot(const std::string& name) const;
    // The owner's policies of a carried name (null when none): each loop builds its own steps
    // from them, then takes the first loop's steps whose state is shared (owner_steps, built
    // from the same settings; policy::share_steps).
    using policy_configs = std::shared_ptr<const std::vector<config::policy_config>>;
    const policy_configs& owner_policies(const std::string& name) const;
    const std::shared_ptr<const policy::chain>& owner_steps(const std::string& name) const;
    // The label of each slot, empty where the slot is free.
    const std::vector<std::string>& slot_names() const { return slot_names_; }

    // What `registry` and `ctx` of the first loop say now.
    static std::shared_ptr<const tunnel_directory> of(tunnel_registry& registry,
                                                      const relay_context& ctx);

private:
    struct carried {
        std::uint32_t slot = 0;
        policy_configs owner;
        std::shared_ptr<const policy::chain> steps;  // the first loop's, of `owner`
    };
    std::unordered_map<std::string, carried> carried_;
    std::unordered_set<std::string> carried_tls_;
    std::vector<std::string> slot_names_;
    std::uint32_t other_slot_ = 0;
};

}  // namespace porthole::relay
