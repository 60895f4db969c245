#pragma once
// What every part of the relay reads and counts: the config, the coarse clock the sweeper
// refreshes, the sockets whose deadlines it enforces, the visitor counts and the limits derived
// from the descriptor limit, and whether the relay is draining. One per relay, one thread.
#include "config/server_config.hpp"
#include "core/token_bucket.hpp"
#include "net/tls.hpp"
#include "net/network_list.hpp"
#include "net/proxy_protocol.hpp"
#include "observe/access_log.hpp"
#include "observe/label_slots.hpp"
#include "observe/recent_events.hpp"
#include "observe/relay_counters.hpp"
#include "cache/http_cache.hpp"
#include "policy/jwks_fetch.hpp"
#include "relay/shared_tunnel_steps.hpp"
#include "relay/handoff.hpp"
#include "relay/lease_table.hpp"
#include "relay/visitor_table.hpp"

#include "net/stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/intrusive/list.hpp>

#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

namespace porthole::acme {
class cert_issuer;
}

namespace porthole::relay {

struct relay_context;

// A socket whose reads and writes have a deadline, enforced by the relay's once-a-second sweeper
// rather than a timer per operation (that timer was a tenth of the relay's work per request).
// It links itself into the relay's list: no allocation, and it unlinks when destroyed.
struct watched_socket
    : boost::intrusive::list_base_hook<
          boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
    watched_socket(net::stream s, relay_context& ctx);
    watched_socket(const watched_socket&) = delete;
    watched_socket& operator=(const watched_socket&) = delete;

    net::stream conn;
    relay_context& ctx;
    clock::time_point deadline = clock::time_point::max();
    bool idle = false;  // waiting for the next request: closed at once on shutdown
    std::uint64_t bytes_in = 0;   // read and written so far, for the request tally
    std::uint64_t bytes_out = 0;
    unsigned answered = 0;  // the status of the relay's own answer on it, if it gave one
};
using watch_list =
    boost::intrusive::list<watched_socket, boost::intrusive::constant_time_size<false>>;

void log_exception(std::exception_ptr e);
std::uint32_t descriptor_limit();

struct relay_context {
    relay_context(boost::asio::io_context& io, const config::server_config& cfg,
                  net::https_certificates* https);

    // Runs a coroutine on the relay's thread; an escaping exception is logged, not fatal.
    template <class Awaitable>
    void spawn(Awaitable&& a) {
        boost::asio::co_spawn(io, std::forward<Awaitable>(a), log_exception);
    }

    // A use of tunnel `name`'s metrics label (an open tunnel, a cached route): its slot, whose
    // counters start at zero when the slot is new to the name.
    std::uint32_t hold_tunnel_label(const std::string& name);
    void release_tunnel_label(const std::string& name) { tunnel_labels.release(name); }

    // What is derived from the config, derived again after a reload changed it.
    void config_changed();

    // Listens on `at` for `role` ("http", "tcp tunnel"...; it names the listener in errors): on
    // the socket the relay this one replaced handed over for them, when there is one.
    // `shared`: one listener per event loop on `at` (SO_REUSEPORT).
    tl::expected<void, std::string> listen(boost::asio::ip::tcp::acceptor& a,
                                           const config::endpoint& at, std::string_view role,
                                           bool shared = false);

    // A visitor turned away before any request of its was read (a connection limit): counted,
    // and kept among the recent events.
    void refused_connection(observe::refusal why, std::string_view visitor,
                            std::string_view tunnel = {});

    // The public URLs of tunnels: https when the relay serves HTTPS.
    std::string http_url(const std::string& name) const;
    std::string tls_url(const std::string& name) const;

    boost::asio::io_context& io;
    const config::server_config& cfg;
    net::https_certificates* https;  // set when visitors may use HTTPS
    acme::cert_issuer* acme = nullptr;  // set when certificates come from an ACME CA
    net::network_list trusted_proxies;  // load balancers whose forwarded addresses are believed
    std::uint16_t http_port = 0;
    std::uint16_t https_port = 0;  // 0: no HTTPS listener (TLS tunnels are refused)
    bool draining = false;
    // Draining, and kept-alive connections close rather than wait for another request: at once
    // for a stop, a second into the drain after an upgrade.
    bool closing_idle = false;
    // Moves whenever an HTTP tunnel opens or closes: the HTTP edge's cached tunnel routes (and
    // the owner policies they hold) are looked up again.
    std::uint64_t tunnels_changed = 0;
    // A tunnel opened or closed, or a reload changed what applies to tunnels: tunnels_changed
    // moves and the other event loops are told (relay/tunnel_directory.hpp).
    void tunnels_did_change() {
        ++tunnels_changed;
        if (tell_loops) tell_loops();
    }
    std::function<void()> tell_loops;  // set on the first loop when there are others
    clock::time_point now = clock::now();  // refreshed by the sweeper: deadlines are coarse
    watch_list watched;  // read and write deadlines, checked each second

