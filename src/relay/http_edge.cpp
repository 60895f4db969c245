#include "relay/http_edge.hpp"

#include "acme/cert_issuer.hpp"
#include "cache/http_cache.hpp"
#include "http/forward_exchange.hpp"
#include "http/host_route.hpp"
#include "http/shaped_endpoint.hpp"
#include "net/listener.hpp"
#include "net/network_list.hpp"
#include "net/frame_io.hpp"
#include "net/pump.hpp"
#include "net/socket_state.hpp"
#include "policy/compress.hpp"
#include "relay/policy_notice.hpp"
#include "relay/request_tally.hpp"
#include "relay/watched_socket.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace porthole::relay {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::string_view acme_challenge_path = "/.well-known/acme-challenge/";

// How long a visitor waits for the client of a leased name to come back.
constexpr auto client_return_wait = 3s;

bool idempotent(std::string_view method) {
    return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
           method == "DELETE" || method == "TRACE";
}

// The value of cookie `name` in a Cookie field; empty when absent.
std::string_view cookie_value(const http::message_head& head, std::string_view name) {
    for (const auto& f : head.fields) {
        if (!beast::iequals(f.name, "cookie")) continue;
        std::string_view rest = f.value;
        while (!rest.empty()) {
            const auto semi = rest.find(';');
            std::string_view pair = rest.substr(0, semi);
            rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
            while (pair.starts_with(' ')) pair.remove_prefix(1);
            if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=')
                return pair.substr(name.size() + 1);
        }
    }
    return {};
}
// A stored response as the answer to `request`: whole, a 304, a range, or 416. False when the
// connection is done.
asio::awaitable<bool> answer_from_cache(watched_socket& visitor,
                                        const cache::stored_response& stored,
                                        const http::framer<true>& request, std::uint64_t age,
                                        std::string cache_status, bool draining,
                                        std::chrono::seconds timeout) {
    const http::message_head& head = request.head();
    const cache::answer_shape shape = cache::shape_answer(stored, head);
    const bool goes_on = request.keep_alive() && !draining;
    const std::string answer_head =
        cache::answer_head(stored, shape, {age, cache_status, !goes_on, head.version});
    const bool bodiless = head.method == "HEAD" || shape.status == 304 || shape.status == 416;
    const std::string_view body =
        bodiless ? std::string_view()
                 : std::string_view(stored.body).substr(shape.first, shape.length);
    visitor.answered = shape.status;
    const bool sent = co_await write_all(visitor, answer_head, timeout, body);
    if (!sent || !goes_on) {
        visitor.conn.shutdown_send();
        co_return false;
    }
    co_return true;
}

bool unsafe(std::string_view method) {
    return method != "GET" && method != "HEAD" && method != "OPTIONS" && method != "TRACE";
}

// Ends a collapsed fetch however the exchange ends: requests waiting for it look again.
struct fetch_guard {
    cache::http_cache* cache = nullptr;
    std::string key;
    fetch_guard() = default;
    fetch_guard(const fetch_guard&) = delete;
    fetch_guard& operator=(const fetch_guard&) = delete;
    ~fetch_guard() {
        if (cache) cache->end_fetch(key);
    }
    // Right after a begin_fetch that returned true: whatever way the request ends, it ends it.
    void take(cache::http_cache* c, std::string k) {
        cache = c;
        key = std::move(k);
    }
};

}  // namespace

// The upstream connection a visitor connection holds: for one exchange (a backend's goes back
// to its pool after it), or between requests (a tunnel's data connection serves this visitor
// only).
struct http_edge::upstream_link {
    upstream_link(upstream::connection c, std::shared_ptr<upstream::pool> p, relay_context& ctx)
        : stream(std::move(c.stream), ctx), member(c.member), tunnel(c.tunnel),
          dedicated(c.dedicated),
          host_header(std::move(c.host_header)), target(std::move(c.target)),
          hold(std::move(c.hold)), pool(std::move(p)) {}
    // Back to the pool, as a connection: its kept-alive stream may serve another visitor.
    upstream::connection take() {
        return upstream::connection{std::move(stream.conn), member,          tunnel,
                                    dedicated,                 std::move(host_header),
                                    std::move(target),         std::move(hold)};
    }
    watched_socket stream;
    std::size_t member;
    bool tunnel;
    bool dedicated;  // serves this visitor only (a tunnel's, or one a PROXY header began)
    std::string host_header;
    std::string target;
    std::shared_ptr<void> hold;
    std::shared_ptr<upstream::pool> pool;
    net::io_buffer in;  // bytes read from upstream but not yet forwarded
};

using http::response_state;

// The route a kept-alive connection used last, while its Host stays the same.
struct http_edge::cached_route {
    bool valid = false;
    std::uint64_t tunnels_changed = 0;  // relay_context::tunnels_changed when it was looked up
    std::string host;
    std::shared_ptr<route::route> tunnel;  // a tunnel name's route
    const route::site* site = nullptr;
    // The table `site` is in: a reload may replace the relay's while a request still uses it.
    std::shared_ptr<const route::route_table> table;
};

http_edge::http_edge(relay_context& ctx, tunnel_registry& registry,
                     upstream::tunnel_source& tunnels,
                     const std::shared_ptr<route::route_table>& sites)
    : ctx_(ctx), registry_(registry), tunnels_(tunnels), sites_(sites), acceptor_(ctx.io) {}

tl::expected<void, std::string> http_edge::listen(bool shared) {
    auto bound = ctx_.listen(acceptor_, ctx_.cfg.http_addr, "http", shared);
    if (bound) ctx_.http_port = acceptor_.local_endpoint().port();
    return bound;
}

void http_edge::start() {
    ctx_.spawn(accept());
    spare_.start(ctx_, "http", [this](tcp::socket s) { ctx_.spawn(serve_plain(std::move(s))); });
}

void http_edge::stop_accepting() {
    error_code ec;
    acceptor_.close(ec);
    spare_.close();
}

asio::awaitable<void> http_edge::accept() {
    co_await accept_connections(acceptor_, "http",
                                [this](tcp::socket s) { ctx_.spawn(serve_plain(std::move(s))); });
}

asio::awaitable<void> http_edge::serve_plain(tcp::socket socket) {
    const auto origin =
        co_await connection_origin(ctx_, socket, ctx_.cfg.accept_proxy_protocol, "http");
    if (!origin) co_return;
    const visit_guard guard(ctx_, *origin);
    co_await serve(net::stream(std::move(socket)), guard, false);
}

