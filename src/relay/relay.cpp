#include "relay/relay.hpp"

#include "acme/cert_issuer.hpp"
#include "cluster/cluster_registry.hpp"
#include "cluster/relay_link.hpp"
#include "admin/admin_server.hpp"
#include "core/fd_channel.hpp"
#include "core/heap_trim.hpp"
#include "core/service_notify.hpp"
#include "core/use_tuple.hpp"
#include "http/host_route.hpp"
#include "relay/control_port.hpp"
#include "relay/http_edge.hpp"
#include "relay/https_edge.hpp"
#include "relay/local_registry.hpp"
#include "relay/metrics_listener.hpp"
#include "relay/relay_admin.hpp"
#include "relay/relay_context.hpp"
#include "relay/reload_plan.hpp"
#include "relay/site_builder.hpp"
#include "relay/tcp_edge.hpp"
#include "relay/tunnel_members.hpp"
#include "relay/upgrader.hpp"
#include "relay/worker.hpp"
#include "route/route_table.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <iostream>

#include <unistd.h>

namespace porthole::relay {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

// The names a self-signed control certificate is made for.
std::vector<std::string> control_names(const config::server_config& cfg) {
    std::vector<std::string> names{cfg.domain};
    if (cfg.control_addr.host != cfg.domain) names.push_back(cfg.control_addr.host);
    return names;
}

// The relay: its parts, wired; signals, the sweeper, draining and stop.
class relay {
public:
    relay(asio::io_context& io, config::server_config& cfg, config_source reload,
          std::vector<std::string> command, std::optional<net::server_tls> tls,
          std::unique_ptr<net::https_certificates> https,
          std::shared_ptr<acme::cert_issuer> acme)
        : cfg_(cfg), reload_source_(std::move(reload)), https_(std::move(https)),
          acme_(std::move(acme)), ctx_(io, cfg, https_.get()),
          local_(cfg.lease_grace, cfg.cluster ? cfg.cluster->node_id : "local"),
          cluster_(cfg.cluster ? std::make_unique<cluster::cluster_registry>(
                                     io, local_, *cfg.cluster, cfg.lease_grace,
                                     cfg.tunnel_policy_forbid, ctx_.tunnels_changed)
                               : nullptr),
          registry_(cluster_ ? static_cast<tunnel_registry&>(*cluster_) : local_), tcp_(ctx_),
          tunnels_(ctx_, registry_),
          control_(ctx_, registry_, std::move(tls),
                   [this](std::shared_ptr<tunnel> t) { tcp_.serve_tunnel(std::move(t)); }),
          http_(ctx_, registry_, tunnels_, sites_), https_edge_(ctx_, registry_, http_),
          admin_(ctx_, control_, registry_, sites_, tcp_,
                 [this] {
                     auto done = this->reload();  // the member, not the parameter
                     return admin::reload_result{
                         done ? admin::outcome::done : admin::outcome::failed,
                         done ? *done : done.error(), generation_};
                 },
                 [this](const std::string& binary, std::chrono::seconds wait,
                        admin::upgrade_done done) {
                     if (ctx_.draining)
                         return done({admin::outcome::conflict, "the relay is stopping", 0, {}});
                     upgrader_.start(binary, wait, std::move(done));
                 }),
          signals_(io, SIGINT, SIGTERM),
          reopen_signal_(io, SIGUSR1), reload_signal_(io, SIGHUP),
          sweep_(io),
          upgrader_(io, std::move(command), {[this] { return handoff_state(); },
                                             [this] { replaced(); }}) {
        ctx_.acme = acme_.get();
        https_edge_.use_tunnels(&tunnels_);
        if (https_ && acme_) https_->set_source(acme_.get());
        if (cluster_) {
            link_ = std::make_unique<cluster::relay_link>(ctx_, registry_, tunnels_, *cfg.cluster);
            tunnels_.use_link(link_.get());
            // Its client reconnected through another relay: this session is a stale one.
            cluster_->on_lost = [](const tunnel& t, const std::string& why) {
                auto s = t.owner.lock();
                if (!s || s->closed) return;
                spdlog::info("session {} ended: {} ({})", s->id_hex.substr(0, 8), why,
                             t.name.empty() ? fmt::format("port {}", t.port) : t.name);
                s->close(*s);
            };
            cluster_->on_ports = [this](const std::map<std::uint16_t, std::string>& ports) {
                if (!ctx_.draining) link_->serve_remote_ports(ports);
            };
            cluster_->on_port_claimed = [this](std::uint16_t port) { link_->drop_port(port); };
            cluster_->shared_config = [this] { return admin_.shared_config(); };
            cluster_->token_counts = [this] {
                std::map<std::string, cluster::cluster_registry::token_tally> by_token;
                for (const auto& [token, n] : control_.tunnels_per_token()) {
                    by_token[token].token_hex = token;
                    by_token[token].tunnels = n;
                }
                for (const auto& [token, n] : control_.sessions_per_token()) {
                    by_token[token].token_hex = token;
                    by_token[token].sessions = n;
                }
                std::vector<cluster::cluster_registry::token_tally> out;
                for (auto& [token, t] : by_token) out.push_back(std::move(t));
                return out;
            };
            admin_.cluster_state = [this] {
                admin::cluster_info c{cluster_->node(),   cluster_->redis_address(),
                                      cluster_->degraded(), {},
                                      cluster_->lookups(), cluster_->events(),
                                      link_->carried_out(),
                                      link_->carried_in(), link_->refused()};
                for (const auto& n : cluster_->nodes())
                    c.relays.push_back({n.node, n.link, n.ports, n.same_config});
                return std::optional<admin::cluster_info>(std::move(c));
            };
        }
        if (cfg.control_enabled)
            https_edge_.set_control([this](tcp::socket s) {
                if (ctx_.https && !ctx_.draining)
                    ctx_.spawn(control_.serve_from_https(std::move(s), ctx_.https->context()));
            });
    }

