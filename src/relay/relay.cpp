#include "relay/relay.hpp"

#include "admin/admin_server.hpp"
#include "core/heap_trim.hpp"
#include "core/service_notify.hpp"
#include "relay/control_port.hpp"
#include "relay/http_edge.hpp"
#include "relay/https_edge.hpp"
#include "relay/local_registry.hpp"
#include "relay/reload_plan.hpp"
#include "relay/metrics_listener.hpp"
#include "relay/relay_admin.hpp"
#include "relay/relay_context.hpp"
#include "relay/tcp_edge.hpp"
#include "relay/tunnel_members.hpp"
#include "route/route_table.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <iostream>

namespace porthole::relay {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The pools and routes of the configured sites. Fails on an https member's CA file.
tl::expected<void, std::string> build_sites(const config::site_set& sites,
                                            upstream::tunnel_source& tunnels,
                                            const policy::jwks_sources& jwks,
                                            route::route_table& table) {
    for (const auto& s : sites.sites) {
        const auto site_index = static_cast<std::uint32_t>(table.sites().size());
        route::site built{s.hosts, {}, s.pages, site_index};
        // One of each site-wide step for all its routes: a site's rate limit counts them together.
        const policy::chain site_policies = policy::build_chain(s.policies, &jwks);
        for (const auto& r : s.routes) {
            auto route = std::make_shared<route::route>();
            route->path = r.path;
            route->strip_prefix = r.strip_prefix;
            route->metric_slot = site_index;
            route->policies = site_policies;
            for (auto& p : policy::build_chain(r.policies, &jwks))
                route->policies.push_back(std::move(p));
            const std::string name = r.path.empty() ? s.hosts.front()
                                                    : fmt::format("{}{}", s.hosts.front(), r.path);
            auto pool = upstream::pool::make(name, r.upstream, &tunnels);
            if (!pool) return tl::unexpected(fmt::format("site {}: {}", name, pool.error()));
            route->pool = std::move(*pool);
            built.routes.push_back(std::move(route));
        }
        table.add(std::move(built));
    }
    return {};
}

// The relay: its parts, wired; signals, the sweeper, draining and stop.
class relay {
public:
    relay(asio::io_context& io, config::server_config& cfg, config_source reload,
          std::optional<net::server_tls> tls, std::unique_ptr<net::https_certificates> https)
        : cfg_(cfg), reload_source_(std::move(reload)), https_(std::move(https)), ctx_(io, cfg, https_.get()),
          registry_(cfg.lease_grace, "local"), tcp_(ctx_), tunnels_(ctx_, registry_),
          control_(ctx_, registry_, std::move(tls),
                   [this](std::shared_ptr<tunnel> t) { tcp_.serve_tunnel(std::move(t)); }),
          http_(ctx_, registry_, tunnels_, sites_), https_edge_(ctx_, registry_, http_),
          admin_(ctx_, control_, registry_, sites_, tcp_,
                 [this] {
                     auto done = this->reload();  // the member, not the parameter
                     return admin::reload_result{
                         done ? admin::outcome::done : admin::outcome::failed,
                         done ? *done : done.error(), generation_};
                 }),
          signals_(io, SIGINT, SIGTERM),
          reopen_signal_(io, SIGUSR1), reload_signal_(io, SIGHUP),
          sweep_(io) {}

    tl::expected<void, std::string> listen() {
        auto built = ctx_.jwks.add(cfg_.tunnel_policies);
        for (const auto& s : cfg_.sites.sites) {
            if (built) built = ctx_.jwks.add(s.policies);
            for (const auto& r : s.routes)
                if (built) built = ctx_.jwks.add(r.policies);
        }
        if (!built) return built;
        if (cfg_.access_log) {
            auto log = observe::access_log::open(*cfg_.access_log);
            if (!log) return tl::unexpected(log.error());
            ctx_.access_log = std::move(*log);
        }
        built = build_sites(cfg_.sites, tunnels_, ctx_.jwks, *sites_);
        if (!built) return built;
        built = tcp_.listen_sites(cfg_.sites.tcp_sites);
        if (!built) return built;
        // Before the public listeners: once clients and visitors can connect, so can the admin.
        tl::expected<void, std::string> bound = listen_admin();
        if (!bound) return bound;
        if (cfg_.control_enabled) {
            bound = control_.listen();
            if (!bound) return bound;
        }
        bound = http_.listen();
        if (!bound) return bound;
        if (cfg_.https_addr) {
            bound = https_edge_.listen();
            if (!bound) return bound;
        }
        if (cfg_.metrics_addr) {
            std::string token;
            if (!cfg_.metrics_token_file.empty()) {
                auto read = config::read_admin_token_file(cfg_.metrics_token_file,
                                                          "metrics_token_file");
                if (!read) return tl::unexpected(read.error());
                token = std::move(*read);
            }
            metrics_.emplace(ctx_, [this] { return metrics_text(); }, std::move(token));
            bound = metrics_->listen(*cfg_.metrics_addr);
            if (!bound) return bound;
        }
        return {};
    }