void http_edge::adopt(handed_visitor v) { ctx_.spawn(serve_handed(std::move(v))); }

asio::awaitable<void> http_edge::serve_handed(handed_visitor v) {
    const visit_guard guard(ctx_, v);
    auto stream = net::stream::adopt(std::move(v.conn), ctx_.io.get_executor());
    co_await serve(std::move(stream), guard, v.https, std::move(v.already));
}

bool http_edge::serves_here(const http::message_head& head, std::string_view host,
                            const cached_route& cache) const {
    if (ctx_.cfg.acme && head.target.starts_with(acme_challenge_path)) return false;
    // A kept-alive connection's next request for the same host: the site it found already.
    const bool known = cache.valid && cache.host == host &&
                       cache.tunnels_changed == ctx_.tunnels_changed;
    const route::site* site = known ? cache.site : sites_->find_site(host);
    if (!site) return (known && cache.tunnel) || carries_tunnel(host);
    const route::route* r = route::route_for(*site, head.target);
    return r && r->any_loop;
}

bool http_edge::carries_tunnel(std::string_view host) const {
    if (!directory_) return false;
    auto name = http::tunnel_name_for_host(host, ctx_.cfg.domain);
    if (!name) name = http::bare_host(host);  // a custom domain
    return name && (*directory_)->carries(*name);
}

asio::awaitable<bool> http_edge::read_whole_body(watched_socket& visitor,
                                                 http::framer<true>& request, net::io_buffer& in,
                                                 std::size_t& parsed, std::uint64_t limit,
                                                 http::header_edits& edits,
                                                 std::string_view peer) {
    const http::message_head& head = request.head();
    if (!request.is_done() && head.version == 11) {
        // The visitor waits for a go-ahead the upstream cannot give yet: the relay gives it.
        const std::string* expect = head.find("expect");
        if (expect && beast::iequals(*expect, "100-continue")) {
            const bool sent = co_await write_all(visitor, "HTTP/1.1 100 Continue\r\n\r\n",
                                                 ctx_.cfg.idle_timeout);
            if (!sent) co_return false;
            edits.remove.emplace_back("expect");
        }
    }
    // Chunk extensions and trailers are framing the decoded size does not count: bounded too.
    const std::uint64_t raw_limit = 2 * limit + 64 * 1024;
    bool too_large = request.content_length().value_or(0) > limit || !request.cap_body(limit);
    request.eager(true);
    error_code ec;
    while (!too_large && !request.is_done()) {
        if (in.size() > parsed) {
            const std::string_view rest = view(in).substr(parsed);
            const std::size_t used = request.put(asio::buffer(rest.data(), rest.size()), ec);
            too_large = ec == beast::http::error::body_limit;
            if (too_large) break;
            if (ec && ec != beast::http::error::need_more) {
                const auto bad = http::rejection_for(request, ec);
                if (ctx_.visitor_log.allow(clock::now()))
                    spdlog::info("http: bad request body from {}: {}{}", peer, bad.reason,
                                 ctx_.visitor_log.suppressed_note());
                co_await reply_and_close(visitor, bad.status, http::reason_phrase(bad.status),
                                         "malformed request body: " + bad.reason);
                co_return false;
            }
            parsed += used;
            if (used > 0) continue;
        }
        too_large = in.size() > raw_limit;
        if (too_large) break;
        const bool got = co_await read_more(visitor, in, ctx_.cfg.idle_timeout);
        if (!got) {
            co_await reply_and_close(visitor, 408, "Request Timeout",
                                     "the request body did not arrive in time");
            co_return false;
        }
    }
    request.capture_body(nullptr);
    if (too_large) {
        std::string text =
            fmt::format("porthole: the request body is over this route's limit of {} bytes", limit);
        co_await reply_and_close(visitor, 413, "Content Too Large", std::move(text));
        co_return false;
    }
    co_return true;
}

std::shared_ptr<route::route> http_edge::tunnel_route(const std::string& name) {
    auto& entry = tunnel_routes_[name];
    auto& r = entry.route;
    const tunnel_group* serving = registry_.local(protocol::tunnel_kind::http, name);
    const bool here = serving && !serving->members.empty();
    // Served by another relay of a cluster: its owner's policies as that relay published them.
    const remote_tunnel* remote = here ? nullptr : registry_.remote(name);
    std::shared_ptr<const policy::chain> owner =
        here ? serving->members.front()->policies : remote ? remote->policies : nullptr;
    if (directory_) {
        // A worker builds the owner's steps itself from the directory's copy of them, and takes
        // the first loop's where their state is shared (a rate limit's counts, under its lock).
        const auto& configs = (*directory_)->owner_policies(name);
        const auto& first = (*directory_)->owner_steps(name);
        if (configs == entry.owner_configs && first == entry.first_steps) {
            owner = entry.owner_policies;
        } else if (configs) {
            auto steps = policy::build_chain(*configs);
            if (first) policy::share_steps(steps, *first);  // the directory checked they match
            owner = std::make_shared<const policy::chain>(std::move(steps));
        } else {
            owner = nullptr;
        }
        entry.owner_configs = configs;
        entry.first_steps = first;
    }
    if (r && owner != entry.owner_policies) {
        auto changed = std::make_shared<route::route>(*r);
        changed->policies = entry.relay_policies;
        if (owner) changed->policies.insert(changed->policies.end(), owner->begin(), owner->end());
        r = std::move(changed);
    }
    entry.owner_policies = std::move(owner);
    if (!r) {
        config::upstream_settings settings;
        settings.members.push_back(
            config::upstream_member{config::upstream_member::scheme::tunnel, name, 0, 1,
                                    "tunnel:" + name});
        settings.max_tries = 3;  // a GET whose client dropped it goes to another (or anew)
        settings.max_fails = 0;  // a tunnel's own answers, 5xx too, pass through as they are
        r = std::make_shared<route::route>();
        // A worker counts under the first loop's slot for the name, which holds the label.
        r->metric_slot = directory_ ? (*directory_)->slot(name) : ctx_.hold_tunnel_label(name);
        entry.relay_policies = policy::build_chain(ctx_.cfg.tunnel_policies, ctx_.jwks.get());
        ctx_.tunnel_steps->share(name, entry.relay_policies);  // the relay's counts and budgets
        r->policies = entry.relay_policies;
        if (entry.owner_policies)
            r->policies.insert(r->policies.end(), entry.owner_policies->begin(),
                               entry.owner_policies->end());
        r->pool = std::make_shared<upstream::pool>("tunnel " + name, std::move(settings),
                                                   &tunnels_, std::nullopt);
    }
    // The tunnels' cache, unless it is opt-in and this owner did not ask (--cache). A tunnel
    // another relay of a cluster holds is cached here too, for this relay's visitors, under the
    // digest of its holder that relay published.
    const bool owner_cache =
        here ? serving->members.front()->owner_cache : remote && remote->owner_cache;
    const bool holder_known = here || (remote && !remote->holder.empty());
    const auto& wanted = ctx_.tunnel_cache && holder_known &&
                                 (owner_cache || !ctx_.tunnel_cache_config.opt_in)
                             ? ctx_.tunnel_cache
                             : nullptr;
    if (r->cache != wanted || r->serve_offline != owner_cache) {
        auto changed = std::make_shared<route::route>(*r);
        changed->cache = wanted;
        changed->serve_offline = owner_cache;
        r = std::move(changed);
    }
    return r;
}

