#pragma once
// The [tunnel_policy] steps whose state is the relay's and not one event loop's (a rate limit's
// counts, a bandwidth budget: policy::shared_by_loops), one set per tunnel name for every loop.
// Each loop builds a name's [tunnel_policy] chain itself and hands it to share(), which gives
// it the steps the first loop to ask kept, so a `rate_limit` of 100 is 100 for the tunnel
// whichever loops its visitors reach. A reload starts a new one: the counts start again, as
// they did when the chains were each loop's. Taken under a mutex when a loop builds a name's
// route (once per tunnel change on a worker), never per request.
#include "policy/chain.hpp"

#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace porthole::relay {

class shared_tunnel_steps {
public:
    // `mine`: the chain this loop built for `name` from the relay's [tunnel_policy]. Its steps
    // whose state the loops share become the ones kept for `name` (the first call keeps
    // `mine`'s). A chain with no such step is left alone.
    void share(const std::string& name, policy::chain& mine);
    // Drops the names `gone` says no longer have a tunnel here and whose shared steps no loop's
    // route holds any more (on the first loop's sweep, once a second).
    void sweep(const std::function<bool(const std::string&)>& gone);
    std::size_t names() const;

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, policy::chain> kept_;  // by tunnel name
};

}  // namespace porthole::relay