    tl::expected<void, std::string> listen() {
        auto built = ctx_.jwks->add(cfg_.tunnel_policies);
        for (const auto& s : cfg_.sites.sites) {
            if (built) built = ctx_.jwks->add(s.policies);
            for (const auto& r : s.routes)
                if (built) built = ctx_.jwks->add(r.policies);
        }
        if (!built) return built;
        if (cfg_.access_log) {
            auto log = observe::access_log::open(*cfg_.access_log);
            if (!log) return tl::unexpected(log.error());
            ctx_.access_log = std::move(*log);
        }
        built = build_sites(cfg_.sites, &tunnels_, *ctx_.jwks, *sites_, true);
        if (!built) return built;
        auto tunnel_cache = ctx_.tunnel_cache_for(cfg_.tunnel_cache);
        if (!tunnel_cache) return tl::unexpected(tunnel_cache.error());
        ctx_.use_tunnel_cache(std::move(*tunnel_cache), cfg_.tunnel_cache);
        built = tcp_.listen_sites(cfg_.sites.tcp_sites);
        if (!built) return built;
        // Before the public listeners: once clients and visitors can connect, so can the admin.
        tl::expected<void, std::string> bound = listen_admin();
        if (!bound) return bound;
        if (cfg_.control_enabled) {
            bound = control_.listen();
            if (!bound) return bound;
        }
        if (link_) {
            bound = link_->listen();
            if (!bound) return bound;
        }
        bound = http_.listen(cfg_.threads > 1);
        if (!bound) return bound;
        if (cfg_.https_addr) {
            bound = https_edge_.listen(cfg_.threads > 1);
            if (!bound) return bound;
        }
        // Port 0 in the config is any free port: the other loops share the one the first got.
        config::server_config loop_cfg = cfg_;
        loop_cfg.http_addr.port = ctx_.http_port;
        if (loop_cfg.https_addr) loop_cfg.https_addr->port = ctx_.https_port;
        for (std::uint32_t i = 1; i < cfg_.threads; ++i) {
            // What a worker loop does not serve comes here, to be served on this thread.
            auto to_http = [this](handed_visitor v) {
                asio::post(ctx_.io, [this, v = std::move(v)]() mutable { http_.adopt(std::move(v)); });
            };
            auto to_https = [this](handed_visitor v) {
                asio::post(ctx_.io,
                           [this, v = std::move(v)]() mutable { https_edge_.adopt(std::move(v)); });
            };
            workers_.push_back(std::make_unique<worker>(
                i, loop_cfg, ctx_.visitors, ctx_.jwks, ctx_.tunnel_steps, https_.get(),
                ctx_.https_port, std::move(to_http), std::move(to_https),
                first_loop_tunnels{ctx_.io.get_executor(), &tunnels_, &registry_}, ctx_.recent));
            // The relay this one replaces handed over its loops' listeners: one each.
            std::vector<handoff::listener> given;
            if (auto fd = ctx_.inherited.take("http", cfg_.http_addr.to_string()))
                given.push_back({"http", loop_cfg.http_addr.to_string(), *fd});
            if (cfg_.https_addr)
                if (auto fd = ctx_.inherited.take("https", cfg_.https_addr->to_string()))
                    given.push_back({"https", loop_cfg.https_addr->to_string(), *fd});
            workers_.back()->inherit(handoff::inherited(std::move(given)));
            bound = workers_.back()->listen(sites_);
            if (!bound) return bound;
        }
        // The replaced relay had more loops: what it listened with for them is this loop's too.
        http_.take_spare_listeners();
        if (cfg_.https_addr) https_edge_.take_spare_listeners();
        if (!workers_.empty()) {
            std::vector<pump_fn> pumps;
            for (auto& w : workers_)
                pumps.emplace_back([w = w.get()](handed_pump p) { w->pump(std::move(p)); });
            tcp_.spread_pumps_over(std::move(pumps));
            admin_.all_counters = [this] { return all_counters(); };
            ctx_.tell_loops = [this] {
                // Once per turn of this loop however many tunnels changed in it (a burst of
                // clients registering builds one directory, not one each).
                if (std::exchange(directory_due_, true)) return;
                asio::post(ctx_.io, [this] {
                    directory_due_ = false;
                    const auto directory = tunnel_directory::of(registry_, ctx_);
                    for (auto& w : workers_) w->publish(directory);
                });
            };
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
        // What the replaced relay listened on and this config does not: closed. A TCP tunnel's
        // port waits, visitors queued in its backlog, until its client claims it again.
        ctx_.inherited.close_all_but("tcp tunnel");
        return {};
    }

    // What the relay this one replaces handed over: sockets for listen() to take, and the
    // names and ports its clients hold, leased to them.
    void adopt(handoff::state& given) {
        ctx_.inherited = handoff::inherited(std::move(given.listeners));
        local_.adopt(given.leases, clock::now());
    }

    // `control_later`: a relay taking over accepts on the control port only once the relay it
    // replaces has let its clients go (start_control_after).
    void start(bool control_later = false) {
        announce();
        if (ctx_.max_connections_per_ip < cfg_.max_connections_per_ip ||
            ctx_.gate_total < cfg_.max_unauthenticated)
            spdlog::info("descriptor limit {}: at most {} visitor connections per address and {} "
                         "unfinished control handshakes (raise the limit, e.g. LimitNOFILE=, for "
                         "the configured {} and {})",
                         ctx_.descriptors, ctx_.max_connections_per_ip, ctx_.gate_total,
                         cfg_.max_connections_per_ip, cfg_.max_unauthenticated);
        if (cluster_) {
            ctx_.spawn(cluster_->run());
            link_->start();
        }
        if (cfg_.control_enabled && !control_later) control_.start();
        http_.start();
        for (auto& w : workers_) w->start();
        if (https_edge_.listening()) https_edge_.start();
        if (metrics_) metrics_->start();
        start_checks(*sites_, ctx_.io.get_executor());
        tcp_.start_sites();
        ctx_.jwks->start(ctx_.io.get_executor());
        if (acme_) {
            acme_->set_wanted([this](const std::string& name) { return wants_certificate(name); });
            acme_->start(ctx_.io.get_executor());
        }
        ctx_.spawn(sweep());
        signals_.async_wait([this](error_code ec, int sig) {
            if (!ec)
                begin_shutdown(sig == SIGINT ? "SIGINT received" : "SIGTERM received",
                               "relay is shutting down", {});
        });
        wait_for_reopen();
        wait_for_reload();
        core::notify_ready(status_text());
    }

    // After a takeover: the control port accepts once the replaced relay says so on `channel`,
    // or closes it, or after 5 s.
    void start_control_after(int channel) { ctx_.spawn(await_control(channel)); }

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

    // What every event loop counted, as of now.
    observe::relay_counters all_counters() {
        observe::relay_counters counted = ctx_.counters;
        for (const auto& w : workers_) counted.add(w->counters_now());
        return counted;
    }

    // One scrape: the counters and what the relay's parts hold now.
    std::string metrics_text() {
        relay_gauges g;
        control_.read_gauges(g);
        g.visitor_connections = visitors();
        if (admin_server_) g.admin_auth_failures = admin_server_->auth_failures();
        if (control_.tls())
            g.certificates.push_back(
                {"control", net::not_after(  // Asio's native_handle() is not const; it reads
                                const_cast<asio::ssl::context&>(control_.tls()->context)
                                    .native_handle())});
        if (https_)
            for (auto& [name, expiry] : https_->expiries()) g.certificates.push_back({name, expiry});
        if (acme_) {
            // One label per name: a relay with many tunnels has a certificate for each.
            for (auto& [name, expiry] : acme_->expiries())
                if (g.certificates.size() < 200) g.certificates.push_back({name, expiry});
            const auto& c = acme_->counters();
            g.acme_orders = std::array<std::uint64_t, 4>{c.issued, c.renewed, c.failed,
                                                         c.over_budget};
        }
        g.caches = admin_.caches();
        if (cluster_)
            g.cluster = relay_gauges::cluster_state{cluster_->degraded(), cluster_->lookups(),
                                                    cluster_->events(),   link_->carried_out(),
                                                    link_->carried_in(),  link_->refused()};
        std::vector<std::string> site_labels;
        for (const auto& s : sites_->sites()) {
            site_labels.push_back(s->hosts.front());
            for (const auto& r : s->routes)
                for (std::size_t i = 0; i < r->pool->size(); ++i)
                    g.upstream.push_back({s->hosts.front(), r->pool->member(i).url,
                                          r->pool->available(i)});
        }
        return write_metrics(all_counters(), ctx_.tunnel_labels, site_labels, g,
                             observe::read_process_stats(),
                             ctx_.access_log ? ctx_.access_log->dropped_lines() : 0);
    }

private:
    // For the relay that replaces this one: every listening socket, every held name and port,
    // and a self-signed control certificate (clients pinned its fingerprint).
    handoff::state handoff_state() {
        handoff::state s;
        const auto add = [&](std::string role, std::string where, int fd) {
            if (fd >= 0) s.listeners.push_back({std::move(role), std::move(where), fd});
        };
        add("http", cfg_.http_addr.to_string(), http_.listener_fd());
        if (cfg_.https_addr) add("https", cfg_.https_addr->to_string(), https_edge_.listener_fd());
        // The other loops' too, and the spares: what is queued on them is accepted by the new
        // relay.
        for (int fd : http_.spare_listener_fds()) add("http", cfg_.http_addr.to_string(), fd);
        if (cfg_.https_addr)
            for (int fd : https_edge_.spare_listener_fds())
                add("https", cfg_.https_addr->to_string(), fd);
        for (const auto& w : workers_) {
            add("http", cfg_.http_addr.to_string(), w->http_listener_fd());
            if (cfg_.https_addr)
                add("https", cfg_.https_addr->to_string(), w->https_listener_fd());
        }
        if (cfg_.control_enabled)
            add("control", cfg_.control_addr.to_string(), control_.listener_fd());
        if (metrics_) add("metrics", cfg_.metrics_addr->to_string(), metrics_->listener_fd());
        for (auto& [where, fd] : tcp_.site_listeners()) add("tcp site", where, fd);
        registry_.for_each_port([&](tunnel& t) {
            if (t.acceptor && t.acceptor->is_open())
                add("tcp tunnel", config::endpoint{cfg_.http_addr.host, t.port}.to_string(),
                    t.acceptor->native_handle());
        });
        if (admin_server_) {
            add("admin socket", admin_server_->socket_path(), admin_server_->socket_fd());
            if (cfg_.admin_addr)
                add("admin tcp", cfg_.admin_addr->to_string(), admin_server_->tcp_fd());
        }
        s.leases = local_.handover_leases(clock::now(), cfg_.lease_grace);
        if (control_.tls() && cfg_.control_cert.empty()) {
            // Asio's native_handle() is not const; pem_of only reads.
            auto pem = net::pem_of(const_cast<net::server_tls&>(*control_.tls()));
            if (pem) {
                s.control_cert_pem = std::move(pem->first);
                s.control_key_pem = std::move(pem->second);
            } else {
                spdlog::warn("upgrade: {}; clients that pinned the control certificate will "
                             "refuse the new one",
                             pem.error());
            }
        }
        return s;
    }

    // A new relay serves on the sockets this one handed over: this one drains and stops.
    // Kept-alive visitors get a second to send their next request, answered with
    // Connection: close, so that none is cut off as it sends one; they come back to the new
    // relay. Through that second this relay keeps its clients, and the control port for their
    // data connections; then it tells them GOAWAY and leaves the control port to the new relay,
    // where they reconnect. Meanwhile the new relay holds visitors of their tunnels.
    void replaced() {
        if (admin_server_) admin_server_->stop_accepting();
        begin_shutdown("upgraded, a new relay serves", "relay upgrading", std::chrono::seconds(1));
    }

    // Whether `name` may get a certificate from the ACME CA: the relay's domain, an exact host of
    // a site, or the name of an HTTP tunnel a client serves or holds by a lease. Nobody's name
    // costs no order: a visitor cannot make the relay spend its rate limits on random names.
    bool wants_certificate(const std::string& name) {
        if (name == cfg_.domain) return true;
        if (const auto* site = sites_->find_site(name))
            return std::find(site->hosts.begin(), site->hosts.end(), name) != site->hosts.end();
        // A tunnel's own name under the domain, or a custom domain a client serves.
        const auto tunnel = name.find('.') == std::string::npos
                                ? std::nullopt
                                : http::tunnel_name_for_host(name, cfg_.domain);
        const std::string& held = tunnel ? *tunnel : name;
        return tunnels_.serving(held) || registry_.name_held(held, clock::now());
    }

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
        auto built = ctx_.jwks->add(next.tunnel_policies);
        for (const auto& s : next.sites.sites) {
            if (built) built = ctx_.jwks->add(s.policies);
            for (const auto& r : s.routes)
                if (built) built = ctx_.jwks->add(r.policies);
        }
        if (!built) return tl::unexpected(built.error());
        auto table = std::make_shared<route::route_table>();
        built = build_sites(next.sites, &tunnels_, *ctx_.jwks, *table, true);
        if (!built) return tl::unexpected(built.error());
        auto tunnel_cache = ctx_.tunnel_cache_for(next.tunnel_cache);
        if (!tunnel_cache) return tl::unexpected(tunnel_cache.error());
        // Certificates, read again: a renewed file under the same path is the usual change.
        std::unique_ptr<net::https_certificates> https;
        if (next.https_addr &&
            (!next.tls_certs.empty() || !next.tls_self_signed_dir.empty() || next.acme)) {
            auto loaded = net::https_certificates::load(next.tls_certs, next.tls_keys,
                                                        next.tls_self_signed_dir, next.domain);
            if (!loaded) return tl::unexpected(loaded.error());
            https = std::move(*loaded);
            if (acme_) https->set_source(acme_.get());
        }
        std::optional<net::server_tls> control_tls;
        if (control_.tls() && !(next.control_cert.empty() && cfg_.control_cert.empty())) {
            // A self-signed certificate that clients pinned stays as long as none is configured.
            auto made = net::make_server_tls(next.control_cert, next.control_key,
                                             control_names(next));
            if (!made) return tl::unexpected(made.error());
            control_tls.emplace(std::move(*made));
        }

        // Commit, in this one turn of the loop. Requests under way keep the table and routes
        // they hold; the next request of a kept-alive connection looks its route up again.
        replace_sites(sites_, std::move(table), ctx_.counters.sites, ctx_.io.get_executor());
        ctx_.jwks->start(ctx_.io.get_executor());

        // A handshake under way keeps the certificates it began with: the old set stays until
        // no handshake can still be using it.
        if (https_) retired_https_.emplace_back(clock::now(), std::move(https_));
        https_ = std::move(https);
        ctx_.https = https_.get();
        std::string control_change;
        if (control_tls) {
            if (control_tls->fingerprint != control_.tls()->fingerprint)
                control_change = "; control certificate now " + control_tls->fingerprint;
            control_.replace_tls(std::move(*control_tls));
        }
        cfg_.tls_certs = std::move(next.tls_certs);
        cfg_.tls_keys = std::move(next.tls_keys);
        cfg_.tls_self_signed_dir = std::move(next.tls_self_signed_dir);
        cfg_.control_cert = std::move(next.control_cert);
        cfg_.control_key = std::move(next.control_key);

        std::size_t closed = 0;
        for (const auto& v : plan.tokens_removed) closed += control_.revoke_token(v);
        for (const auto& v : next.tokens) control_.add_token(v);
        cfg_.tokens = std::move(next.tokens);
        cfg_.token_origins = std::move(next.token_origins);
        cfg_.tokens_file = std::move(next.tokens_file);
        admin_.load_tokens();
        cfg_.bound_names = std::move(next.bound_names);
        cfg_.custom_domains = std::move(next.custom_domains);
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
        cfg_.tunnel_cache = next.tunnel_cache;
        ctx_.use_tunnel_cache(std::move(*tunnel_cache), cfg_.tunnel_cache);
        cfg_.trusted_proxies = std::move(next.trusted_proxies);
        cfg_.accept_proxy_protocol = next.accept_proxy_protocol;
        ctx_.config_changed();
        ctx_.tunnel_steps = std::make_shared<shared_tunnel_steps>();  // the tunnels' chains anew
        for (auto& w : workers_) w->reload(cfg_, https_.get(), sites_, ctx_.tunnel_steps);
        http_.forget_tunnel_routes();
        ctx_.tunnels_did_change();
        ++generation_;
        return fmt::format("sites {} added, {} removed, {} kept; tokens {} added, {} removed ({} "
                           "sessions closed); certificates read again{}",
                           plan.sites_added, plan.sites_removed, plan.sites_kept,
                           plan.tokens_added, plan.tokens_removed.size(), closed, control_change);
    }

