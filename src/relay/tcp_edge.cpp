#include "relay/tcp_edge.hpp"

#include "net/listener.hpp"
#include "net/pump.hpp"
#include "relay/tunnel_stream.hpp"

#include <spdlog/spdlog.h>

namespace porthole::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

void tcp_edge::serve_tunnel(std::shared_ptr<tunnel> t) { ctx_.spawn(accept(std::move(t))); }

asio::awaitable<void> tcp_edge::accept(std::shared_ptr<tunnel> t) {
    co_await accept_connections(ctx_, *t->acceptor, "tcp tunnel", [this, t](tcp::socket s) {
        ctx_.spawn(serve_visitor(std::move(s), t));
    });
}

asio::awaitable<void> tcp_edge::serve_visitor(tcp::socket visitor, std::shared_ptr<tunnel> t) {
    const visit_guard guard(ctx_, net::peer_ip(visitor));
    if (!guard.within_limit || t->active >= ctx_.cfg.max_connections_per_tunnel ||
        !t->new_connections.take(clock::now())) {
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("tcp {}: visitor {} refused: connection limit{}", t->port, guard.ip,
                         ctx_.visitor_log.suppressed_note());
        co_return;
    }
    const tunnel_slot slot(t);
    auto stream = co_await open_tunnel_stream(ctx_, *t, guard.ip);
    if (!stream) {
        spdlog::info("tcp {}: visitor {} dropped: {}", t->port, guard.ip, stream.error());
        co_return;
    }
    net::stream visitor_stream(std::move(visitor));
    co_await net::pump(visitor_stream, *stream);
}

}  // namespace porthole::relay