    std::size_t active_visitors = 0;  // on this event loop, for draining
    // Open visitor connections per address: one table for all the relay's event loops.
    std::shared_ptr<visitor_table> visitors = std::make_shared<visitor_table>();
    // The limits that protect descriptors, no larger than the descriptor limit allows.
    std::uint32_t descriptors;
    std::uint32_t max_connections_per_ip = 0;
    std::uint32_t gate_total = 0;
    std::uint32_t gate_per_ip = 0;
    core::log_limiter visitor_log{30};  // lines about visitors' bad requests and refusals
    // The key rings of jwt policies with a jwks_url: the first loop's, shared by every loop.
    std::shared_ptr<policy::jwks_sources> jwks = std::make_shared<policy::jwks_sources>();
    // The [tunnel_policy] steps the loops share, per tunnel name: the first loop's, a new one
    // at each reload.
    std::shared_ptr<shared_tunnel_steps> tunnel_steps = std::make_shared<shared_tunnel_steps>();
    // [tunnel_policy] cache: shared by every tunnel's route; kept over a reload that leaves its
    // settings as they were.
    std::shared_ptr<cache::http_cache> tunnel_cache;
    config::cache_config tunnel_cache_config;  // what tunnel_cache was made from
    // The tunnels' cache for `next` ([tunnel_policy] cache): the one in use when its settings
    // did not change, null for none. Fails when its disk tier cannot be opened.
    tl::expected<std::shared_ptr<cache::http_cache>, std::string> tunnel_cache_for(
        const std::optional<config::cache_config>& next) const;
    void use_tunnel_cache(std::shared_ptr<cache::http_cache> c,
                          const std::optional<config::cache_config>& made_from);
    // Metrics: what this loop counted, and the tunnel names that have a label of their own.
    observe::label_slots tunnel_labels;
    observe::relay_counters counters;
    observe::recent_events recent;  // the last refusals and relay-made errors
    std::unique_ptr<observe::access_log> access_log;  // null: off
    handoff::inherited inherited;  // listening sockets from the relay this one replaced
};

inline watched_socket::watched_socket(net::stream s, relay_context& ctx)
    : conn(std::move(s)), ctx(ctx) {
    ctx.watched.push_back(*this);
}

// Accepts on `a` until it closes, handing each socket (TCP_NODELAY set) to
// `serve`; `what` names the listener in warnings.
boost::asio::awaitable<void> accept_connections(
    boost::asio::ip::tcp::acceptor& a, std::string_view what,
    std::function<void(boost::asio::ip::tcp::socket)> serve);

// Who a visitor connection is from: the socket's two ends, or, where `accept_proxy` (the
// listener's accept_proxy_protocol), what the PROXY header a trusted load balancer put first
// says. nullopt, logged, when the connection must be dropped: a peer outside trusted_proxies, no
// header in time or a bad one.
boost::asio::awaitable<std::optional<net::proxy_header>> connection_origin(
    relay_context& ctx, boost::asio::ip::tcp::socket& socket, bool accept_proxy,
    std::string_view what);

// Counts a visitor connection for shutdown and for the per-address limit.
// A visitor connection a worker loop hands to the first one (relay/worker.hpp): the bytes it
// read, and who the visitor is.
struct handed_visitor {
    net::released_stream conn;
    std::string already;  // read, not yet answered: the first loop reads them first
    std::string ip;
    boost::asio::ip::tcp::endpoint source, destination;
    bool https = false;  // TLS the worker's HTTPS edge terminated (conn holds its state)
    // Handed over before its TLS handshake: when the ClientHello and the handshake must be done.
    std::optional<clock::time_point> deadline{};
};
using hand_over_fn = std::function<void(handed_visitor)>;

struct visit_guard {
    // `admitted`: another event loop let the connection in already (it was handed over).
    visit_guard(relay_context& ctx, std::string ip, bool admitted = false);
    // From its origin: `ip` is the origin's source address; `source` and `destination` are kept
    // for a PROXY header toward a backend.
    visit_guard(relay_context& ctx, const net::proxy_header& origin);
    // A connection another loop admitted and handed over.
    visit_guard(relay_context& ctx, const handed_visitor& v);
    ~visit_guard();
    visit_guard(const visit_guard&) = delete;
    visit_guard& operator=(const visit_guard&) = delete;
    relay_context& ctx;
    std::string ip;
    std::string counted_as;
    bool within_limit;
    boost::asio::ip::tcp::endpoint source, destination;
};

}  // namespace porthole::relay