    asio::awaitable<void> await_control(int fd) {
        asio::local::stream_protocol::socket channel(ctx_.io);
        error_code ec;
        channel.assign(asio::local::stream_protocol(), fd, ec);
        asio::steady_timer limit(ctx_.io);
        limit.expires_after(std::chrono::seconds(5));
        limit.async_wait([&channel](error_code e) {
            error_code ignored;
            if (!e) channel.cancel(ignored);
        });
        // Its message, its end or the limit: each means the same.
        const auto woke = co_await channel.async_wait(asio::socket_base::wait_read, use_tuple);
        (void)woke;
        limit.cancel();
        channel.close(ec);
        if (cfg_.control_enabled && !ctx_.draining) control_.start();
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
            for (auto& w : workers_) w->reopen_log();
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
        settings.socket_fd = ctx_.inherited.take("admin socket", settings.socket_path).value_or(-1);
        if (cfg_.admin_addr)
            settings.tcp_fd =
                ctx_.inherited.take("admin tcp", cfg_.admin_addr->to_string()).value_or(-1);
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
            ctx_.tunnel_steps->sweep([this](const std::string& name) {
                return !registry_.local(protocol::tunnel_kind::http, name);
            });
            // Ports handed over by a replaced relay whose clients did not come back.
            ctx_.inherited.close_unless("tcp tunnel", [&](std::string_view where) {
                const auto at = config::parse_endpoint(where);
                return at && registry_.port_held(at->port, ctx_.now);
            });
            error_code ec;
            for (auto& w : ctx_.watched)
                if (w.deadline <= ctx_.now) w.conn.socket().cancel(ec);
            heap_.tick();
            if (ctx_.access_log) ctx_.access_log->flush();
            // A handshake ends within header_timeout: then replaced certificates can go.
            std::erase_if(retired_https_, [&](const auto& r) {
                return r.first + cfg_.header_timeout + 1s < ctx_.now;
            });
        }
    }