std::string http_edge::cache_holder(const std::string& name) const {
    std::string holder = registry_.name_holder(name, clock::now());
    if (!holder.empty()) return holder;
    const remote_tunnel* remote = registry_.remote(name);
    return remote && !remote->holder.empty() ? "cluster:" + remote->holder : std::string();
}

void http_edge::forget_tunnel_routes() {
    if (!directory_)
        for (const auto& [name, entry] : tunnel_routes_) ctx_.release_tunnel_label(name);
    tunnel_routes_.clear();
}

void http_edge::forget_idle_tunnel_routes() {
    std::erase_if(tunnel_routes_, [&](const auto& kv) {
        const bool idle = kv.second.route.use_count() == 1 &&
                          !registry_.local(protocol::tunnel_kind::http, kv.first);
        if (idle) ctx_.release_tunnel_label(kv.first);
        return idle;
    });
}

asio::awaitable<void> http_edge::serve(net::stream stream, const visit_guard& guard, bool https,
                                       std::string already) {
    const std::string& from = guard.ip;
    // A load balancer of trusted_proxies: the visitor is who it says, in X-Forwarded-For.
    const bool behind_proxy = ctx_.trusted_proxies.contains(from);
    watched_socket visitor(std::move(stream), ctx_);
    if (!guard.within_limit) {
        ctx_.refused_connection(observe::refusal::connections_per_ip, guard.ip);
        co_await reply_and_close(visitor, 429, "Too Many Requests",
                                 "porthole: too many connections from your address");
        co_return;
    }
    net::io_buffer in;
    if (!already.empty()) {
        in.commit(asio::buffer_copy(in.prepare(already.size()), asio::buffer(already)));
        already = std::string();
    }
    std::optional<upstream_link> up;
    cached_route cache;
    for (bool first = true;; first = false) {
        // A kept-alive connection may idle between requests; once bytes arrive, the head has
        // header_timeout to complete (slowloris). A draining relay lets it go instead.
        if (in.size() == 0 && ctx_.closing_idle) break;
        if (in.size() == 0 && https) {
            // OpenSSL may hold decrypted bytes already, so wait by reading.
            if (!co_await read_more(visitor, in,
                                    first ? ctx_.cfg.header_timeout : ctx_.cfg.idle_timeout))
                break;
        } else if (in.size() == 0) {
            // Idle connections hold no buffer and no timer: the sweeper enforces the deadline.
            in.shrink_to_fit();
            if (up) up->in.shrink_to_fit();
            visitor.deadline = ctx_.now + (first ? ctx_.cfg.header_timeout : ctx_.cfg.idle_timeout);
            visitor.idle = true;
            // Deferred: the wait allocates its operation only, not a coroutine frame as well.
            auto [wait_ec] = co_await visitor.conn.socket().async_wait(
                tcp::socket::wait_read, asio::as_tuple(asio::deferred));
            visitor.idle = false;
            // A request that arrives while the relay drains is answered, with Connection: close.
            if (wait_ec) break;
            const bool got = co_await read_more(visitor, in, ctx_.cfg.header_timeout, true);
            if (!got || in.size() == 0) break;
        }
        if (!co_await exchange(visitor, in, up, cache, guard, https, behind_proxy)) break;
    }
    // A connection still held here is a dedicated one, done with: it closes.
}

asio::awaitable<bool> http_edge::answer_offline(watched_socket& visitor,
                                                const http::framer<true>& request, bool https,
                                                std::string_view host, const std::string& holder,
                                                request_tally& tally) {
    const http::message_head& head = request.head();
    cache::http_cache& c = *ctx_.tunnel_cache;
    if (head.method != "GET" && head.method != "HEAD") co_return false;
    const std::string key =
        cache::http_cache::key_of(https, host, http::origin_form(head.target), c.scope_of(holder));
    const auto found = c.lookup(key, head, cache::epoch_now());
    if (!found.stored) co_return false;
    const cache::request_facts asked = cache::facts_of(head);
    const bool fresh = found.verdict.verdict == cache::use::fresh;
    const std::uint64_t stale_for =
        found.verdict.ttl < 0 ? static_cast<std::uint64_t>(-found.verdict.ttl) : 0;
    if (!fresh &&
        !cache::usable_on_error(found.stored->facts, asked, stale_for,
                                c.settings().stale_when_offline || found.stored->serve_offline))
        co_return false;
    ++(fresh ? c.counts().hits : c.counts().stale);
    std::string status = fresh ? fmt::format("porthole; hit; ttl={}", found.verdict.ttl)
                               : std::string("porthole; hit; detail=tunnel-offline");
    tally.responded(cache::shape_answer(*found.stored, head).status);
    co_await answer_from_cache(visitor, *found.stored, request, found.verdict.age,
                               std::move(status), ctx_.draining, ctx_.cfg.idle_timeout);
    co_return true;
}