    void start() {
        announce();
        if (ctx_.max_connections_per_ip < cfg_.max_connections_per_ip ||
            ctx_.gate_total < cfg_.max_unauthenticated)
            spdlog::info("descriptor limit {}: at most {} visitor connections per address and {} "
                         "unfinished control handshakes (raise the limit, e.g. LimitNOFILE=, for "
                         "the configured {} and {})",
                         ctx_.descriptors, ctx_.max_connections_per_ip, ctx_.gate_total,
                         cfg_.max_connections_per_ip, cfg_.max_unauthenticated);
        if (cfg_.control_enabled) control_.start();
        http_.start();
        if (https_edge_.listening()) https_edge_.start();
        if (metrics_) metrics_->start();
        for (const auto& s : sites_->sites())
            for (const auto& r : s->routes) r->pool->start_checks(ctx_.io.get_executor());
        tcp_.start_sites();
        ctx_.jwks.start(ctx_.io.get_executor());
        ctx_.spawn(sweep());
        signals_.async_wait([this](error_code ec, int sig) {
            if (!ec) begin_shutdown(sig);
        });
        wait_for_reopen();
        wait_for_reload();
        core::notify_ready(status_text());
    }

    // Reads the config again and applies all of it, or none: a file with an error, or a change
    // only a restart can make, leaves the running config as it was. Client sessions, tunnels,
    // kept-alive visitors and requests under way carry on; a removed token's sessions close.
    // Returns what changed, or why nothing did.
    tl::expected<std::string, std::string> reload() {
        core::notify_reloading();
        auto next = reload_source_ ? reload_source_()
                                   : tl::unexpected(std::string(
                                         "porthole proxy has no config file to reload"));
        tl::expected<std::string, std::string> result;
        if (next) result = apply(*next);
        else result = tl::unexpected(next.error());
        ++(result ? ctx_.counters.reloads_ok : ctx_.counters.reloads_refused);
        if (result)
            spdlog::info("config reloaded (generation {}): {}", generation_, *result);
        else
            spdlog::error("config reload refused, the running config stays: {}", result.error());
        core::notify_ready(result ? status_text()
                                  : "reload refused, the running config stays: " + result.error());
        return result;
    }

    // One scrape: the counters and what the relay's parts hold now.
    std::string metrics_text() {
        relay_gauges g;
        control_.read_gauges(g);
        g.visitor_connections = ctx_.active_visitors;
        if (control_.tls())
            g.certificates.push_back(
                {"control", net::not_after(  // Asio's native_handle() is not const; it reads
                                const_cast<asio::ssl::context&>(control_.tls()->context)
                                    .native_handle())});
        if (https_)
            for (auto& [name, expiry] : https_->expiries()) g.certificates.push_back({name, expiry});
        std::vector<std::string> site_labels;
        for (const auto& s : sites_->sites()) {
            site_labels.push_back(s->hosts.front());
            for (const auto& r : s->routes)
                for (std::size_t i = 0; i < r->pool->size(); ++i)
                    g.upstream.push_back({s->hosts.front(), r->pool->member(i).url,
                                          r->pool->available(i)});
        }
        return write_metrics(ctx_.counters, ctx_.tunnel_labels, site_labels, g,
                             observe::read_process_stats(),
                             ctx_.access_log ? ctx_.access_log->dropped_lines() : 0);
    }

private:
    // What `systemctl status` shows once the relay serves.
    std::string status_text() const {
        const auto http = http_.local_endpoint();
        std::string out = fmt::format(
            "serving http on {}",
            config::endpoint{http.address().to_string(), http.port()}.to_string());
        if (https_edge_.listening()) out += ", https on " + https_text();
        if (cfg_.control_enabled) {
            const auto control = control_.local_endpoint();
            out += fmt::format(
                ", clients on {}",
                config::endpoint{control.address().to_string(), control.port()}.to_string());
        }
        return out;
    }