    // `why` for the log, `goaway` for the clients; idle kept-alive visitors close after
    // `idle_grace`.
    void begin_shutdown(std::string_view why, std::string_view goaway,
                        std::chrono::seconds idle_grace) {
        if (ctx_.draining) return;
        ctx_.draining = true;
        if (acme_) acme_->stop();
        core::notify_stopping("draining");
        spdlog::info("{}: draining (up to {} s)", why, cfg_.shutdown_timeout.count());
        signals_.async_wait([this](error_code ec, int) {
            if (!ec) {
                spdlog::warn("second signal: stopping now");
                ctx_.io.stop();
            }
        });
        error_code ec;
        http_.stop_accepting();
        for (auto& w : workers_) w->drain(idle_grace);
        https_edge_.stop_accepting();
        if (metrics_) metrics_->stop_accepting();
        sweep_.cancel();
        reopen_signal_.cancel();
        reload_signal_.cancel();
        stop_pools(*sites_);
        ctx_.jwks->stop();
        tcp_.stop_sites();
        if (cluster_) {
            cluster_->stop();  // its keys expire; its clients claim them elsewhere
            link_->close();
        }
        registry_.for_each_port([&](tunnel& t) {
            if (t.acceptor) t.acceptor->close(ec);
        });
        std::string goaway_text(goaway);  // named: GCC 12 mishandles temporaries in coroutine calls
        ctx_.spawn(finish_shutdown(idle_grace, std::move(goaway_text)));
    }

