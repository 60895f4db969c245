#pragma once
// The client side: one control session to the relay, a warm pool of data connections, and the
// forwarding of each visitor stream to a local target. Reconnects on its own.
#include "config/endpoint.hpp"
#include "protocol/frame.hpp"

#include <string>
#include <vector>

namespace porthole::client {

struct tunnel_spec {
    protocol::tunnel_kind kind = protocol::tunnel_kind::http;
    config::endpoint target;
    std::string subdomain;  // http: empty = the relay picks one
    std::uint16_t remote_port = 0;  // tcp: 0 = the relay picks one
    std::string host_header = "preserve";  // http: preserve | rewrite | a literal value
};

struct agent_config {
    config::endpoint server{"127.0.0.1", 7835};
    std::string token;
    std::vector<tunnel_spec> tunnels;
    bool json = false;  // one JSON event per line on stdout instead of text
};

// Runs until SIGINT/SIGTERM (exit code 0) or a failure that retrying cannot fix (non-zero): a
// relay never reached, a refused token, a refused tunnel.
int run(const agent_config& cfg);

}  // namespace porthole::client
