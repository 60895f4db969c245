#pragma once
#include "config/server_config.hpp"

#include <tl/expected.hpp>

#include <functional>
#include <string>

namespace porthole::relay {

// Reads the relay's config anew, as at start: for a reload.
using config_source = std::function<tl::expected<config::server_config, std::string>()>;

// Runs a relay until SIGINT/SIGTERM; returns the process exit code. Start-up failures (a port in
// use, say) print one line to stderr and return non-zero. SIGHUP reloads the config from
// `reload` (null: there is nothing to reload, as for porthole proxy).
int run(config::server_config cfg, config_source reload);

}  // namespace porthole::relay