    asio::awaitable<void> finish_shutdown(std::chrono::seconds idle_grace, std::string goaway) {
        const auto deadline = clock::now() + cfg_.shutdown_timeout;
        asio::steady_timer t(ctx_.io);
        if (idle_grace.count() > 0) {
            t.expires_after(idle_grace);
            co_await t.async_wait(use_tuple);
        }
        ctx_.closing_idle = true;
        error_code ec;
        for (auto& w : ctx_.watched)
            if (w.idle) w.conn.socket().cancel(ec);
        control_.begin_drain(goaway);
        upgrader_.release_control();  // after an upgrade: the new relay's control port now
        // Visitors, the answer to `porthole admin upgrade` that asked for this drain, and for a
        // moment the clients: they leave once they have read GOAWAY, and know why.
        const auto clients_until = clock::now() + 500ms;
        while ((ctx_.active_visitors > 0 || !workers_drained() ||
                (admin_server_ && admin_server_->answering()) ||
                (control_.session_count() > 0 && clock::now() < clients_until)) &&
               clock::now() < deadline) {
            t.expires_after(20ms);
            co_await t.async_wait(use_tuple);
        }
        if (visitors() > 0)
            spdlog::warn("{} visitor connections still open at the deadline", visitors());
        control_.close_all();
        for (auto& w : workers_) w->stop();
        ctx_.io.stop();
    }

