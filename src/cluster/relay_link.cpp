#include "cluster/relay_link.hpp"

#include "core/use_tuple.hpp"
#include "net/connect.hpp"
#include "net/frame_io.hpp"
#include "net/listener.hpp"
#include "net/pump.hpp"
#include "relay/tunnel_stream.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace porthole::cluster {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto handshake_timeout = 5s;
constexpr auto idle_link_timeout = 60s;  // a pooled link connection no visitor took
constexpr auto frame_timeout = 10s;
constexpr auto ready_timeout = 75s;  // as long as a data connection waits for its client
constexpr unsigned pool_target = 4;  // idle link connections kept per peer
constexpr std::string_view psk_identity = "porthole-link-v1";

// The key both ends hold: from the cluster secret, under a label of its own.
using psk_key = std::array<unsigned char, 32>;

psk_key derive_psk(const std::string& secret) {
    psk_key k{};
    unsigned int n = 0;
    constexpr std::string_view label = "porthole cluster link psk v1";
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(label.data()), label.size(), k.data(), &n);
    return k;
}

// The key hangs on the context under an ex_data index of its own: Asio keeps its verify
// callback in the context's app data (index 0) and deletes whatever it finds there.
int key_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

const psk_key* key_of(SSL* ssl) {
    return static_cast<const psk_key*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), key_index()));
}

unsigned int server_psk(SSL* ssl, const char* identity, unsigned char* psk,
                        unsigned int max_psk) {
    const psk_key* k = key_of(ssl);
    if (!k || !identity || psk_identity != identity || max_psk < k->size()) return 0;
    std::memcpy(psk, k->data(), k->size());
    return static_cast<unsigned int>(k->size());
}

unsigned int client_psk(SSL* ssl, const char*, char* identity, unsigned int max_identity,
                        unsigned char* psk, unsigned int max_psk) {
    const psk_key* k = key_of(ssl);
    if (!k || max_identity <= psk_identity.size() || max_psk < k->size()) return 0;
    std::memcpy(identity, psk_identity.data(), psk_identity.size());
    identity[psk_identity.size()] = '\0';
    std::memcpy(psk, k->data(), k->size());
    return static_cast<unsigned int>(k->size());
}

// TLS 1.3 only, with the external PSK and an (EC)DHE exchange: forward secrecy, and no
// certificate on either side.
void configure(asio::ssl::context& tls, const psk_key* key, bool server) {
    SSL_CTX* ctx = tls.native_handle();
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_set_ex_data(ctx, key_index(), const_cast<psk_key*>(key));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);  // nothing unasked on an idle connection: no resumption
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (server)
        SSL_CTX_set_psk_server_callback(ctx, server_psk);
    else
        SSL_CTX_set_psk_client_callback(ctx, client_psk);
}

}  // namespace

relay_link::relay_link(relay::relay_context& ctx, relay::tunnel_registry& registry,
                       relay::tunnel_members& local, const config::cluster_config& cfg)
    : ctx_(ctx), registry_(registry), local_(local), cfg_(cfg), psk_(derive_psk(cfg.secret)),
      server_tls_(asio::ssl::context::tls_server), client_tls_(asio::ssl::context::tls_client),
      acceptor_(ctx.io) {
    configure(server_tls_, &psk_, true);
    configure(client_tls_, &psk_, false);
}

tl::expected<void, std::string> relay_link::listen() {
    return ctx_.listen(acceptor_, cfg_.link_addr, "cluster link");
}

void relay_link::start() {
    ctx_.spawn(accept());
}

void relay_link::close() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    idle_.clear();
    for (auto& [port, p] : ports_) p->acceptor.close(ec);
    ports_.clear();
}

void relay_link::serve_remote_ports(const std::map<std::uint16_t, std::string>& ports) {
    if (!acceptor_.is_open()) return;
    boost::system::error_code ec;
    for (auto it = ports_.begin(); it != ports_.end();) {
        auto listed = ports.find(it->first);
        if (listed == ports.end()) {
            it->second->acceptor.close(ec);
            it = ports_.erase(it);
            continue;
        }
        it->second->link = listed->second;  // the port moved with its client
        ++it;
    }
    for (const auto& [port, link] : ports) {
        if (ports_.contains(port) || !ctx_.cfg.tcp_ports.contains(port)) continue;
        auto p = std::make_shared<remote_port>(ctx_.io);
        // Another process may hold the port here; the next heartbeat tries again.
        if (!ctx_.listen(p->acceptor, {ctx_.cfg.http_addr.host, port}, "cluster tcp port")) continue;
        p->link = link;
        ports_[port] = p;
        ctx_.spawn(accept_port(p, port));
    }
}