    tl::expected<std::string, std::string> apply(config::server_config& next) {
        cfg_.tokens = control_.tokens();  // with what the admin API added and revoked
        const reload_plan plan = plan_reload(cfg_, next);
        if (plan.refused()) return tl::unexpected(restart_message(plan));
        // Built before anything changes: a jwks_url that does not resolve or a backend's CA
        // file that cannot be read refuses the reload.
        auto built = ctx_.jwks.add(next.tunnel_policies);
        for (const auto& s : next.sites.sites) {
            if (built) built = ctx_.jwks.add(s.policies);
            for (const auto& r : s.routes)
                if (built) built = ctx_.jwks.add(r.policies);
        }
        if (!built) return tl::unexpected(built.error());
        auto table = std::make_shared<route::route_table>();
        built = build_sites(next.sites, tunnels_, ctx_.jwks, *table);
        if (!built) return tl::unexpected(built.error());

        // Commit, in this one turn of the loop. Requests under way keep the table and routes
        // they hold; the next request of a kept-alive connection looks its route up again.
        std::vector<observe::request_counts> site_counts(table->sites().size());
        for (std::size_t i = 0; i < table->sites().size(); ++i)
            for (std::size_t j = 0; j < sites_->sites().size(); ++j)
                if (sites_->sites()[j]->hosts.front() == table->sites()[i]->hosts.front())
                    site_counts[i] = ctx_.counters.sites[j];
        for (const auto& s : sites_->sites())
            for (const auto& r : s->routes) r->pool->stop();
        sites_ = std::move(table);
        ctx_.counters.sites = std::move(site_counts);
        for (const auto& s : sites_->sites())
            for (const auto& r : s->routes) r->pool->start_checks(ctx_.io.get_executor());
        ctx_.jwks.start(ctx_.io.get_executor());

        std::size_t closed = 0;
        for (const auto& v : plan.tokens_removed) closed += control_.revoke_token(v);
        for (const auto& v : next.tokens) control_.add_token(v);
        cfg_.tokens = std::move(next.tokens);
        cfg_.token_origins = std::move(next.token_origins);
        cfg_.tokens_file = std::move(next.tokens_file);
        admin_.load_tokens();
        cfg_.bound_names = std::move(next.bound_names);
        cfg_.reserved_names = std::move(next.reserved_names);
        cfg_.max_tunnels_per_client = next.max_tunnels_per_client;
        cfg_.max_tunnels_per_token = next.max_tunnels_per_token;
        cfg_.max_connections_per_ip = next.max_connections_per_ip;
        cfg_.max_connections_per_tunnel = next.max_connections_per_tunnel;
        cfg_.max_pending_streams = next.max_pending_streams;
        cfg_.max_new_connections_per_second = next.max_new_connections_per_second;
        cfg_.max_header_bytes = next.max_header_bytes;
        cfg_.max_sessions_per_token = next.max_sessions_per_token;
        cfg_.max_control_frames_per_second = next.max_control_frames_per_second;
        cfg_.shutdown_timeout = next.shutdown_timeout;
        cfg_.header_timeout = next.header_timeout;
        cfg_.idle_timeout = next.idle_timeout;
        cfg_.handshake_timeout = next.handshake_timeout;
        cfg_.redirect_https = next.redirect_https;
        cfg_.sites.sites = std::move(next.sites.sites);
        cfg_.tunnel_policies = std::move(next.tunnel_policies);
        cfg_.tunnel_policy_forbid = std::move(next.tunnel_policy_forbid);
        cfg_.tunnel_error_pages = std::move(next.tunnel_error_pages);
        cfg_.trusted_proxies = std::move(next.trusted_proxies);
        cfg_.accept_proxy_protocol = next.accept_proxy_protocol;
        ctx_.config_changed();
        http_.forget_tunnel_routes();
        ++ctx_.tunnels_changed;
        ++generation_;
        return fmt::format("sites {} added, {} removed, {} kept; tokens {} added, {} removed ({} "
                           "sessions closed)",
                           plan.sites_added, plan.sites_removed, plan.sites_kept,
                           plan.tokens_added, plan.tokens_removed.size(), closed);
    }

