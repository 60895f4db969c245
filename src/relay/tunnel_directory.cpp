#include "relay/tunnel_directory.hpp"

#include <unordered_set>

namespace porthole::relay {

std::uint32_t tunnel_directory::slot(const std::string& name) const {
    const auto it = carried_.find(name);
    return it == carried_.end() ? other_slot_ : it->second;
}

std::shared_ptr<const tunnel_directory> tunnel_directory::of(tunnel_registry& registry,
                                                             const relay_context& ctx) {
    auto d = std::make_shared<tunnel_directory>();
    const auto& labels = ctx.tunnel_labels;
    d->other_slot_ = labels.other_slot();
    d->slot_names_.reserve(labels.slots());
    for (std::uint32_t i = 0; i < labels.slots(); ++i)
        d->slot_names_.emplace_back(labels.name(i));
    if (!ctx.cfg.tunnel_policies.empty()) return d;  // every tunnel's route has a policy
    // A name is carried when none of its clients brings policies or wants the cache, and no TLS
    // tunnel has it.
    std::unordered_set<std::string> stays;
    std::unordered_set<std::string> names;
    registry.for_each_tunnel([&](const tunnel& t) {
        if (t.kind == protocol::tunnel_kind::tls) stays.insert(t.name);  // its SNI is passed on
        if (t.kind != protocol::tunnel_kind::http) return;
        const bool cached =
            ctx.tunnel_cache && (t.owner_cache || !ctx.tunnel_cache_config.opt_in);
        const bool policies = t.policies && !t.policies->empty();
        auto s = t.owner.lock();
        if (cached || policies) stays.insert(t.name);
        else if (s && !s->closed) names.insert(t.name);
    });
    for (const auto& name : names)
        if (!stays.contains(name)) d->carried_.emplace(name, labels.slot_of(name));
    return d;
}

}  // namespace porthole::relay