void relay_link::drop_port(std::uint16_t port) {
    auto it = ports_.find(port);
    if (it == ports_.end()) return;
    boost::system::error_code ec;
    it->second->acceptor.close(ec);
    ports_.erase(it);
}

asio::awaitable<void> relay_link::accept_port(std::shared_ptr<remote_port> p, std::uint16_t port) {
    // Named, holding no shared_ptr of its own: `p` lives in this frame while it accepts.
    const std::shared_ptr<remote_port>& held = p;
    const std::function<void(tcp::socket)> serve = [this, &held, port](tcp::socket s) {
        ctx_.spawn(carry_tcp(std::move(s), held, port));
    };
    co_await relay::accept_connections(p->acceptor, "cluster tcp port", serve);
}

// A visitor of a TCP tunnel another relay holds: carried there whole.
asio::awaitable<void> relay_link::carry_tcp(tcp::socket visitor, std::shared_ptr<remote_port> p,
                                            std::uint16_t port) {
    const relay::visit_guard guard(ctx_, net::peer_ip(visitor));
    if (!guard.within_limit) {
        ctx_.refused_connection(observe::refusal::connections_per_ip, guard.ip,
                                fmt::format("tcp:{}", port));
        co_return;
    }
    protocol::link_open what{protocol::tunnel_kind::tcp, {}, port, guard.ip};
    const std::string peer = p->link;
    auto carried = co_await open(peer, std::move(what));
    if (!carried) {
        if (ctx_.visitor_log.allow(relay::clock::now()))
            spdlog::info("tcp {}: visitor {} dropped: {}{}", port, guard.ip, carried.error(),
                         ctx_.visitor_log.suppressed_note());
        co_return;
    }
    net::stream visitor_stream(std::move(visitor));
    co_await net::pump(visitor_stream, carried->stream, ctx_.counters.carried);
}

asio::awaitable<void> relay_link::accept() {
    co_await relay::accept_connections(acceptor_, "cluster link", [this](tcp::socket s) {
        ctx_.spawn(serve(std::move(s)));
    });
}

// The relay that holds a tunnel: a peer's connection, authenticated by its handshake, waits in
// the peer's pool for a visitor, then carries it to the tunnel's client.
asio::awaitable<void> relay_link::serve(tcp::socket socket) {
    const std::string from = net::peer_ip(socket);
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);  // a visitor's small writes leave at once
    net::tls_socket tls(std::move(socket), server_tls_);
    asio::steady_timer deadline(ctx_.io, handshake_timeout);
    auto shaken = co_await (tls.handshake(net::tls_socket::role::server) ||
                            deadline.async_wait(use_tuple));
    if (shaken.index() == 1 || std::get<0>(shaken)) {
        ++refused_;
        // A probe that closes at once (a port check, a load balancer) is not worth a warning.
        const bool probe = shaken.index() == 0 && std::get<0>(shaken) == asio::error::eof;
        if (!probe && log_.allow(relay::clock::now()))
            spdlog::warn("cluster link: refused a connection from {}: {} (every relay of a "
                         "cluster needs the same secret_file){}",
                         from,
                         shaken.index() == 1 ? std::string("the handshake did not finish in time")
                                             : "TLS handshake failed: " +
                                                   std::get<0>(shaken).message(),
                         log_.suppressed_note());
        co_return;
    }
    net::stream link(std::move(tls));
    auto first = co_await net::read_frame(link, idle_link_timeout);
    if (!first) co_return;  // an idle pooled connection closed, or its peer went away
    auto* open = std::get_if<protocol::link_open>(&*first);
    if (!open) {
        if (log_.allow(relay::clock::now()))
            spdlog::warn("cluster link: {} sent an unexpected frame{}", from,
                         log_.suppressed_note());
        co_return;
    }
    const std::string visitor = core::printable(open->visitor);
    std::optional<upstream::tunnel_connection> carried;
    std::string failure;
    if (open->kind == protocol::tunnel_kind::http) {
        auto c = co_await local_.open_local(open->name, visitor);
        if (c)
            carried.emplace(std::move(*c));
        else
            failure = c.error().message;
    } else {
        // tcp: the tunnel of the port; tls: the next client of the name (passthrough).
        std::shared_ptr<relay::tunnel> t;
        if (open->kind == protocol::tunnel_kind::tcp) {
            t = registry_.local_port(open->port);
        } else if (auto* group = registry_.local(protocol::tunnel_kind::tls, open->name)) {
            t = group->pick();
        }
        if (!t) {
            failure = "porthole: no tunnel of this relay serves it";
        } else if (t->active >= ctx_.cfg.max_connections_per_tunnel ||
                   !t->new_connections.take(relay::clock::now())) {
            failure = "porthole: this tunnel is at its connection limit";
        } else {
            auto slot = std::make_shared<relay::tunnel_slot>(t);
            auto s = co_await relay::open_tunnel_stream(ctx_, *t, visitor);
            if (s)
                carried.emplace(upstream::tunnel_connection{std::move(*s), t->host_header,
                                                            t->target, std::move(slot)});
            else
                failure = s.error();
        }
    }
    if (!carried) {
        const protocol::message no = protocol::stream_failed{failure};
        (void)co_await net::write_frame(link, no, frame_timeout);
        co_return;
    }
    const protocol::message ready = protocol::link_ready{carried->host_header, carried->target};
    if (co_await net::write_frame(link, ready, frame_timeout)) co_return;
    ++carried_in_;
    co_await net::pump(link, carried->stream, ctx_.counters.carried);
}