    // SIGHUP: reload (`porthole admin reload` does the same and reports the outcome).
    void wait_for_reload() {
        reload_signal_.async_wait([this](error_code ec, int) {
            if (ec) return;
            reload();
            wait_for_reload();
        });
    }

    // SIGUSR1: the access log is opened anew (logrotate has moved the file).
    void wait_for_reopen() {
        reopen_signal_.async_wait([this](error_code ec, int) {
            if (ec) return;
            if (ctx_.access_log) ctx_.access_log->reopen();
            wait_for_reopen();
        });
    }

    std::string metrics_text_address() const {
        const auto ep = metrics_->local_endpoint();
        return config::endpoint{ep.address().to_string(), ep.port()}.to_string();
    }

    // The admin socket and the optional TCP admin port; `porthole proxy` has neither.
    tl::expected<void, std::string> listen_admin() {
        if (!cfg_.control_enabled) return {};
        admin::admin_settings settings;
        settings.socket_path = cfg_.admin_socket.value_or("");
        if (cfg_.admin_addr) {
            settings.tcp_host = cfg_.admin_addr->host;
            settings.tcp_port = cfg_.admin_addr->port;
        }
        settings.token = cfg_.admin_token;
        settings.hosts = cfg_.admin_hosts;
        settings.metrics = [this] { return std::optional<std::string>(metrics_text()); };
        if (settings.socket_path.empty() && settings.tcp_host.empty()) return {};
        auto started = admin::admin_server::start(ctx_.io, std::move(settings), admin_);
        if (!started) return tl::unexpected(started.error());
        admin_server_ = std::move(*started);
        return {};
    }

    std::string https_text() const {
        const auto ep = https_edge_.local_endpoint();
        return config::endpoint{ep.address().to_string(), ep.port()}.to_string();
    }

    // "shop.example.com *.shop.example.com: /api -> http://10.0.0.5:8080, ...; / -> ..." for
    // each site.
    std::vector<std::string> sites_text() const {
        std::vector<std::string> out;
        for (const auto& s : cfg_.sites.sites) {
            std::string line = fmt::format("{}:", fmt::join(s.hosts, " "));
            for (std::size_t i = 0; i < s.routes.size(); ++i) {
                const auto& r = s.routes[i];
                std::vector<std::string_view> members;
                for (const auto& m : r.upstream.members) members.push_back(m.url);
                line += fmt::format("{} {} -> {}", i == 0 ? "" : ";", r.path.empty() ? "/" : r.path,
                                    fmt::join(members, ", "));
            }
            out.push_back(std::move(line));
        }
        return out;
    }

    // "127.0.0.1:6379 -> tcp://10.0.0.9:6379, ..." for each tcp site.
    std::vector<std::string> tcp_sites_text() const {
        std::vector<std::string> out;
        const auto at = tcp_.site_endpoints();
        for (std::size_t i = 0; i < at.size(); ++i) {
            std::string members;
            for (const auto& m : cfg_.sites.tcp_sites[i].upstream.members)
                members += (members.empty() ? "" : ", ") + m.url;
            out.push_back(fmt::format(
                "{} -> {}",
                config::endpoint{at[i].address().to_string(), at[i].port()}.to_string(),
                members));
        }
        return out;
    }

