#include "relay/tunnel_directory.hpp"

#include "policy/chain.hpp"

#include <algorithm>
#include <unordered_set>

namespace porthole::relay {

std::uint32_t tunnel_directory::slot(const std::string& name) const {
    const auto it = carried_.find(name);
    return it == carried_.end() ? other_slot_ : it->second.slot;
}

const tunnel_directory::policy_configs& tunnel_directory::owner_policies(
    const std::string& name) const {
    static const policy_configs none;
    const auto it = carried_.find(name);
    return it == carried_.end() ? none : it->second.owner;
}

const std::shared_ptr<const policy::chain>& tunnel_directory::owner_steps(
    const std::string& name) const {
    static const std::shared_ptr<const policy::chain> none;
    const auto it = carried_.find(name);
    return it == carried_.end() ? none : it->second.steps;
}

std::shared_ptr<const tunnel_directory> tunnel_directory::of(tunnel_registry& registry,
                                                             const relay_context& ctx) {
    auto d = std::make_shared<tunnel_directory>();
    const auto& labels = ctx.tunnel_labels;
    d->other_slot_ = labels.other_slot();
    d->slot_names_.reserve(labels.slots());
    for (std::uint32_t i = 0; i < labels.slots(); ++i)
        d->slot_names_.emplace_back(labels.name(i));
    registry.for_each_tunnel([&](const tunnel& t) {
        auto s = t.owner.lock();
        if (t.kind == protocol::tunnel_kind::tls && s && !s->closed) d->carried_tls_.insert(t.name);
    });
    // Every HTTP tunnel's route starts with these, built per name on each loop, which take the
    // steps whose state is the relay's from ctx.tunnel_steps: one whose state is this loop's
    // alone keeps them all on this loop.
    const auto relay_steps = policy::build_chain(ctx.cfg.tunnel_policies, ctx.jwks.get());
    if (policy::keeps_first_loop_state(relay_steps)) return d;
    // A name is carried when none of its clients brings a policy that keeps state on the first
    // loop or wants the cache, and no TLS tunnel has it. A group's members all bring the same
    // policies; the first loop judges with its first member's steps.
    std::unordered_set<std::string> stays, names;
    registry.for_each_tunnel([&](const tunnel& t) {
        if (t.kind == protocol::tunnel_kind::tls) stays.insert(t.name);  // its SNI is passed on
        if (t.kind != protocol::tunnel_kind::http) return;
        const bool cached =
            ctx.tunnel_cache && (t.owner_cache || !ctx.tunnel_cache_config.opt_in);
        const bool stateful = t.policies && policy::keeps_first_loop_state(*t.policies);
        auto s = t.owner.lock();
        if (cached || stateful) stays.insert(t.name);
        else if (s && !s->closed) names.insert(t.name);
    });
    for (const auto& name : names) {
        const tunnel_group* g = registry.local(protocol::tunnel_kind::http, name);
        if (stays.contains(name) || !g || g->members.empty()) continue;
        const tunnel& first = *g->members.front();
        if (first.policies) {
            // What a worker will build from the settings must match the steps it shares.
            if (!first.policy_configs) continue;
            auto mine = policy::build_chain(*first.policy_configs);
            if (!policy::share_steps(mine, *first.policies)) continue;
        }
        d->carried_.emplace(name, carried{labels.slot_of(name),
                                          first.policies ? first.policy_configs : nullptr,
                                          first.policies});
    }
    return d;
}

}  // namespace porthole::relay
