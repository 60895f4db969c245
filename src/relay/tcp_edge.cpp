#include "relay/tcp_edge.hpp"

#include "net/listener.hpp"
#include "net/pump.hpp"
#include "relay/tunnel_stream.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace porthole::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

void tcp_edge::serve_tunnel(std::shared_ptr<tunnel> t) { ctx_.spawn(accept(std::move(t))); }

asio::awaitable<void> tcp_edge::accept(std::shared_ptr<tunnel> t) {
    // The callback is named and owns no shared_ptr: GCC 12 may destroy a temporary of a co_await
    // expression twice (architecture.md), and a copy of `t` in it was released twice. `t` lives
    // in this frame for as long as the listener runs.
    const std::shared_ptr<tunnel>& held = t;
    const std::function<void(tcp::socket)> serve = [this, &held](tcp::socket s) {
        ctx_.spawn(serve_visitor(std::move(s), held));
    };
    co_await accept_connections(*t->acceptor, "tcp tunnel", serve);
}

asio::awaitable<void> tcp_edge::serve_visitor(tcp::socket visitor, std::shared_ptr<tunnel> t) {
    const visit_guard guard(ctx_, net::peer_ip(visitor));
    if (!guard.within_limit || t->active >= ctx_.cfg.max_connections_per_tunnel ||
        !t->new_connections.take(clock::now())) {
        ctx_.refused_connection(!guard.within_limit ? observe::refusal::connections_per_ip
                                : t->active >= ctx_.cfg.max_connections_per_tunnel
                                    ? observe::refusal::connections_per_tunnel
                                    : observe::refusal::new_connections_per_tunnel,
                                guard.ip, fmt::format("tcp:{}", t->port));
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("tcp {}: visitor {} refused: connection limit{}", t->port, guard.ip,
                         ctx_.visitor_log.suppressed_note());
        co_return;
    }
    auto slot = std::make_shared<tunnel_slot>(t);
    auto stream = co_await open_tunnel_stream(ctx_, *t, guard.ip);
    if (!stream) {
        spdlog::info("tcp {}: visitor {} dropped: {}", t->port, guard.ip, stream.error());
        co_return;
    }
    net::stream visitor_stream(std::move(visitor));
    if (pumps_.hand(ctx_, visitor_stream, *stream, guard.ip, std::move(slot))) co_return;
    co_await net::pump(visitor_stream, *stream, ctx_.counters.carried);
}

tl::expected<void, std::string> tcp_edge::listen_sites(
    const std::vector<config::tcp_site_config>& sites) {
    for (const auto& c : sites) {
        const std::string name = fmt::format("tcp site {}", c.listen.to_string());
        auto pool = upstream::pool::make(name, c.upstream, nullptr);
        if (!pool) return tl::unexpected(fmt::format("{}: {}", name, pool.error()));
        auto& site = sites_.emplace_back(ctx_.io, c, std::move(*pool));
        auto bound = ctx_.listen(site.acceptor, c.listen, "tcp site");
        if (!bound) return bound;
    }
    return {};
}

void tcp_edge::start_sites() {
    for (auto& s : sites_) {
        s.pool->start_checks(ctx_.io.get_executor());
        ctx_.spawn(accept_site(s));
    }
}

void tcp_edge::stop_sites() {
    for (auto& s : sites_) {
        error_code ec;
        s.acceptor.close(ec);
        s.pool->stop();
    }
}

std::vector<tcp::endpoint> tcp_edge::site_endpoints() const {
    std::vector<tcp::endpoint> out;
    for (const auto& s : sites_) out.push_back(s.acceptor.local_endpoint());
    return out;
}

std::vector<std::pair<std::string, int>> tcp_edge::site_listeners() {
    std::vector<std::pair<std::string, int>> out;
    for (auto& s : sites_)
        if (s.acceptor.is_open()) out.emplace_back(s.cfg.listen.to_string(), s.acceptor.native_handle());
    return out;
}

std::vector<std::shared_ptr<upstream::pool>> tcp_edge::site_pools() const {
    std::vector<std::shared_ptr<upstream::pool>> out;
    for (const auto& s : sites_) out.push_back(s.pool);
    return out;
}

asio::awaitable<void> tcp_edge::accept_site(tcp_site& site) {
    co_await accept_connections(site.acceptor, "tcp site", [this, &site](tcp::socket s) {
        ctx_.spawn(serve_site_visitor(std::move(s), site));
    });
}

asio::awaitable<void> tcp_edge::serve_site_visitor(tcp::socket visitor, tcp_site& site) {
    const auto origin = co_await connection_origin(ctx_, visitor, site.cfg.accept_proxy_protocol,
                                                   site.pool->name());
    if (!origin) co_return;
    const visit_guard guard(ctx_, *origin);
    if (!guard.within_limit) {
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("{}: visitor {} refused: connection limit{}", site.pool->name(), guard.ip,
                         ctx_.visitor_log.suppressed_note());
        co_return;
    }
    const auto pool = site.pool;  // the site's pool outlives a reload's new config
    upstream::tried_list tried;
    const upstream::request_facts facts{guard.ip, {}, &guard.source, &guard.destination};
    auto up = co_await pool->connect(facts, guard.ip, tried);
    if (!up) {
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("{}: visitor {} dropped: {}", pool->name(), guard.ip,
                         up.error().message);
        co_return;
    }
    // A byte stream has no verdict of its own: the connect succeeding is the member's health.
    // The member's count of connections drops when the pump ends, on whichever loop it ran.
    auto backend = std::shared_ptr<upstream::connection>(
        new upstream::connection(std::move(*up)), [pool](upstream::connection* c) {
            pool->finish(std::move(*c), upstream::outcome::ok, false);
            delete c;
        });
    net::stream visitor_stream(std::move(visitor));
    if (pumps_.hand(ctx_, visitor_stream, backend->stream, guard.ip, backend)) co_return;
    co_await net::pump(visitor_stream, backend->stream, ctx_.counters.carried);
}

}  // namespace porthole::relay
