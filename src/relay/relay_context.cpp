#include "relay/relay_context.hpp"

#include "net/address_group.hpp"
#include "net/listener.hpp"
#include "net/proxy_accept.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace porthole::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

void log_exception(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        spdlog::error("unexpected failure in a connection: {}", x.what());
    }
}

std::uint32_t descriptor_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1u << 20;
    return static_cast<std::uint32_t>(std::min<rlim_t>(lim.rlim_cur, 1u << 20));
}

relay_context::relay_context(boost::asio::io_context& io, const config::server_config& cfg,
                             net::https_certificates* https)
    : io(io), cfg(cfg), https(https), descriptors(descriptor_limit()),
      tunnel_labels(cfg.metrics_tunnel_labels),
      counters(tunnel_labels.slots(), cfg.sites.sites.size()) {
    config_changed();
}

void relay_context::config_changed() {
    // The config loader has checked every entry already.
    trusted_proxies = net::network_list::parse(cfg.trusted_proxies).value_or(net::network_list{});
    max_connections_per_ip =
        std::min(cfg.max_connections_per_ip, std::max<std::uint32_t>(descriptors / 4, 8));
    gate_total = std::min(cfg.max_unauthenticated, std::max<std::uint32_t>(descriptors / 8, 4));
    gate_per_ip = std::min(cfg.max_unauthenticated_per_ip, gate_total);
}

tl::expected<std::shared_ptr<cache::http_cache>, std::string> relay_context::tunnel_cache_for(
    const std::optional<config::cache_config>& next) const {
    if (!next || !next->enabled) return nullptr;
    if (tunnel_cache && tunnel_cache_config == *next) return tunnel_cache;
    return cache::make_cache(*next).map_error(
        [](std::string e) { return "tunnel_policy.cache: " + e; });
}

void relay_context::use_tunnel_cache(std::shared_ptr<cache::http_cache> c,
                                     const std::optional<config::cache_config>& made_from) {
    tunnel_cache = std::move(c);
    if (made_from) tunnel_cache_config = *made_from;
}

std::uint32_t relay_context::hold_tunnel_label(const std::string& name) {
    const auto label = tunnel_labels.acquire(name);
    if (label.fresh) counters.tunnels[label.slot] = {};
    return label.slot;
}

tl::expected<void, std::string> relay_context::listen(tcp::acceptor& a,
                                                     const config::endpoint& at,
                                                     std::string_view role, bool shared) {
    const auto fd = inherited.take(role, at.to_string());
    if (!fd) return net::listen_on(a, at, role, shared);
    // A relay with one loop listened without SO_REUSEPORT: set now, the other loops' listeners
    // may bind the same address beside it.
    const int one = 1;
    if (shared) ::setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len);
    error_code ec;
    a.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), *fd, ec);
    if (ec) {
        ::close(*fd);
        return tl::unexpected(fmt::format("cannot take over the {} listener on {}: {}", role,
                                          at.to_string(), ec.message()));
    }
    return {};
}

void relay_context::refused_connection(observe::refusal why, std::string_view visitor,
                                       std::string_view tunnel) {
    counters.refused(why);
    recent.add({.kind = observe::event_kind::refusal,
                .reason = observe::name_of(why),
                .visitor = visitor,
                .tunnel = tunnel},
               std::chrono::system_clock::now());
}

std::string relay_context::http_url(const std::string& name) const {
    // A custom domain is its own host; a name is one label under the relay's domain.
    const std::string host = name.find('.') != std::string::npos ? name : name + "." + cfg.domain;
    if (https)
        return https_port == 443 ? fmt::format("https://{}", host)
                                 : fmt::format("https://{}:{}", host, https_port);
    return http_port == 80 ? fmt::format("http://{}", host)
                           : fmt::format("http://{}:{}", host, http_port);
}

std::string relay_context::tls_url(const std::string& name) const {
    const std::string host = name.find('.') != std::string::npos ? name : name + "." + cfg.domain;
    return https_port == 443 ? fmt::format("tls://{}", host)
                             : fmt::format("tls://{}:{}", host, https_port);
}

boost::asio::awaitable<void> accept_connections(
    boost::asio::ip::tcp::acceptor& a, std::string_view what,
    std::function<void(boost::asio::ip::tcp::socket)> serve) {
    namespace asio = boost::asio;
    // Draining closes each listener itself: the control port's stays open a while after an
    // upgrade, for the data connections of the sessions this relay still serves.
    while (a.is_open()) {
        auto [ec, socket] = co_await a.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted || (ec && !a.is_open())) co_return;
        // A connection accepted just as the listener closed is served all the same.
        if (ec) {
            co_await net::pause_after_accept_error(ec, what);
            continue;
        }
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
        serve(std::move(socket));
    }
}

visit_guard::visit_guard(relay_context& ctx, std::string ip, bool admitted)
    : ctx(ctx), ip(std::move(ip)), counted_as(net::address_group(this->ip)) {
    ++ctx.active_visitors;
    within_limit = ctx.visitors->open(counted_as) <= ctx.max_connections_per_ip || admitted;
}

visit_guard::visit_guard(relay_context& ctx, const net::proxy_header& origin)
    : visit_guard(ctx, origin.source.address().to_string()) {
    source = origin.source;
    destination = origin.destination;
}

visit_guard::visit_guard(relay_context& ctx, const handed_visitor& v)
    : visit_guard(ctx, v.ip, true) {
    source = v.source;
    destination = v.destination;
}

asio::awaitable<std::optional<net::proxy_header>> connection_origin(relay_context& ctx,
                                                                   tcp::socket& socket,
                                                                   bool accept_proxy,
                                                                   std::string_view what) {
    net::proxy_header origin;
    error_code ec;
    origin.source = socket.remote_endpoint(ec);
    origin.destination = socket.local_endpoint(ec);
    if (ec) co_return std::nullopt;
    if (!accept_proxy) co_return origin;
    if (!ctx.trusted_proxies.contains(origin.source.address())) {
        if (ctx.visitor_log.allow(clock::now()))
            spdlog::info("{}: {} sent no PROXY header it may send (not in trusted_proxies); "
                         "closed{}",
                         what, origin.source.address().to_string(),
                         ctx.visitor_log.suppressed_note());
        co_return std::nullopt;
    }
    auto header = co_await net::read_proxy_header(socket, clock::now() + ctx.cfg.header_timeout);
    if (!header) {
        if (ctx.visitor_log.allow(clock::now()))
            spdlog::info("{}: PROXY header from {}: {}; closed{}", what,
                         origin.source.address().to_string(), header.error(),
                         ctx.visitor_log.suppressed_note());
        co_return std::nullopt;
    }
    co_return *header;
}

visit_guard::~visit_guard() {
    --ctx.active_visitors;
    ctx.visitors->close(counted_as);
}

}  // namespace porthole::relay
