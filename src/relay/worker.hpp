#pragma once
// One more event loop of a relay (`threads` > 1), on a thread of its own: its own listeners on
// the HTTP and HTTPS addresses (SO_REUSEPORT: the kernel spreads connections over the loops),
// its own copy
// of the config and of the sites' route table (upstream pools, health checks, policies), its own
// counters and access-log buffer. It serves the routes any loop may serve (route::any_loop),
// terminating TLS for configured sites, and the tunnels the first loop's directory says it may
// carry, over data connections the first loop hands it (relay/loop_tunnels.hpp); a request for
// anything else hands its connection to the first loop, once, and it stays there (before the
// handshake for HTTPS that is neither a site's nor a carried tunnel's).
// Everything but the constructor and listen() is called from the first loop's thread.
#include "config/server_config.hpp"
#include "observe/relay_counters.hpp"
#include "relay/handoff.hpp"
#include "relay/http_edge.hpp"
#include "relay/https_edge.hpp"
#include "relay/local_registry.hpp"
#include "relay/loop_pumps.hpp"
#include "relay/loop_tunnels.hpp"
#include "relay/relay_context.hpp"
#include "relay/tunnel_directory.hpp"
#include "route/route_table.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <tl/expected.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace porthole::relay {

class worker {
public:
    // `visitors`: the relay's connections per address; `jwks`: the first loop's jwks_url key
    // rings.
    // `index`: 1 for the second loop, and so on (its thread is named porthole-loopN).
    // `https`: the relay's certificates (null: no HTTPS). `to_http` and `to_https`: the first
    // loop's HTTP edge and HTTPS edge adopting what this one hands over. `first`: where its
    // tunnels' data connections come from. `first_recent`: the first loop's recent events,
    // where this loop's go too (posted).
    worker(unsigned index, const config::server_config& cfg,
           std::shared_ptr<visitor_table> visitors, std::shared_ptr<policy::jwks_sources> jwks,
           std::shared_ptr<shared_tunnel_steps> tunnel_steps, net::https_certificates* https, std::uint16_t https_port, hand_over_fn to_http,
           hand_over_fn to_https, first_loop_tunnels first, observe::recent_events& first_recent);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // The listening sockets the relay this one replaces handed over for this loop; before
    // listen().
    void inherit(handoff::inherited given) { ctx_.inherited = std::move(given); }
    // Its listening sockets, for a relay that replaces this one; -1 for none.
    int http_listener_fd() const { return http_fd_; }
    int https_listener_fd() const { return https_fd_; }
    // Builds the routes and listens; before start(). `first_sites`: the first loop's table,
    // whose pools run the active health checks this loop's pools follow.
    tl::expected<void, std::string> listen(std::shared_ptr<const route::route_table> first_sites);
    void start();
    // A reload the first loop applied: this loop takes `next` as its config, and the
    // certificates it read again.
    void reload(config::server_config next, net::https_certificates* https,
                std::shared_ptr<const route::route_table> first_sites,
                std::shared_ptr<shared_tunnel_steps> tunnel_steps);
    // Stops accepting; kept-alive connections close when idle after `idle_grace`.
    void drain(std::chrono::seconds idle_grace);
    // Ends the loop and its thread.
    void stop();
    void reopen_log();
    // A TCP connection the first loop opened, for this loop to pump (relay/loop_pumps.hpp).
    void pump(handed_pump p);
    // The first loop's tunnels changed: what this loop may carry from now.
    void publish(std::shared_ptr<const tunnel_directory> directory);

    // Its counters as of now, for a scrape: the first loop waits for this one to copy them
    // (microseconds; at most 100 ms, then they are the last second's).
    observe::relay_counters counters_now();
    // Its visitor connections open as of the last second, and its counters as last published.
    std::size_t active_visitors() const { return active_.load(std::memory_order_relaxed); }
    // Draining, it has closed its last visitor connection.
    bool drained() const { return drained_.load(std::memory_order_acquire); }
    observe::relay_counters counters() const;

private:
    boost::asio::awaitable<void> sweep();
    boost::asio::awaitable<void> close_idle_after(std::chrono::seconds grace);
    tl::expected<std::shared_ptr<route::route_table>, std::string> build(
        const config::site_set& sites, const route::route_table& first_sites);

    // destroy_pending(): the coroutine frames still suspended go while what they use exists.
    struct loop_io : boost::asio::io_context {
        using io_context::io_context;
        void destroy_pending() { shutdown(); }
    };
    unsigned index_;
    loop_io io_;
    config::server_config cfg_;
    relay_context ctx_;
    local_registry registry_;  // empty: tunnels are the first loop's
    std::shared_ptr<const tunnel_directory> directory_ = std::make_shared<tunnel_directory>();
    loop_tunnels tunnels_;
    std::shared_ptr<route::route_table> sites_ = std::make_shared<route::route_table>();
    http_edge http_;
    https_edge https_edge_;
    boost::asio::steady_timer sweep_;
    std::thread thread_;
    int http_fd_ = -1, https_fd_ = -1;  // set by listen(), open until drain()
    std::atomic<std::size_t> active_{0};
    std::atomic<bool> drained_{false};
    mutable std::mutex published_mutex_;
    observe::relay_counters published_;  // guarded by published_mutex_
};

}  // namespace porthole::relay