    bool workers_drained() const {
        return std::all_of(workers_.begin(), workers_.end(),
                           [](const auto& w) { return w->drained(); });
    }
    // Visitor connections open on every event loop (the workers' as of their last second).
    std::size_t visitors() const {
        std::size_t n = ctx_.active_visitors;
        for (const auto& w : workers_) n += w->active_visitors();
        return n;
    }

    config::server_config& cfg_;  // the live config: a reload changes what may change in place
    config_source reload_source_;
    std::uint64_t generation_ = 1;
    std::unique_ptr<net::https_certificates> https_;  // set when visitors may use HTTPS
    std::shared_ptr<acme::cert_issuer> acme_;  // set when certificates come from an ACME CA
    // Sets a reload replaced, with when: SNI callbacks of handshakes under way may read them.
    std::vector<std::pair<clock::time_point, std::unique_ptr<net::https_certificates>>>
        retired_https_;
    relay_context ctx_;
    local_registry local_;  // this relay's tunnels
    std::unique_ptr<cluster::cluster_registry> cluster_;  // set in a cluster: local_ and Redis
    tunnel_registry& registry_;  // cluster_, or local_ on a relay of its own
    tcp_edge tcp_;
    tunnel_members tunnels_;
    control_port control_;
    std::shared_ptr<route::route_table> sites_ = std::make_shared<route::route_table>();
    http_edge http_;
    https_edge https_edge_;
    std::optional<metrics_listener> metrics_;
    std::unique_ptr<cluster::relay_link> link_;  // set in a cluster
    relay_admin admin_;
    std::unique_ptr<admin::admin_server> admin_server_;
    asio::signal_set signals_;
    asio::signal_set reopen_signal_;
    asio::signal_set reload_signal_;
    asio::steady_timer sweep_;
    core::heap_trim heap_;
    upgrader upgrader_;
    // The other event loops (threads > 1): last, so that they stop before what they hand to.
    std::vector<std::unique_ptr<worker>> workers_;
    bool directory_due_ = false;  // a tunnel_directory is to be built and posted to them
};

