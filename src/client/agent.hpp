#pragma once
// The client side: one control session to the relay, a warm pool of data connections, and the
// forwarding of each visitor stream to a local target. Reconnects on its own.
#include "config/client_config.hpp"

namespace porthole::client {

using config::agent_config;
using config::tunnel_spec;

// Runs until SIGINT/SIGTERM (exit code 0) or a failure that retrying cannot fix (non-zero): a
// relay never reached, a refused token, a refused tunnel.
int run(const agent_config& cfg);

}  // namespace porthole::client