    void announce() {
        if (!cfg_.control_enabled) return announce_proxy();
        const auto control = control_.local_endpoint();
        const auto http = http_.local_endpoint();
        const std::string control_text = config::endpoint{control.address().to_string(),
                                                          control.port()}.to_string();
        const std::string http_text =
            config::endpoint{http.address().to_string(), http.port()}.to_string();
        // A self-signed certificate is trusted by pinning: tell clients what to pin.
        const bool pin = control_.tls() && cfg_.control_cert.empty();
        std::string client_flags = cfg_.tokens_required() ? " --token TOKEN" : "";
        if (pin) client_flags += " --server-fingerprint " + control_.tls()->fingerprint;
        else if (control_.tls() && config::is_loopback_host(cfg_.control_addr.host)) client_flags += " --tls on";
        if (cfg_.json) {
            nlohmann::json j{{"event", "listening"},
                             {"http", http_text},
                             {"control", control_text},
                             {"domain", cfg_.domain},
                             {"tcp_ports", cfg_.tcp_ports.to_string()},
                             {"tls", control_.tls().has_value()}};
            if (control_.tls()) j["fingerprint"] = control_.tls()->fingerprint;
            if (admin_server_ && !admin_server_->socket_path().empty())
                j["admin_socket"] = admin_server_->socket_path();
            if (admin_server_ && !admin_server_->tcp_address().empty())
                j["admin_addr"] = admin_server_->tcp_address();
            if (!cfg_.sites.tcp_sites.empty()) j["tcp_sites"] = tcp_sites_text();
            if (!cfg_.sites.sites.empty()) j["sites"] = sites_text();
            if (metrics_) j["metrics"] = metrics_text_address();
            if (https_) {
                j["https"] = https_text();
                if (!https_->ca_file().empty()) j["ca_file"] = https_->ca_file();
            }
            std::cout << j.dump() << std::endl;
        } else {
            std::cout << fmt::format(
                             "porthole relay {}\n"
                             "  tunnels   {} (http on {}{})\n"
                             "  control   {}{}{}\n"
                             "  tcp       ports {}\n"
                             "connect a client:  porthole http 3000 --server {}{}\n",
                             PORTHOLE_VERSION, ctx_.http_url("*"), http_text,
                             https_.get() ? ", https on " + https_text() : std::string(), control_text,
                             control_.tls() ? ", TLS " + control_.tls()->fingerprint : std::string(", plaintext"),
                             cfg_.tokens_required() ? "" : " (no token required)",
                             cfg_.tcp_ports.to_string(), control_text, client_flags)
                      << std::flush;
            for (const auto& t : sites_text()) std::cout << "  site      " << t << "\n";
            for (const auto& t : tcp_sites_text()) std::cout << "  tcp site  " << t << "\n";
            if (metrics_)
                std::cout << "  metrics   http://" << metrics_text_address() << "/metrics\n";
            if (admin_server_ && !admin_server_->socket_path().empty())
                std::cout << "  admin     " << admin_server_->socket_path() << "\n";
            if (admin_server_ && !admin_server_->tcp_address().empty())
                std::cout << "  admin     http://" << admin_server_->tcp_address()
                          << " (bearer token)\n";
            std::cout << std::flush;
            if (https_ && !https_->ca_file().empty())
                std::cout << fmt::format(
                                 "visitors' certificates come from the local CA {0}; trust it:\n"
                                 "  curl --cacert {0} ...   or   cp {0} "
                                 "/usr/local/share/ca-certificates/porthole.crt && "
                                 "update-ca-certificates\n",
                                 https_->ca_file())
                          << std::flush;
        }
    }


    // `porthole proxy`: where it listens and what it forwards to.
    void announce_proxy() {
        const auto http = http_.local_endpoint();
        const std::string listen_text =
            config::endpoint{http.address().to_string(), http.port()}.to_string();
        const auto& upstream = cfg_.sites.sites.front().routes.front().upstream;
        if (cfg_.json) {
            nlohmann::json members = nlohmann::json::array();
            for (const auto& m : upstream.members) members.push_back(m.url);
            std::cout << nlohmann::json{{"event", "listening"},
                                        {"http", listen_text},
                                        {"upstream", members},
                                        {"lb_policy", config::to_string(upstream.policy)}}
                             .dump()
                      << std::endl;
            return;
        }
        std::string members;
        for (const auto& m : upstream.members) members += "\n  upstream  " + m.url;
        std::cout << fmt::format("porthole proxy {}\n  listen    http://{}{}\n  balance   {}{}\n",
                                 PORTHOLE_VERSION, listen_text, members,
                                 config::to_string(upstream.policy),
                                 upstream.health.path.empty()
                                     ? std::string()
                                     : ", health checks on " + upstream.health.path)
                  << std::flush;
    }

    // Once a second: expired leases go, idle visitor connections past their deadline close, and
    // the heap a burst of visitors freed goes back to the OS.
    asio::awaitable<void> sweep() {
        while (!ctx_.draining) {
            sweep_.expires_after(1s);
            co_await sweep_.async_wait(use_tuple);
            ctx_.now = clock::now();
            registry_.expire(ctx_.now);
            http_.forget_idle_tunnel_routes();
            error_code ec;
            for (auto& w : ctx_.watched)
                if (w.deadline <= ctx_.now) w.conn.socket().cancel(ec);
            heap_.tick();
            if (ctx_.access_log) ctx_.access_log->flush();
        }
    }