// The first event loop, without a resolver: alone, its scheduler and reactor need no locks.
// destroy_pending() shuts the services down, which destroys every handler still queued or
// waiting, and with them the coroutine frames suspended in them.
class relay_io : public asio::io_context {
public:
    // With other event loops (`threads`), they post to this one: the scheduler locks.
    explicit relay_io(bool posted_to)
        : asio::io_context(posted_to ? BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO
                                     : BOOST_ASIO_CONCURRENCY_HINT_UNSAFE) {}
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

int run(config::server_config cfg, config_source reload, start_options start) {
    raise_descriptor_limit();
    // Start-up failures: on stderr, and to the relay being replaced, which reports them to
    // whoever asked for the upgrade and keeps serving.
    const auto refuse = [&](const std::string& why) {
        std::cerr << "porthole: error: " << why << "\n";
        if (start.takeover) (void)core::send_message(*start.takeover, handoff::failed_message(why));
        return 1;
    };
    handoff::state given;
    if (start.takeover) {
        auto asked = core::send_message(*start.takeover, handoff::hello_message());
        auto got = asked ? handoff::receive_state(*start.takeover, std::chrono::seconds(10))
                         : tl::unexpected(asked.error());
        if (!got) return refuse("cannot take over from the running relay: " + got.error());
        given = std::move(*got);
    }
    std::optional<net::server_tls> tls;
    if (cfg.control_tls_enabled()) {
        // A self-signed certificate stays the one clients pinned.
        auto made = cfg.control_cert.empty() && !given.control_cert_pem.empty()
                        ? net::server_tls_from_pem(given.control_cert_pem, given.control_key_pem)
                        : net::make_server_tls(cfg.control_cert, cfg.control_key,
                                               control_names(cfg));
        if (!made) return refuse(made.error());
        tls.emplace(std::move(*made));
    }
    std::unique_ptr<net::https_certificates> https;
    if (cfg.https_addr &&
        (!cfg.tls_certs.empty() || !cfg.tls_self_signed_dir.empty() || cfg.acme)) {
        auto loaded = net::https_certificates::load(cfg.tls_certs, cfg.tls_keys,
                                                    cfg.tls_self_signed_dir, cfg.domain);
        if (!loaded) return refuse(loaded.error());
        https = std::move(*loaded);
    }
    std::shared_ptr<acme::cert_issuer> acme;
    if (cfg.acme) {
        acme::issuer_settings settings;
        settings.client = acme::client_settings{cfg.acme->email, cfg.acme->ca,
                                                cfg.acme->challenges, cfg.acme->eab_kid,
                                                cfg.acme->eab_hmac};
        settings.state_dir = cfg.acme->state_dir.empty() ? config::default_state_dir()
                                                         : cfg.acme->state_dir;
        settings.ca_root = cfg.acme->ca_root;
        settings.renew_after = cfg.acme->renew_after;
        settings.dns = cfg.acme->dns;
        settings.domain = cfg.domain;
        auto made = acme::cert_issuer::make(std::move(settings));
        if (!made) return refuse(made.error());
        acme = std::move(*made);
    }
    relay_io io(cfg.threads > 1);
    relay r(io, cfg, std::move(reload), std::move(start.command), std::move(tls),
            std::move(https), std::move(acme));
    r.adopt(given);
    if (auto ok = r.listen(); !ok) return refuse(ok.error());
    if (start.takeover) core::notify_main_pid();  // before READY=1: this is the unit's process now
    r.start(start.takeover.has_value());
    if (start.takeover) {
        core::notify_barrier();
        (void)core::send_message(*start.takeover, handoff::ready_message());
        r.start_control_after(*start.takeover);
    }
    io.run();
    // Connections still suspended at the stop hold guards that give back what they counted in
    // the relay (handshake places, per-address counts): their frames go now, while it exists.
    io.destroy_pending();
    spdlog::info("relay stopped");
    return 0;
}

}  // namespace porthole::relay
