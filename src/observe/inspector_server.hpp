#pragma once
// The inspector's web page and JSON API on a loopback port (docs/inspector.md). It reads the
// capture store and asks the agent, through hooks, for the tunnel list and for replays.
#include "config/endpoint.hpp"
#include "observe/capture_store.hpp"
#include "observe/local_http.hpp"

#include <boost/asio/io_context.hpp>
#include <tl/expected.hpp>

#include <functional>
#include <memory>
#include <string>

namespace porthole::observe {

struct inspector_hooks {
    std::function<std::string()> tunnels_json;
    // Replays `raw` through the tunnel the original record came from.
    std::function<tl::expected<void, std::string>(const exchange_record& original,
                                                  std::string_view raw)>
        replay;
    // The client's Prometheus text, served as GET /metrics.
    std::function<std::string()> metrics;
};

class inspector_server {
public:
    // Listens on `addr`; when `next_free` and the port is taken, on the next free one of the
    // following ten.
    static tl::expected<std::unique_ptr<inspector_server>, std::string> start(
        boost::asio::io_context& io, const config::endpoint& addr, bool next_free,
        capture_store& store, inspector_hooks hooks);
    ~inspector_server();

    std::string url() const;  // http://127.0.0.1:4040
    void tunnels_changed();  // tells open pages

    struct impl;

private:
    inspector_server(std::shared_ptr<impl> i, std::unique_ptr<local_http::server> http);
    std::shared_ptr<impl> impl_;
    std::unique_ptr<local_http::server> http_;
};

}  // namespace porthole::observe
