#pragma once
// The client's side of an HTTP tunnel: reads each request a visitor stream carries, picks the
// local service by path prefix, forwards request and response exactly as framed, and records
// both (and, after an upgrade, each WebSocket frame) for the inspector and the terminal view.
#include "client/client_metrics.hpp"
#include "config/client_config.hpp"
#include "net/stream.hpp"
#include "observe/capture_store.hpp"

#include <chrono>
#include <string>

namespace porthole::client {

struct http_tunnel {
    const config::tunnel_spec* spec = nullptr;  // target and routes
    std::string name;  // as the inspector shows it
    std::string public_name;  // NAME in NAME.DOMAIN, for error pages
    observe::capture_store* store = nullptr;
    observe::tunnel_metrics* metrics = nullptr;
    bool capture = true;  // keep bodies and WebSocket frames, not just heads
    std::chrono::seconds connect_timeout{10};
    tunnel_counters* counters = nullptr;  // requests, bytes, failures: for /metrics
};

// Serves one visitor stream until either side ends it.
boost::asio::awaitable<void> forward_http(net::stream relay_side, std::string visitor,
                                          http_tunnel tunnel);

// Sends `raw` (a request head and body, as the inspector shows it) to the local service again
// and records the exchange. Content-Length is set from the body and Transfer-Encoding dropped.
// Errors: the request does not parse.
tl::expected<void, std::string> replay_http(std::string_view raw,
                                            const observe::exchange_record* original,
                                            http_tunnel tunnel,
                                            const boost::asio::any_io_executor& ex);

}  // namespace porthole::client