    void begin_shutdown(int sig) {
        if (ctx_.draining) return;
        ctx_.draining = true;
        core::notify_stopping("draining");
        spdlog::info("{} received: draining (up to {} s)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                     cfg_.shutdown_timeout.count());
        signals_.async_wait([this](error_code ec, int) {
            if (!ec) {
                spdlog::warn("second signal: stopping now");
                ctx_.io.stop();
            }
        });
        error_code ec;
        http_.stop_accepting();
        https_edge_.stop_accepting();
        if (metrics_) metrics_->stop_accepting();
        sweep_.cancel();
        reopen_signal_.cancel();
        reload_signal_.cancel();
        for (const auto& s : sites_->sites())
            for (const auto& r : s->routes) r->pool->stop();
        ctx_.jwks.stop();
        tcp_.stop_sites();
        registry_.for_each_port([&](tunnel& t) {
            if (t.acceptor) t.acceptor->close(ec);
        });
        control_.begin_drain();
        for (auto& w : ctx_.watched)
            if (w.idle) w.conn.socket().cancel(ec);
        ctx_.spawn(finish_shutdown());
    }

    asio::awaitable<void> finish_shutdown() {
        const auto deadline = clock::now() + cfg_.shutdown_timeout;
        asio::steady_timer t(ctx_.io);
        while (ctx_.active_visitors > 0 && clock::now() < deadline) {
            t.expires_after(20ms);
            co_await t.async_wait(use_tuple);
        }
        if (ctx_.active_visitors > 0)
            spdlog::warn("{} visitor connections still open at the deadline", ctx_.active_visitors);
        control_.close_all();
        ctx_.io.stop();
    }

    config::server_config& cfg_;  // the live config: a reload changes what may change in place
    config_source reload_source_;
    std::uint64_t generation_ = 1;
    std::unique_ptr<net::https_certificates> https_;  // set when visitors may use HTTPS
    relay_context ctx_;
    local_registry registry_;
    tcp_edge tcp_;
    tunnel_members tunnels_;
    control_port control_;
    std::shared_ptr<route::route_table> sites_ = std::make_shared<route::route_table>();
    http_edge http_;
    https_edge https_edge_;
    std::optional<metrics_listener> metrics_;
    relay_admin admin_;
    std::unique_ptr<admin::admin_server> admin_server_;
    asio::signal_set signals_;
    asio::signal_set reopen_signal_;
    asio::signal_set reload_signal_;
    asio::steady_timer sweep_;
    core::heap_trim heap_;
};

// One thread and no resolver: the scheduler and reactor need no locks. destroy_pending() shuts
// the services down, which destroys every handler still queued or waiting, and with them the
// coroutine frames suspended in them.
class relay_io : public asio::io_context {
public:
    relay_io() : asio::io_context(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE) {}
    void destroy_pending() { shutdown(); }
};

void raise_descriptor_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

}  // namespace

int run(config::server_config cfg, config_source reload) {
    raise_descriptor_limit();
    std::optional<net::server_tls> tls;
    if (cfg.control_tls_enabled()) {
        std::vector<std::string> names{cfg.domain};
        if (cfg.control_addr.host != cfg.domain) names.push_back(cfg.control_addr.host);
        auto made = net::make_server_tls(cfg.control_cert, cfg.control_key, names);
        if (!made) {
            std::cerr << "porthole: error: " << made.error() << "\n";
            return 1;
        }
        tls.emplace(std::move(*made));
    }
    std::unique_ptr<net::https_certificates> https;
    if (cfg.https_addr && (!cfg.tls_certs.empty() || !cfg.tls_self_signed_dir.empty())) {
        auto loaded = net::https_certificates::load(cfg.tls_certs, cfg.tls_keys,
                                                    cfg.tls_self_signed_dir, cfg.domain);
        if (!loaded) {
            std::cerr << "porthole: error: " << loaded.error() << "\n";
            return 1;
        }
        https = std::move(*loaded);
    }
    relay_io io;
    relay r(io, cfg, std::move(reload), std::move(tls), std::move(https));
    if (auto ok = r.listen(); !ok) {
        std::cerr << "porthole: error: " << ok.error() << "\n";
        return 1;
    }
    r.start();
    io.run();
    // Connections still suspended at the stop hold guards that give back what they counted in
    // the relay (handshake places, per-address counts): their frames go now, while it exists.
    io.destroy_pending();
    spdlog::info("relay stopped");
    return 0;
}

}  // namespace porthole::relay
