#pragma once
#include "config/server_config.hpp"

namespace porthole::relay {

// Runs a relay until SIGINT/SIGTERM; returns the process exit code. Start-up failures (a port in
// use, say) print one line to stderr and return non-zero.
int run(const config::server_config& cfg);

}  // namespace porthole::relay