asio::awaitable<tl::expected<net::stream, std::string>> relay_link::connect(
    const std::string& peer) {
    auto at = config::parse_endpoint(peer);
    if (!at) co_return tl::unexpected(fmt::format("bad link address '{}'", peer));
    auto socket = co_await net::connect(*at, std::chrono::seconds(handshake_timeout));
    if (!socket) co_return tl::unexpected(socket.error());
    net::tls_socket tls(std::move(*socket), client_tls_);
    asio::steady_timer deadline(ctx_.io, handshake_timeout);
    auto shaken = co_await (tls.handshake(net::tls_socket::role::client) ||
                            deadline.async_wait(use_tuple));
    if (shaken.index() == 1) co_return tl::unexpected(std::string("link handshake timed out"));
    if (const auto ec = std::get<0>(shaken))
        co_return tl::unexpected("link handshake failed (is secret_file the same on both "
                                 "relays?): " + ec.message());
    co_return net::stream(std::move(tls));
}

// Keeps `pool_target` idle connections to a peer, opened ahead of the visitors who need them.
asio::awaitable<void> relay_link::refill(std::string peer) {
    auto& filling = filling_[peer];
    if (filling > 0) co_return;
    ++filling;
    while (idle_[peer].size() < pool_target && acceptor_.is_open()) {
        auto s = co_await connect(peer);
        if (!s) break;
        idle_[peer].push_back(std::move(*s));
    }
    --filling_[peer];
}

asio::awaitable<tl::expected<upstream::tunnel_connection, std::string>> relay_link::open(
    std::string peer, protocol::link_open what) {
    // A pooled connection the peer closed meanwhile fails at once, before anything of the
    // visitor's was sent: the next is tried, then a fresh one.
    for (unsigned attempt = 0; attempt < pool_target + 2; ++attempt) {
        std::optional<net::stream> conn;
        if (auto it = idle_.find(peer); it != idle_.end() && !it->second.empty()) {
            conn.emplace(std::move(it->second.back()));
            it->second.pop_back();
        } else {
            auto fresh = co_await connect(peer);
            if (!fresh) co_return tl::unexpected(fresh.error());
            conn.emplace(std::move(*fresh));
        }
        ctx_.spawn(refill(peer));
        const protocol::message request = what;
        if (co_await net::write_frame(*conn, request, frame_timeout)) continue;
        auto reply = co_await net::read_frame(*conn, ready_timeout);
        if (!reply) {
            if (reply.error() == "timed out")
                co_return tl::unexpected(std::string("the relay holding the tunnel did not answer "
                                                     "in time"));
            continue;
        }
        if (auto* ready = std::get_if<protocol::link_ready>(&*reply)) {
            ++carried_out_;
            co_return upstream::tunnel_connection{std::move(*conn), ready->host_header,
                                                  ready->target, nullptr};
        }
        if (auto* failed = std::get_if<protocol::stream_failed>(&*reply))
            co_return tl::unexpected(core::printable(failed->message));
        co_return tl::unexpected(std::string("the relay holding the tunnel answered with an "
                                             "unexpected frame"));
    }
    co_return tl::unexpected(std::string("no working link connection to the relay holding the "
                                         "tunnel"));
}

}  // namespace porthole::cluster
