#include "relay/tunnel_members.hpp"

#include "cluster/relay_link.hpp"
#include "relay/tunnel_stream.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace porthole::relay {

namespace asio = boost::asio;
using failure = upstream::open_failure;

// A group served through several relays: visitors are spread over them in turn.
std::string tunnel_members::next_link(const remote_tunnel& remote) {
    if (remote.links.empty()) return remote.link;
    return remote.links[spread_++ % remote.links.size()];
}

bool tunnel_members::serving(const std::string& name) {
    if (serving_here(name)) return true;
    const remote_tunnel* remote = link_ ? registry_.remote(name) : nullptr;
    return remote && remote->serving && remote->kind == protocol::tunnel_kind::http;
}

bool tunnel_members::serving_here(const std::string& name) {
    auto* group = registry_.local(protocol::tunnel_kind::http, name);
    if (!group) return false;
    return std::any_of(group->members.begin(), group->members.end(), [](const auto& t) {
        auto s = t->owner.lock();
        return s && !s->closed;
    });
}

asio::awaitable<tl::expected<upstream::tunnel_connection, failure>> tunnel_members::open(
    const std::string& name, const std::string& visitor) {
    if (!link_ || serving_here(name)) co_return co_await open_local(name, visitor);
    // Held by another relay: carried there. An answer that proved wrong (that relay is gone, or
    // no longer holds the name) is learnt again once.
    for (int attempt = 0; attempt < 2; ++attempt) {
        const remote_tunnel* remote = registry_.remote(name);
        if (!remote || !remote->serving || remote->kind != protocol::tunnel_kind::http) break;
        protocol::link_open what{protocol::tunnel_kind::http, name, 0, visitor};
        const std::string peer = next_link(*remote);
        auto carried = co_await link_->open(peer, std::move(what));
        if (carried) co_return std::move(*carried);
        if (attempt == 1)
            co_return tl::unexpected(failure{
                502, fmt::format("porthole: tunnel '{}' could not take the request: {}", name,
                                 carried.error())});
        co_await registry_.learn(name, true);
    }
    co_return tl::unexpected(
        failure{502, fmt::format("porthole: no client of tunnel '{}' is connected", name)});
}

asio::awaitable<std::optional<net::stream>> tunnel_members::open_remote_tls(
    const std::string& name, const std::string& visitor) {
    const remote_tunnel* remote = link_ ? registry_.remote(name) : nullptr;
    if (!remote || !remote->serving || remote->kind != protocol::tunnel_kind::tls)
        co_return std::nullopt;
    protocol::link_open what{protocol::tunnel_kind::tls, name, 0, visitor};
    const std::string peer = next_link(*remote);
    auto carried = co_await link_->open(peer, std::move(what));
    if (!carried) {
        co_await registry_.learn(name, true);
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("tls {}: visitor {} dropped: {}{}", name, visitor, carried.error(),
                         ctx_.visitor_log.suppressed_note());
        co_return std::nullopt;
    }
    co_return std::move(carried->stream);
}

asio::awaitable<tl::expected<upstream::tunnel_connection, std::string>>
tunnel_members::open_local_tls(const std::string& name, const std::string& visitor) {
    auto* group = registry_.local(protocol::tunnel_kind::tls, name);
    std::shared_ptr<tunnel> t = group ? group->pick() : nullptr;
    if (!t) co_return tl::unexpected(std::string("no client of this tunnel is connected"));
    if (t->active >= ctx_.cfg.max_connections_per_tunnel) {
        ctx_.refused_connection(observe::refusal::connections_per_tunnel, visitor, t->name);
        co_return tl::unexpected(std::string("the tunnel is at its connection limit"));
    }
    if (!t->new_connections.take(clock::now())) {
        ctx_.refused_connection(observe::refusal::new_connections_per_tunnel, visitor, t->name);
        co_return tl::unexpected(std::string("the tunnel is taking new connections too fast"));
    }
    auto slot = std::make_shared<tunnel_slot>(t);
    auto stream = co_await open_tunnel_stream(ctx_, *t, visitor);
    if (!stream) co_return tl::unexpected(std::move(stream.error()));
    co_return upstream::tunnel_connection{std::move(*stream), {}, {}, std::move(slot)};
}

asio::awaitable<tl::expected<upstream::tunnel_connection, failure>> tunnel_members::open_local(
    const std::string& name, const std::string& visitor) {
    // A group's client that cannot take the stream (it died, and its session has not noticed
    // yet) lets the next client try: nothing reached an application, so any request may move.
    std::string last_error;
    for (std::size_t attempt = 0;; ++attempt) {
        // Looked up again after each wait: the registry may have changed meanwhile.
        auto* group = registry_.local(protocol::tunnel_kind::http, name);
        std::shared_ptr<tunnel> t = group && attempt < group->members.size() ? group->pick()
                                                                               : nullptr;
        if (!t) {
            if (!last_error.empty()) co_return tl::unexpected(failure{502, std::move(last_error)});
            co_return tl::unexpected(
                failure{502, fmt::format("porthole: no client of tunnel '{}' is connected", name)});
        }
        if (t->active >= ctx_.cfg.max_connections_per_tunnel) {
            ctx_.refused_connection(observe::refusal::connections_per_tunnel, visitor, name);
            co_return tl::unexpected(
                failure{503, "porthole: this tunnel is at its connection limit"});
        }
        if (!t->new_connections.take(clock::now())) {
            ctx_.refused_connection(observe::refusal::new_connections_per_tunnel, visitor, name);
            co_return tl::unexpected(failure{429, "porthole: this tunnel is taking new connections "
                                                  "too fast; retry shortly"});
        }
        auto slot = std::make_shared<tunnel_slot>(t);
        auto stream = co_await open_tunnel_stream(ctx_, *t, visitor);
        if (stream)
            co_return upstream::tunnel_connection{std::move(*stream), t->host_header, t->target,
                                                  std::move(slot)};
        last_error = fmt::format("porthole: tunnel '{}' could not take the request: {}", t->name,
                                 stream.error());
    }
}

}  // namespace porthole::relay
