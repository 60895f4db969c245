#pragma once
// What a reload may change in place, and what it would change. Pure: the relay applies the plan
// (relay.cpp) in one turn of its loop, or refuses the whole new config.
#include "config/server_config.hpp"

#include <string>
#include <vector>

namespace porthole::relay {

struct reload_plan {
    // Keys whose new value needs a restart (or `porthole admin upgrade`): listeners, the
    // domain every tunnel's URL is made of, the client transport, and what is read only at start.
    std::vector<std::string> needs_restart;
    std::vector<protocol::verifier> tokens_removed;  // their sessions close
    std::size_t sites_added = 0, sites_removed = 0, sites_kept = 0;  // by first host
    std::size_t tokens_added = 0;

    bool refused() const { return !needs_restart.empty(); }
};

reload_plan plan_reload(const config::server_config& old, const config::server_config& next);

// "domain, https_addr changed: restart the relay to apply them, or run porthole admin upgrade,
// which does without refusing a visitor (the running config stays)".
std::string restart_message(const reload_plan& p);

}  // namespace porthole::relay
