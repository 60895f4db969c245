#pragma once
#include "config/server_config.hpp"

#include <tl/expected.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace porthole::relay {

// Reads the relay's config anew, as at start: for a reload.
using config_source = std::function<tl::expected<config::server_config, std::string>()>;

struct start_options {
    // This process's arguments: `porthole admin upgrade` starts the new program with them.
    std::vector<std::string> command{};
    // The channel to the relay this one replaces (handoff::takeover_channel()): its listening
    // sockets and leases are taken over, and it is told when this one serves.
    std::optional<int> takeover{};
};

// Runs a relay until SIGINT/SIGTERM, or until a new relay has taken over; returns the process
// exit code. Start-up failures (a port in use, say) print one line to stderr and return
// non-zero. SIGHUP reloads the config from `reload` (null: there is nothing to reload, as for
// porthole proxy).
int run(config::server_config cfg, config_source reload, start_options start = {});

}  // namespace porthole::relay
