#include "relay/shared_tunnel_steps.hpp"

#include <algorithm>

namespace porthole::relay {

void shared_tunnel_steps::share(const std::string& name, policy::chain& mine) {
    if (std::none_of(mine.begin(), mine.end(), [](const auto& p) { return p->shared_by_loops(); }))
        return;
    const std::lock_guard lock(mutex_);
    const auto [it, first] = kept_.try_emplace(name, mine);
    // Built from another config (a loop that has not taken a reload yet): kept apart.
    if (!first) policy::share_steps(mine, it->second);
}

void shared_tunnel_steps::sweep(const std::function<bool(const std::string&)>& gone) {
    const std::lock_guard lock(mutex_);
    std::erase_if(kept_, [&](const auto& kv) {
        const bool held = std::any_of(kv.second.begin(), kv.second.end(), [](const auto& p) {
            return p->shared_by_loops() && p.use_count() > 1;
        });
        return !held && gone(kv.first);
    });
}

std::size_t shared_tunnel_steps::names() const {
    const std::lock_guard lock(mutex_);
    return kept_.size();
}

}  // namespace porthole::relay