asio::awaitable<void> http_edge::refresh_behind(std::shared_ptr<upstream::pool> pool,
                                                std::shared_ptr<cache::http_cache> shared_cache,
                                                refresh_request request) {
    fetch_guard fetch;
    fetch.cache = shared_cache.get();
    fetch.key = request.key;
    upstream::tried_list tried;
    const upstream::request_facts facts{request.visitor_ip, {}, nullptr, nullptr};
    auto c = co_await pool->connect(facts, request.visitor_ip, tried);
    if (!c) co_return;  // the next request after the window validates
    upstream_link up(std::move(*c), pool, ctx_);
    request.head.method = "GET";  // a HEAD's refresh stores the whole response
    request.edits.remove.emplace_back("if-none-match");
    request.edits.remove.emplace_back("if-modified-since");
    request.edits.remove.emplace_back("range");
    request.edits.remove.emplace_back("if-range");
    if (const std::string* etag = request.stale->find("etag"))
        request.edits.add.push_back({"If-None-Match", *etag});
    if (const std::string* modified = request.stale->find("last-modified"))
        request.edits.add.push_back({"If-Modified-Since", *modified});
    const std::string forwarded = http::forward_request_head(
        request.head, {request.visitor_ip, request.https ? "https" : "http", up.host_header,
                       up.target, false, request.strip, request.behind_proxy, &request.edits,
                       request.target_override});
    const bool sent = co_await write_all(up.stream, forwarded, ctx_.cfg.idle_timeout);
    if (!sent) {
        pool->finish(up.take(), upstream::outcome::failed, false, "the request could not be sent");
        co_return;
    }
    cache::response_recorder recorder(*shared_cache, request.key, request.head, request.stale,
                                      false, "stale");
    recorder.serve_offline(request.stale->serve_offline);
    http::discard_endpoint nowhere;
    watched_endpoint to_upstream(up.stream, ctx_.cfg.idle_timeout);
    http::response_options options{false, {}, nullptr, std::nullopt, &recorder};
    if (pool->settings().upstream_timeout)
        options.first_byte_timeout = *pool->settings().upstream_timeout;
    const auto outcome = co_await http::forward_response(to_upstream, up.in, nowhere, options);
    recorder.finish(outcome.state == response_state::complete);
    const auto verdict = outcome.state == response_state::none ? upstream::outcome::failed
                         : outcome.status >= 500              ? upstream::outcome::server_error
                                                              : upstream::outcome::ok;
    pool->finish(up.take(), verdict,
                 outcome.reusable && outcome.state == response_state::complete);
}

asio::awaitable<void> http_edge::wait_for_client(const std::string& name) {
    asio::steady_timer t(ctx_.io);
    const auto until = clock::now() + client_return_wait;
    while (!tunnels_.serving(name) && registry_.name_held(name, clock::now()) &&
           clock::now() < until && !ctx_.draining) {
        t.expires_after(20ms);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        co_await registry_.learn(name);  // its client may come back through another relay
    }
}

