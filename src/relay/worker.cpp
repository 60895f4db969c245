#include "relay/worker.hpp"

#include "core/heap_trim.hpp"
#include "core/use_tuple.hpp"
#include "policy/chain.hpp"
#include "relay/policy_notice.hpp"
#include "relay/site_builder.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>

namespace porthole::relay {

namespace asio = boost::asio;
using namespace std::chrono_literals;


worker::worker(unsigned index, const config::server_config& cfg,
               std::shared_ptr<visitor_table> visitors,
               std::shared_ptr<policy::jwks_sources> jwks,
               std::shared_ptr<shared_tunnel_steps> tunnel_steps, net::https_certificates* https,
               std::uint16_t https_port, hand_over_fn to_http, hand_over_fn to_https,
               first_loop_tunnels first, observe::recent_events& first_recent)
    // Other threads post to it (the first loop's reload, drain and stop); its sockets are its own.
    : index_(index), io_(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO), cfg_(cfg), ctx_(io_, cfg_, https),
      registry_(cfg.lease_grace, "local"),
      tunnels_(io_.get_executor(), first, directory_, ctx_.counters.data_handed),
      http_(ctx_, registry_, tunnels_, sites_), https_edge_(ctx_, registry_, http_), sweep_(io_),
      published_(ctx_.counters) {
    ctx_.visitors = std::move(visitors);
    ctx_.jwks = std::move(jwks);
    ctx_.tunnel_steps = std::move(tunnel_steps);
    ctx_.https_port = https_port;
    http_.hand_over_to(std::move(to_http));
    http_.carry_tunnels_of(directory_);
    // A policy of a carried tunnel answered a visitor: its client hears of it from the first
    // loop, which holds the session and the tunnel's budget of notices.
    http_.tell_policy_answers_through(
        [to = first.executor, registry = first.registry](std::string name,
                                                         protocol::policy_answered notice) {
            asio::post(to, [registry, name = std::move(name), notice = std::move(notice)]() mutable {
                send_policy_notice(*registry, name, std::move(notice));
            });
        });
    // Each event this loop keeps is kept by the first one too, which the admin API reads.
    ctx_.recent.on_add([this, to = first.executor, &first_recent] {
        asio::post(to, [&first_recent, e = ctx_.recent.newest()]() mutable {
            first_recent.add_kept(std::move(e));
        });
    });
    https_edge_.hand_over_to(std::move(to_https));
    https_edge_.carry_tunnels_of(&tunnels_);
}

worker::~worker() { stop(); }

tl::expected<std::shared_ptr<route::route_table>, std::string> worker::build(
    const config::site_set& sites, const route::route_table& first_sites) {
    auto table = std::make_shared<route::route_table>();
    auto built = build_sites(sites, nullptr, *ctx_.jwks, *table, false);
    if (!built) return tl::unexpected(built.error());
    // Built from the same config, site for site and route for route: the first loop checks.
    // Each loop's rotations start at a different member, so the loops' first requests spread.
    const auto& mine = table->sites();
    const auto& first = first_sites.sites();
    for (const auto& s : mine)
        for (const auto& r : s->routes) r->pool->stagger(index_);
    std::unordered_set<const route::route*> sharing;
    for (std::size_t i = 0; i < mine.size() && i < first.size(); ++i) {
        if (mine[i]->hosts != first[i]->hosts || mine[i]->routes.size() != first[i]->routes.size())
            continue;
        for (std::size_t j = 0; j < mine[i]->routes.size(); ++j) {
            auto& route = *mine[i]->routes[j];
            const auto& first_route = *first[i]->routes[j];
            route.pool->follow_checks_of(*first_route.pool);
            // A cache is the relay's, one per route or site: this loop's route takes the first's.
            if (first_route.cache) {
                route.cache = first_route.cache;
                route.any_loop = first_route.any_loop;
            }
            // A rate_limit's counts are the relay's: this loop's route takes the first's.
            if (policy::share_steps(route.policies, first_route.policies))
                sharing.insert(&route);
        }
    }
    // A route whose state could not be matched to the first loop's is the first loop's.
    for (const auto& s : mine)
        for (const auto& r : s->routes)
            if (!sharing.contains(r.get()) &&
                std::any_of(r->policies.begin(), r->policies.end(),
                            [](const auto& p) { return p->shared_by_loops(); }))
                r->any_loop = false;
    return table;
}

tl::expected<void, std::string> worker::listen(
    std::shared_ptr<const route::route_table> first_sites) {
    auto table = build(cfg_.sites, *first_sites);
    if (!table) return tl::unexpected(table.error());
    sites_ = std::move(*table);
    if (cfg_.access_log) {
        auto log = observe::access_log::open(*cfg_.access_log);
        if (!log) return tl::unexpected(log.error());
        ctx_.access_log = std::move(*log);
    }
    auto bound = http_.listen(true);
    if (bound && cfg_.https_addr) bound = https_edge_.listen(true);
    http_fd_ = http_.listener_fd();
    https_fd_ = https_edge_.listener_fd();
    return bound;
}

void worker::start() {
    start_checks(*sites_, io_.get_executor());
    http_.start();
    if (https_edge_.listening()) https_edge_.start();
    ctx_.spawn(sweep());
    thread_ = std::thread([this] { io_.run(); });
    // Named for top -H and /proc/PID/task/*/comm, before the first loop serves anything.
    pthread_setname_np(thread_.native_handle(), fmt::format("porthole-loop{}", index_).c_str());
}

void worker::reload(config::server_config next, net::https_certificates* https,
                    std::shared_ptr<const route::route_table> first_sites,
                    std::shared_ptr<shared_tunnel_steps> tunnel_steps) {
    asio::post(io_, [this, next = std::move(next), https, first_sites = std::move(first_sites),
                     tunnel_steps = std::move(tunnel_steps)]() mutable {
        ctx_.https = https;  // the set it replaced goes soon, whatever happens here
        auto table = build(next.sites, *first_sites);
        if (!table) {  // the first loop built the same table: only a file gone since fails
            spdlog::error("reload on event loop {}: {}; it keeps the config it had", index_,
                          table.error());
            return;
        }
        cfg_ = std::move(next);
        ctx_.tunnel_steps = std::move(tunnel_steps);
        replace_sites(sites_, std::move(*table), ctx_.counters.sites, io_.get_executor());
        ctx_.config_changed();
        ++ctx_.tunnels_changed;  // kept-alive connections look their routes up in the new table
    });
}

void worker::publish(std::shared_ptr<const tunnel_directory> directory) {
    asio::post(io_, [this, directory = std::move(directory)]() mutable {
        // A label slot the first loop gave another name starts from zero here too.
        const auto& was = directory_->slot_names();
        const auto& now = directory->slot_names();
        {
            const std::lock_guard lock(published_mutex_);
            for (std::size_t i = 0; i < now.size() && i < ctx_.counters.tunnels.size(); ++i)
                if (i >= was.size() || was[i] != now[i])
                    ctx_.counters.tunnels[i] = published_.tunnels[i] = {};
        }
        directory_ = std::move(directory);
        ++ctx_.tunnels_changed;  // kept-alive connections look their tunnels up again
        http_.forget_tunnel_routes();  // requests under way keep theirs
    });
}

void worker::pump(handed_pump p) {
    asio::post(io_, [this, p = std::move(p)]() mutable { run_handed_pump(ctx_, std::move(p)); });
}

void worker::drain(std::chrono::seconds idle_grace) {
    asio::post(io_, [this, idle_grace] {
        ctx_.draining = true;
        http_.stop_accepting();
        https_edge_.stop_accepting();
        sweep_.cancel();
        stop_pools(*sites_);
        ctx_.spawn(close_idle_after(idle_grace));
    });
}

asio::awaitable<void> worker::close_idle_after(std::chrono::seconds grace) {
    asio::steady_timer t(io_);
    if (grace.count() > 0) {
        t.expires_after(grace);
        co_await t.async_wait(use_tuple);
    }
    ctx_.closing_idle = true;
    boost::system::error_code ec;
    for (auto& w : ctx_.watched)
        if (w.idle) w.conn.socket().cancel(ec);
    // Deadlines go on being enforced while the last requests finish.
    while (ctx_.active_visitors > 0) {
        t.expires_after(20ms);
        co_await t.async_wait(use_tuple);
        ctx_.now = clock::now();
        for (auto& w : ctx_.watched)
            if (w.deadline <= ctx_.now) w.conn.socket().cancel(ec);
        active_.store(ctx_.active_visitors, std::memory_order_relaxed);
    }
    active_.store(0, std::memory_order_relaxed);
    drained_.store(true, std::memory_order_release);
}

void worker::stop() {
    if (!thread_.joinable()) return;
    io_.stop();
    thread_.join();
    // Connections still suspended hold guards that give back what they counted.
    io_.destroy_pending();
}

void worker::reopen_log() {
    if (ctx_.access_log) ctx_.access_log->reopen();
}

observe::relay_counters worker::counters_now() {
    if (!thread_.joinable() || io_.stopped()) return counters();
    auto copied = std::make_shared<std::promise<void>>();
    auto done = copied->get_future();
    asio::post(io_, [this, copied] {
        {
            const std::lock_guard lock(published_mutex_);
            published_ = ctx_.counters;
        }
        copied->set_value();
    });
    done.wait_for(100ms);
    return counters();
}

observe::relay_counters worker::counters() const {
    const std::lock_guard lock(published_mutex_);
    return published_;
}

// Once a second: deadlines, the access log's buffer, and what the first loop's metrics read.
asio::awaitable<void> worker::sweep() {
    while (!ctx_.draining) {
        sweep_.expires_after(1s);
        co_await sweep_.async_wait(use_tuple);
        ctx_.now = clock::now();
        boost::system::error_code ec;
        for (auto& w : ctx_.watched)
            if (w.deadline <= ctx_.now) w.conn.socket().cancel(ec);
        if (ctx_.access_log) ctx_.access_log->flush();
        core::flush_thread_cache();
        active_.store(ctx_.active_visitors, std::memory_order_relaxed);
        const std::lock_guard lock(published_mutex_);
        published_ = ctx_.counters;
    }
}

}  // namespace porthole::relay