// One request and its response on a visitor connection; false when the connection is done.
// A frame of its own, so an idle keep-alive connection keeps none of this state.
asio::awaitable<bool> http_edge::exchange(watched_socket& visitor, net::io_buffer& in,
                                          std::optional<upstream_link>& up, cached_route& cache,
                                          const visit_guard& guard, bool https,
                                          bool behind_proxy) {
    const std::string& peer = guard.ip;
    const auto& cfg = ctx_.cfg;
    http::framer<true> request(cfg.max_header_bytes);
    std::string behind;  // the visitor's address, behind a trusted proxy
    request_tally tally(ctx_, visitor, in, https);
    tally.record.visitor = peer;  // until the head says who is behind a trusted proxy
    std::optional<http::rejection> raw_head_problem;
    const auto head_deadline = clock::now() + cfg.header_timeout;
    error_code ec;
    std::size_t head_size = 0;  // on a worker loop: the head stays in `in` until it is routed
    for (;;) {
        const std::size_t used = request.put(in.data(), ec);
        if (request.is_header_done())
            raw_head_problem = http::check_raw_head(view(in).substr(0, used));
        if (hand_over_ && request.is_header_done()) head_size = used;
        else in.consume(used);
        if (request.is_header_done() || (ec && ec != beast::http::error::need_more)) break;
        const auto left =
            std::chrono::duration_cast<std::chrono::seconds>(head_deadline - clock::now());
        bool got = false;
        if (left.count() > 0)
            got = co_await read_more(visitor, in, std::max(left, std::chrono::seconds(1)));
        if (!got) {
            if (in.size() != 0) {
                tally.refused(observe::refusal::header_timeout);
                co_await reply_and_close(visitor, 408, "Request Timeout",
                                         "the request head did not arrive in time");
            }
            co_return false;
        }
    }
    if (!request.is_header_done()) {
        const auto r = http::rejection_for(request, ec);
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("http: bad request from {}: {}{}", peer, r.reason,
                         ctx_.visitor_log.suppressed_note());
        tally.refused(r.status == 431 ? observe::refusal::header_too_large
                                      : observe::refusal::bad_request);
        co_await reply_and_close(visitor, r.status, http::reason_phrase(r.status), r.reason);
        co_return false;
    }
    if (auto r = raw_head_problem ? raw_head_problem : http::check_request(request)) {
        if (ctx_.visitor_log.allow(clock::now()))
            spdlog::info("http: bad request from {}: {}{}", peer, r->reason,
                         ctx_.visitor_log.suppressed_note());
        tally.head(request.head());
        tally.refused(observe::refusal::bad_request);
        co_await reply_and_close(visitor, r->status, http::reason_phrase(r->status), r->reason);
        co_return false;
    }
    const http::message_head& head = request.head();
    const std::string* host = head.find("host");
    if (hand_over_) {
        // A worker loop serves the routes any loop may; the first loop serves the rest.
        if (!serves_here(head, host ? std::string_view(*host) : std::string_view(), cache)) {
            const std::string_view bytes = view(in);
            handed_visitor v{visitor.conn.release(), std::string(bytes), guard.ip, guard.source,
                             guard.destination, https};
            ++ctx_.counters.visitors_handed;
            hand_over_(std::move(v));
            co_return false;
        }
        in.consume(head_size);
    }
    tally.head(head);
    // Behind a trusted proxy the visitor is the first address of X-Forwarded-For, from the
    // right, that is not a trusted proxy, and its X-Forwarded-Proto says what the visitor used.
    bool visitor_https = https;
    if (behind_proxy) {
        std::string chain;
        for (const auto& f : head.fields)
            if (beast::iequals(f.name, "x-forwarded-for"))
                chain.append(chain.empty() ? "" : ",").append(f.value);
        behind = net::client_behind(ctx_.trusted_proxies, chain, peer);
        if (const std::string* proto = head.find("x-forwarded-proto"))
            visitor_https = beast::iequals(*proto, "https");
    }
    const std::string& from = behind_proxy ? behind : peer;
    tally.record.visitor = from;
    // An ACME server validating an HTTP-01 challenge of an order under way: before the HTTPS
    // redirect (CAs follow it, but the answer is the same) and before any route.
    if (ctx_.acme && head.method == "GET" && head.target.starts_with(acme_challenge_path)) {
        const std::string_view token =
            std::string_view(head.target).substr(acme_challenge_path.size());
        if (const std::string* answer = ctx_.acme->answers().http_answer(token)) {
            const std::string response =
                http::relay_response(200, "OK", *answer, "text/plain");
            visitor.answered = 200;
            co_await write_all(visitor, response, 10s);
            visitor.conn.shutdown_send();
            co_return false;
        }
    }
    if (cfg.redirect_https && !visitor_https && host) {
        const auto colon = host->rfind(':');
        const std::string bare =
            colon == std::string::npos || host->back() == ']' ? *host : host->substr(0, colon);
        const std::string_view path = http::origin_form(head.target);
        const std::string_view slash = path.starts_with('/') ? "" : "/";
        const std::string location =
            ctx_.https_port == 443
                ? fmt::format("https://{}{}{}", bare, slash, path)
                : fmt::format("https://{}:{}{}{}", bare, ctx_.https_port, slash, path);
        const std::string response = http::redirect_response(location);
        visitor.answered = 308;
        co_await write_all(visitor, response, 10s);
        visitor.conn.shutdown_send();
        co_return false;
    }

    // The route: a configured site first, then a tunnel name under the relay's domain.
    // The bodies the operator gave for the relay's own answers: the site's, else the tunnels'.
    const auto pages_of = [&] {
        return cache.site ? &cache.site->pages : &cfg.tunnel_error_pages;
    };
    const std::string_view host_text = host ? std::string_view(*host) : std::string_view();
    if (!cache.valid || cache.host != host_text || cache.tunnels_changed != ctx_.tunnels_changed) {
        cache = cached_route{true, ctx_.tunnels_changed, std::string(host_text), nullptr,
                             sites_->find_site(host_text), sites_};
        if (!cache.site) {
            auto name = host ? http::tunnel_name_for_host(*host, cfg.domain) : std::nullopt;
            if (!name && host) {
                // A custom domain some client serves (or holds by a lease) is its tunnel's name.
                auto whole = http::bare_host(*host);
                if (whole && !tunnels_.serving(*whole)) co_await registry_.learn(*whole);
                if (whole && (tunnels_.serving(*whole) || registry_.name_held(*whole, clock::now())))
                    name = std::move(whole);
            }
            if (!name) {
                std::string message = fmt::format(
                    "porthole: this relay serves tunnels at NAME.{}; '{}' is not one", cfg.domain,
                    host_text);
                cache = cached_route{};
                tally.refused(observe::refusal::unknown_host);
                co_await reply_and_close(visitor, 404, "Not Found", std::move(message), pages_of());
                co_return false;
            }
            // Not served here: another relay of a cluster may serve it.
            if (!tunnels_.serving(*name)) co_await registry_.learn(*name);
            // A tunnel whose client is away: what its cache holds answers, when it may.
            if (!tunnels_.serving(*name) && ctx_.tunnel_cache && request.is_done()) {
                const std::string holder = cache_holder(*name);
                if (!holder.empty()) {
                    const bool answered = co_await answer_offline(visitor, request, visitor_https,
                                                                  host_text, holder, tally);
                    if (answered) {
                        const bool goes_on = request.keep_alive() && !ctx_.draining;
                        cache = cached_route{};
                        co_return goes_on;
                    }
                }
            }
            if (!tunnels_.serving(*name) && registry_.name_held(*name, clock::now()))
                co_await wait_for_client(*name);
            if (!tunnels_.serving(*name)) {
                const bool reconnecting = registry_.name_held(*name, clock::now());
                cache = cached_route{};
                tally.refused(observe::refusal::no_tunnel);
                if (reconnecting)
                    co_await reply_and_close(visitor, 502, "Bad Gateway",
                                             fmt::format("porthole: the client of tunnel '{}' is "
                                                         "reconnecting; try again shortly",
                                                         *name), pages_of());
                else
                    co_await reply_and_close(
                        visitor, 404, "Not Found",
                        fmt::format("porthole: no tunnel named '{}' is connected to this relay",
                                    *name), pages_of());
                co_return false;
            }
            cache.tunnel = tunnel_route(*name);
        }
    }
    const route::route* r = cache.tunnel.get();
    if (!r) {
        tally.site(*cache.site);
        r = route::route_for(*cache.site, head.target);
        if (!r) {
            tally.refused(observe::refusal::no_route);
            co_await reply_and_close(visitor, 404, "Not Found",
                                     "porthole: no route of this site serves this path",
                                     pages_of());
            co_return false;
        }
    }
    if (cache.tunnel)
        tally.routed(*r, {}, r->pool->member(0).host);
    else
        tally.routed(*r, cache.site->hosts.front(), {});
    // A route whose policies judge the body keeps it, decoded, from its first byte parsed.
    const std::uint64_t body_wanted = r->policies.empty() ? 0 : policy::body_needed(r->policies);
    http::body_capture held_body;
    if (body_wanted != 0 && !request.is_done()) {
        held_body.limit = static_cast<std::size_t>(body_wanted);
        request.capture_body(&held_body);
    }
    // Body bytes that came with the head are checked before anything reaches the upstream, so
    // a malformed chunked body in the first packet never gets to it.
    std::size_t parsed_body = 0;
    if (!request.is_done() && in.size() != 0) {
        request.eager(true);
        parsed_body = request.put(in.data(), ec);
        if (ec && ec != beast::http::error::need_more) {
            const auto bad = http::rejection_for(request, ec);
            if (ctx_.visitor_log.allow(clock::now()))
                spdlog::info("http: bad request body from {}: {}{}", peer, bad.reason,
                             ctx_.visitor_log.suppressed_note());
            tally.refused(bad.status == 413 ? observe::refusal::body_too_large
                                            : observe::refusal::bad_request);
            co_await reply_and_close(visitor, bad.status, http::reason_phrase(bad.status),
                                     "malformed request body: " + bad.reason, pages_of());
            co_return false;
        }
    }
    // The head is parsed into fields of its own: a visitor that waits for an upstream (a burst
    // waiting for data connections) holds no read buffer meanwhile.
    if (in.size() == 0) in.shrink_to_fit();

    std::size_t strip = 0;
    if (r->strip_prefix && !r->path.empty()) strip = r->path.size();
    // The route's policy steps: each may answer, or edit the heads on the way.
    std::optional<policy::request_context> policy_edits;
    if (!r->policies.empty()) {
        const std::string_view tunnel =
            cache.tunnel ? std::string_view(r->pool->member(0).host) : std::string_view();
        // The visitor's address, parsed once for every step: the connection's own when no
        // trusted proxy names another.
        boost::asio::ip::address address = guard.source.address();
        if (behind_proxy || address.is_unspecified()) {
            error_code bad;
            address = boost::asio::ip::make_address(from, bad);
        }
        policy_edits.emplace(policy::request_context{head, host_text, from, address, visitor_https,
                                                     ctx_.https_port, tunnel, {}, {}, {},
                                                     UINT64_MAX, strip, {}});
        bool body_held = false;
        for (const auto& p : r->policies) {
            auto answer = p->on_request(*policy_edits);
            const std::uint64_t needed = answer ? 0 : p->body_needed();
            if (needed != 0 && !body_held) {
                // The whole body, read before anything goes upstream: then it is forwarded
                // exactly as it arrived, and what the upstream parses is what was judged.
                const std::uint64_t limit = std::min(needed, policy_edits->body_limit);
                body_held = co_await read_whole_body(visitor, request, in, parsed_body, limit,
                                                     policy_edits->request, peer);
                if (!body_held) co_return false;
            }
            if (needed != 0 && held_body.size > needed)
                answer = policy::answer{413, {},
                                        fmt::format("porthole: the request body is over this "
                                                    "route's limit of {} bytes\n",
                                                    needed)};
            else if (needed != 0)
                answer = p->on_body(*policy_edits, held_body.data);
            if (!answer) continue;
            // A request without a body leaves the connection ready for the next one.
            const bool goes_on = request.is_done() && request.keep_alive() && !ctx_.draining;
            if (const auto page = pages_of()->find(answer->status); page != pages_of()->end()) {
                answer->body = page->second.body;
                answer->content_type = page->second.content_type;
            }
            const std::string response =
                policy::response_of(*answer, head.method == "HEAD", !goes_on);
            tally.record.policy = p->type();
            visitor.answered = answer->status;
            if (answer->status >= 400)
                if (const auto why = observe::policy_refusal(p->type())) tally.refused(*why);
            if (cache.tunnel && notices_)
                notices_(std::string(tunnel),
                         policy_notice(0, p->type(), answer->status, from, head, response));
            else if (cache.tunnel)
                notify_policy_answer(registry_, std::string(tunnel), p->type(), answer->status,
                                     from, head, response);
            const bool sent = co_await write_all(visitor, response, 10s);
            if (!goes_on || !sent) {
                visitor.conn.shutdown_send();
                co_return false;
            }
            in.consume(parsed_body);
            co_return true;
        }
        if (!request.cap_body(policy_edits->body_limit)) {  // chunks that came with the head
            tally.refused(observe::refusal::body_too_large);
            co_await reply_and_close(visitor, 413, "Content Too Large",
                                     "porthole: the request body is over this site's limit",
                                     pages_of());
            co_return false;
        }
    }
    const http::header_edits* request_edits = policy_edits ? &policy_edits->request : nullptr;
    // bandwidth: the visitor's bytes pass the route's budgets both ways.
    const net::shaping* shaping =
        policy_edits && !policy_edits->shaping.empty() ? &policy_edits->shaping : nullptr;
    const http::header_edits* response_edits = policy_edits ? &policy_edits->response : nullptr;
    // compress: the response may be re-encoded; every other route forwards it as framed.
    std::optional<policy::response_compressor> compressor;
    if (policy_edits && policy_edits->compress)
        compressor.emplace(*policy_edits->compress, head, request.upgrade());
    // cache: a stored response may answer here; a GET that misses is recorded on its way to the
    // visitor, and concurrent misses for one key wait for the first one's response.
    // A tunnel's responses are its holder's (the client, or its group): none known, none kept.
    const std::string holder = cache.tunnel && r->cache ? cache_holder(r->pool->member(0).host)
                                                        : std::string();
    cache::http_cache* const shared_cache =
        cache.tunnel && holder.empty() ? nullptr : r->cache.get();
    std::optional<cache::response_recorder> recorder;
    fetch_guard fetch;
    http::header_edits validation;  // the route's request edits, and the conditional fields
    cache::entry stale_stand_in;    // served instead of an upstream failure
    bool stale_on_5xx = false;      // and instead of a 5xx
    if (shared_cache && !request.upgrade()) {
        const bool reads = (head.method == "GET" || head.method == "HEAD") && request.is_done() &&
                           !request.chunked() && request.content_length().value_or(0) == 0;
        const std::string scope = cache.tunnel ? shared_cache->scope_of(holder) : std::string();
        const std::string key = cache::http_cache::key_of(visitor_https, host_text,
                                                          http::origin_form(head.target), scope);
        if (reads) {
            auto found = shared_cache->lookup(key, head, cache::epoch_now());
            // A GET that misses fetches for every request of its key meanwhile, on any loop, or
            // waits for the one that does; a HEAD only waits.
            const bool get = head.method == "GET";
            const bool waits = !found.stored && (get ? !shared_cache->begin_fetch(key)
                                                     : shared_cache->fetching(key));
            if (!found.stored && get && !waits) fetch.take(shared_cache, key);
            if (waits) {
                ++shared_cache->counts().collapsed;
                co_await shared_cache->wait_for(key, 30s);
                found = shared_cache->lookup(key, head, cache::epoch_now());
                if (!found.stored && get && shared_cache->begin_fetch(key))
                    fetch.take(shared_cache, key);
            }
            if (found.stored && found.verdict.verdict == cache::use::stale_revalidate &&
                shared_cache->begin_fetch(key)) {
                refresh_request again{head,
                                      from,
                                      visitor_https,
                                      r->strip_prefix && !r->path.empty() ? r->path.size() : 0,
                                      behind_proxy,
                                      request_edits ? *request_edits : http::header_edits{},
                                      policy_edits ? policy_edits->target : std::string(),
                                      key,
                                      found.stored};
                ctx_.spawn(refresh_behind(r->pool, r->cache, std::move(again)));
            }
            if (found.stored && found.verdict.verdict != cache::use::validate) {
                const bool fresh = found.verdict.verdict == cache::use::fresh;
                ++(fresh ? shared_cache->counts().hits : shared_cache->counts().stale);
                const std::string status =
                    fresh ? fmt::format("porthole; hit; ttl={}", found.verdict.ttl)
                          : fmt::format("porthole; hit; ttl={}; detail=stale", found.verdict.ttl);
                tally.responded(cache::shape_answer(*found.stored, head).status);
                co_return co_await answer_from_cache(visitor, *found.stored, request,
                                                     found.verdict.age, status, ctx_.draining,
                                                     cfg.idle_timeout);
            }
            const cache::request_facts asked = cache::facts_of(head);
            if (asked.cc.only_if_cached && !found.stored) {
                tally.responded(504);
                co_await reply_and_close(visitor, 504, "Gateway Timeout",
                                         "porthole: only-if-cached, and nothing is stored for "
                                         "this request",
                                         pages_of());
                co_return false;
            }
            ++shared_cache->counts().misses;
            if (found.stored) {
                const std::uint64_t stale_for =
                    found.verdict.ttl < 0 ? static_cast<std::uint64_t>(-found.verdict.ttl) : 0;
                // stale_when_offline covers an upstream that cannot be reached; a 5xx only
                // stale-if-error.
                if (cache::usable_on_error(found.stored->facts, asked, stale_for,
                                           shared_cache->settings().stale_when_offline ||
                                               found.stored->serve_offline))
                    stale_stand_in = found.stored;
                stale_on_5xx = cache::usable_on_error(found.stored->facts, asked, stale_for);
                // Validation: the upstream answers 304 when what is stored is still right.
                const std::string* etag = found.stored->find("etag");
                const std::string* modified = found.stored->find("last-modified");
                if (etag || modified) {
                    if (request_edits) validation = *request_edits;
                    validation.remove.emplace_back("if-none-match");
                    validation.remove.emplace_back("if-modified-since");
                    if (etag) validation.add.push_back({"If-None-Match", *etag});
                    if (modified) validation.add.push_back({"If-Modified-Since", *modified});
                    request_edits = &validation;
                }
            }
            recorder.emplace(*shared_cache, key, head, found.stored, stale_on_5xx, found.miss);
            recorder->serve_offline(r->serve_offline);
        } else if (unsafe(head.method)) {
            recorder.emplace(*shared_cache, key, head, nullptr, false, "method");
            recorder->invalidate_after(visitor_https, host_text, http::origin_form(head.target),
                                       scope);
        }
    }
    // What a stale stand-in answers in place of an upstream's failure.
    const auto answer_stale = [&](std::string_view why) {
        ++shared_cache->counts().stale;
        const auto age = cache::current_age(stale_stand_in->facts, stale_stand_in->request_time,
                                            stale_stand_in->response_time, cache::epoch_now());
        tally.responded(cache::shape_answer(*stale_stand_in, head).status);
        std::string status = fmt::format("porthole; hit; detail={}", why);
        return answer_from_cache(visitor, *stale_stand_in, request, age, std::move(status),
                                 ctx_.draining, cfg.idle_timeout);
    };
    const std::shared_ptr<upstream::pool>& pool = r->pool;
    const auto& settings = pool->settings();

    // A tunnel's data connection held from the last request carries this one too while its
    // pool is the route's and it is idle; a backend's went back to its pool.
    if (up && (up->pool != pool || up->in.size() != 0 ||
               !net::idle_and_open(up->stream.conn.socket()) || !pool->available(up->member)))
        up.reset();
    // By the head, not by what is left to read: a body that came whole with the head (or was read
    // for a policy) is forwarded once, so a request that had one is not sent again.
    const bool has_body = request.chunked() || request.content_length().value_or(0) != 0;
    const bool retriable = !has_body && idempotent(head.method);
    upstream::tried_list tried;
    if (up) {
        tried.push_back(up->member);  // a kept connection counts as this request's try
        pool->begin_exchange(up->member);
    }
    unsigned exchanges = 0;  // upstream connections this request was sent on
    // Another try after a failed one: on a member not tried yet, or on a tunnel name that is
    // the pool's only member, again (its clients take turns, and a group has several).
    const auto another_try = [&](bool tunnel) {
        if (exchanges >= settings.max_tries) return false;
        if (tried.size() < pool->size()) return true;
        if (!tunnel || pool->size() != 1) return false;
        tried.clear();
        return true;
    };
    const std::string_view affinity_cookie =
        settings.policy == config::lb_policy::cookie ? cookie_value(head, settings.cookie_name)
                                                     : std::string_view();
    for (;;) {
        if (!up) {
            const upstream::request_facts facts{from, affinity_cookie, &guard.source,
                                                &guard.destination};
            auto c = co_await pool->connect(facts, from, tried);
            if (!c && stale_stand_in) co_return co_await answer_stale("stale-if-error");
            if (!c) {
                const unsigned status = c.error().status;
                if (status == 502) tally.failed(observe::upstream_failure::connect);
                std::string text = c.error().message;
                if (!text.starts_with("porthole:"))
                    text = fmt::format("porthole: {} for {}", text, host_text);
                co_await reply_and_close(visitor, status, http::reason_phrase(status),
                                         std::move(text), pages_of());
                co_return false;
            }
            up.emplace(std::move(*c), pool, ctx_);
        }
        tally.record.upstream = pool->member(up->member).url;
        ++exchanges;
        std::string forwarded = http::forward_request_head(
            head, {peer, visitor_https ? "https" : "http", up->host_header, up->target,
                   request.upgrade(), strip, behind_proxy, request_edits,
                   policy_edits ? std::string_view(policy_edits->target) : std::string_view()});
        // lb_policy = "cookie": a visitor whose cookie does not name this member gets one.
        std::string set_cookie;
        if (settings.policy == config::lb_policy::cookie &&
            affinity_cookie != pool->cookie_value(up->member))
            set_cookie = fmt::format("Set-Cookie: {}={}; Path=/; HttpOnly\r\n",
                                     settings.cookie_name, pool->cookie_value(up->member));
        const bool sent = co_await write_all(up->stream, forwarded, cfg.idle_timeout,
                                             view(in).substr(0, parsed_body));
        if (!sent) {
            pool->finish(up->take(), upstream::outcome::failed, false,
                         "the request could not be sent");
            const bool tunnel = up->tunnel;
            up.reset();
            if (retriable && another_try(tunnel)) continue;
            tally.failed(observe::upstream_failure::no_response);
            co_await reply_and_close(visitor, 502, "Bad Gateway",
                                     "porthole: the upstream closed while sending the request",
                                     pages_of());
            co_return false;
        }
        if (shaping) co_await net::take(shaping->up, parsed_body);
        in.consume(parsed_body);
        parsed_body = 0;
        watched_endpoint watched_visitor(visitor, cfg.idle_timeout);
        std::optional<http::shaped_endpoint> shaped_visitor;
        if (shaping) shaped_visitor.emplace(watched_visitor, *shaping);
        http::forward_endpoint& from_visitor =
            shaped_visitor ? static_cast<http::forward_endpoint&>(*shaped_visitor)
                           : static_cast<http::forward_endpoint&>(watched_visitor);
        watched_endpoint to_upstream(up->stream, cfg.idle_timeout);
        http::response_options options{head.method == "HEAD", set_cookie, response_edits,
                                       std::nullopt, nullptr};
        if (settings.upstream_timeout) options.first_byte_timeout = *settings.upstream_timeout;
        options.close_visitor = &ctx_.draining;
        if (recorder) options.observer = &*recorder;
        if (compressor) {
            options.transform = &*compressor;
            options.visitor_http10 = head.version == 10;
        }
        http::request_body_result body;
        http::response_result outcome;
        if (request.is_done()) {  // no body: skip running a second coroutine alongside
            body.done = true;
            outcome = co_await http::forward_response(to_upstream, up->in, from_visitor, options);
        } else {
            std::tie(body, outcome) = co_await (
                http::forward_request_body(request, from_visitor, in, to_upstream) &&
                http::forward_response(to_upstream, up->in, from_visitor, options));
        }
        if (body.malformed && !body.too_large)
            spdlog::info("http: malformed request body from {}", peer);
        if (!outcome.problem.empty())
            spdlog::info("http: malformed response from {}: {}",
                         up->tunnel ? fmt::format("tunnel '{}'", pool->member(up->member).host)
                                    : fmt::format("the upstream of {}", host_text),
                         outcome.problem);
        if (outcome.state == response_state::none && body.malformed) {
            pool->finish(up->take(), upstream::outcome::ok, false);
            up.reset();
            tally.refused(body.too_large ? observe::refusal::body_too_large
                                         : observe::refusal::bad_request);
            if (body.too_large)
                co_await reply_and_close(visitor, 413, "Content Too Large",
                                         "porthole: the request body is over this site's limit",
                                         pages_of());
            else
                co_await reply_and_close(visitor, 400, "Bad Request", "malformed request body",
                                         pages_of());
            co_return false;
        }
        if (outcome.state == response_state::none && outcome.visitor_gone) {
            // The upstream answered and the visitor went before a byte of it reached them:
            // nothing to hold against the upstream, to try again or to answer.
            pool->finish(up->take(), upstream::outcome::ok, false);
            co_return false;
        }
        if (outcome.state == response_state::none) {
            pool->finish(up->take(), upstream::outcome::failed, false,
                         outcome.timed_out   ? "no response within upstream_timeout"
                         : outcome.malformed ? "a malformed response"
                                             : "the connection closed without a response");
            const bool tunnel = up->tunnel;
            const std::size_t member = up->member;
            up.reset();
            if (retriable && !outcome.timed_out && another_try(tunnel)) continue;
            if (stale_stand_in) co_return co_await answer_stale("stale-if-error");
            const std::string what =
                tunnel ? fmt::format("tunnel '{}'", pool->member(member).host)
                       : fmt::format("the upstream of {}", host_text);
            tally.failed(outcome.timed_out   ? observe::upstream_failure::timeout
                         : outcome.malformed ? observe::upstream_failure::malformed
                                             : observe::upstream_failure::no_response);
            if (outcome.timed_out)
                co_await reply_and_close(visitor, 504, "Gateway Timeout",
                                         fmt::format("porthole: {} did not answer in time "
                                                     "(upstream_timeout)",
                                                     what),
                                         pages_of());
            else
                co_await reply_and_close(
                    visitor, 502, "Bad Gateway",
                    fmt::format("porthole: {} {}", what,
                                outcome.malformed ? "answered with a malformed response"
                                                  : "closed the connection without a response"),
                    pages_of());
            co_return false;
        }
        const auto verdict =
            outcome.status >= 500 ? upstream::outcome::server_error : upstream::outcome::ok;
        if (recorder) recorder->finish(outcome.state == response_state::complete && body.done);
        if (outcome.swallowed) {
            // A 304 renewed what is stored, or a 5xx gave way to a stale response.
            pool->finish(up->take(), verdict, outcome.reusable && body.done);
            up.reset();
            if (!recorder->renewed()) co_return co_await answer_stale("stale-if-error");
            const cache::stored_response& renewed = *recorder->stored();
            const auto age = cache::current_age(renewed.facts, renewed.request_time,
                                                renewed.response_time, cache::epoch_now());
            std::string status = fmt::format("porthole; fwd=stale; fwd-status=304; ttl={}",
                                             static_cast<std::int64_t>(renewed.lifetime) -
                                                 static_cast<std::int64_t>(age));
            tally.responded(cache::shape_answer(renewed, head).status);
            co_return co_await answer_from_cache(visitor, renewed, request, age,
                                                 std::move(status), ctx_.draining,
                                                 cfg.idle_timeout);
        }
        tally.responded(outcome.state == response_state::upgraded ? 101 : outcome.status);
        tally.record.upgraded = outcome.state == response_state::upgraded;
        if (outcome.state == response_state::upgraded && body.done) {
            if (in.size() != 0) {
                const bool sent_rest = co_await write_all(up->stream, view(in), cfg.idle_timeout);
                if (!sent_rest) co_return false;
            }
            if (up->in.size() != 0) {
                const bool sent_rest = co_await write_all(visitor, view(up->in), cfg.idle_timeout);
                if (!sent_rest) co_return false;
            }
            if (shaping)
                co_await net::pump(visitor.conn, up->stream.conn, *shaping);
            else
                co_await net::pump(visitor.conn, up->stream.conn, ctx_.counters.carried);
            pool->finish(up->take(), verdict, false);
            up.reset();
            co_return false;
        }
        // The head told the visitor whether the connection goes on (Connection: close once the
        // relay drains); ending it otherwise would cut off the request it sends next.
        const bool visitor_goes_on = outcome.state == response_state::complete &&
                                     body.done && request.keep_alive() && outcome.keep_alive;
        // A tunnel's data connection stays with this visitor only where no other member could
        // take its next request: in a pool of several members each request is balanced.
        if (!up->dedicated || pool->size() > 1 || !outcome.reusable ||
            !visitor_goes_on) {
            pool->finish(up->take(), verdict, outcome.reusable &&
                                                  outcome.state == response_state::complete &&
                                                  body.done);
            up.reset();
        } else {
            pool->end_exchange(up->member, verdict);
        }
        if (!visitor_goes_on) {
            visitor.conn.shutdown_send();
            co_return false;
        }
        co_return true;
    }
}

}  // namespace porthole::relay
