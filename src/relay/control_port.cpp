#include "relay/control_port.hpp"

#include "core/printable.hpp"
#include "core/use_tuple.hpp"
#include "http/host_route.hpp"
#include "net/address_group.hpp"
#include "net/frame_io.hpp"
#include "net/listener.hpp"
#include "protocol/auth.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <variant>

namespace porthole::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using protocol::tunnel_kind;

namespace {
constexpr auto control_frame_timeout = 10s;  // a frame to a client that does not take it
}  // namespace

control_port::control_port(relay_context& ctx, tunnel_registry& registry,
                           std::optional<net::server_tls> tls,
                           std::function<void(std::shared_ptr<tunnel>)> serve_port)
    : ctx_(ctx), registry_(registry), tls_(std::move(tls)), serve_port_(std::move(serve_port)),
      acceptor_(ctx.io), tokens_(ctx.cfg.tokens), tokens_required_(ctx.cfg.tokens_required()),
      gate_(ctx.gate_total, ctx.gate_per_ip) {}

tl::expected<void, std::string> control_port::listen() {
    return ctx_.listen(acceptor_, ctx_.cfg.control_addr, "control");
}

void control_port::start() { ctx_.spawn(accept()); }

asio::awaitable<void> control_port::accept() {
    co_await accept_connections(acceptor_, "control",
                                [this](tcp::socket s) { ctx_.spawn(serve(std::move(s))); });
}

// The verifier a proof matched and the key behind it; a relay without tokens takes anyone,
// as the zero verifier.
struct control_port::authenticated {
    protocol::verifier verifier{};
    protocol::token_key key{};
};
// What a connection proved before its handshake deadline.
struct control_port::new_session {
    net::stream stream;
    protocol::hello hello;
    protocol::verifier verifier;  // which token
    protocol::token_key key;  // the key the client proved it holds
    protocol::key32 nonce;  // the session's CHALLENGE
};
struct control_port::new_data_connection {
    net::stream stream;
    std::weak_ptr<session> owner;
};
// A struct, not the variant itself: awaitable operator|| would splice a variant's alternatives
// into its own result. A failure is returned, not logged where it happens: a handshake cut
// off by its deadline still runs to its end, and only the caller knows the real reason.
struct control_port::handshake_result {
    std::variant<std::monostate, new_session, new_data_connection> proved;
    std::string failure;  // when nothing was proved
    bool warning = false;  // a failure worth a warning (a wrong token)
    handshake_result(std::string why, bool warn = false)
        : failure(std::move(why)), warning(warn) {}
    handshake_result(new_session s) : proved(std::move(s)) {}
    handshake_result(new_data_connection d) : proved(std::move(d)) {}
};

// Until it has proved itself, a connection holds a place in the handshake gate, reads only
// small frames and has one deadline for everything from accept to its proof.
asio::awaitable<void> control_port::serve_from_https(tcp::socket socket, asio::ssl::context& tls) {
    co_await serve(std::move(socket), &tls);
}

asio::awaitable<void> control_port::serve(tcp::socket socket, asio::ssl::context* tls) {
    const std::string from = net::peer_ip(socket);
    asio::steady_timer deadline(ctx_.io, ctx_.cfg.handshake_timeout);
    auto place = gate_.admit(net::address_group(from), [&deadline] { deadline.cancel(); });
    if (!place) {
        if (handshake_log_.allow(clock::now()))
            spdlog::info("control port: refused a connection from {}: it has {} unfinished "
                         "handshakes (max_unauthenticated_per_ip){}",
                         from, ctx_.gate_per_ip, handshake_log_.suppressed_note());
        co_return;
    }
    auto done = co_await (handshake(std::move(socket), tls) || deadline.async_wait(use_tuple));
    if (done.index() == 1) {
        const bool evicted = deadline.expiry() > clock::now();
        if (handshake_log_.allow(clock::now()))
            spdlog::info("control port: closed the connection from {}: {}{}", from,
                         evicted ? "its handshake was the oldest unfinished one when the "
                                   "table was full (max_unauthenticated)"
                                 : "the handshake did not finish in time",
                         handshake_log_.suppressed_note());
        co_return;
    }
    place.reset();
    handshake_result result = std::move(std::get<0>(done));
    if (auto* s = std::get_if<new_session>(&result.proved))
        co_await run_session(std::move(*s), from);
    else if (auto* d = std::get_if<new_data_connection>(&result.proved)) {
        if (const auto owner = d->owner.lock(); owner && !owner->closed)
            owner->pool.add(std::move(d->stream));
    } else if (!result.failure.empty() && handshake_log_.allow(clock::now()))
        spdlog::log(result.warning ? spdlog::level::warn : spdlog::level::info,
                    "control port: closing connection from {}: {}{}", from, result.failure,
                    handshake_log_.suppressed_note());
}

// TLS first when the transport is encrypted, then the first frame says what the connection is.
asio::awaitable<control_port::handshake_result> control_port::handshake(tcp::socket socket,
                                                                        asio::ssl::context* via) {
    std::optional<net::stream> accepted;
    if (via || tls_) {
        net::tls_socket tls(std::move(socket), via ? *via : tls_->context);
        const error_code ec = co_await tls.handshake(net::tls_socket::role::server);
        if (ec) co_return handshake_result("TLS handshake failed: " + ec.message());
        accepted.emplace(std::move(tls));
    } else {
        accepted.emplace(std::move(socket));
    }
    auto first = co_await net::read_frame(*accepted, {}, protocol::max_handshake_frame_body);
    if (!first) co_return handshake_result(first.error());
    if (auto* h = std::get_if<protocol::hello>(&*first))
        co_return co_await authenticate_session(std::move(*accepted), std::move(*h));
    if (auto* d = std::get_if<protocol::data_hello>(&*first))
        co_return co_await authenticate_data(std::move(*accepted), *d);
    co_return handshake_result("unexpected first frame");
}

asio::awaitable<void> control_port::refuse(net::stream& stream, protocol::error_code code,
                             std::string message) {
    const protocol::message frame = protocol::error{code, std::move(message)};
    co_await net::write_frame(stream, frame, control_frame_timeout);
}

asio::awaitable<control_port::handshake_result> control_port::authenticate_session(net::stream stream,
                                                       protocol::hello hello) {
    if (hello.min_version > protocol::protocol_version ||
        hello.max_version < protocol::oldest_protocol_version) {
        co_await refuse(stream, protocol::error_code::unsupported_version,
                        fmt::format("this relay speaks protocol versions {}-{}; the client speaks "
                                    "{}-{} (use a client of the relay's version)",
                                    protocol::oldest_protocol_version, protocol::protocol_version,
                                    hello.min_version, hello.max_version));
        co_return handshake_result(fmt::format("client speaks protocol versions {}-{}",
                                               hello.min_version, hello.max_version));
    }
    if (ctx_.draining) {
        co_await refuse(stream, protocol::error_code::shutting_down, "relay is shutting down");
        co_return handshake_result("the relay is shutting down");
    }
    const auto nonce = protocol::random_bytes<32>();
    const protocol::message challenge = protocol::challenge{
        std::min(hello.max_version, protocol::protocol_version), nonce};
    auto ec = co_await net::write_frame(stream, challenge, {});
    if (ec) co_return handshake_result("write failed: " + ec.message());
    auto reply = co_await net::read_frame(stream, {}, protocol::max_handshake_frame_body);
    auto* proof = reply ? std::get_if<protocol::auth>(&*reply) : nullptr;
    if (!proof)
        co_return handshake_result("no AUTH: " + (reply ? std::string("unexpected frame")
                                                        : reply.error()));
    auto key = authenticate(nonce, hello.client_id, proof->proof);
    if (!key) {
        co_await refuse(stream, protocol::error_code::unauthorized,
                        "the relay did not accept this token (check --token-file, --token or "
                        "PORTHOLE_TOKEN)");
        co_return handshake_result("the client presented a wrong token", true);
    }
    co_return new_session{std::move(stream), std::move(hello), key->verifier, key->key, nonce};
}

asio::awaitable<control_port::handshake_result> control_port::authenticate_data(net::stream stream,
                                                    protocol::data_hello hello) {
    auto it = sessions_.find(protocol::to_hex(hello.session_id));
    if (it == sessions_.end()) co_return handshake_result("data connection for an unknown session");
    const std::weak_ptr<session> owner = it->second;
    const auto nonce = protocol::random_bytes<32>();
    const protocol::message challenge = protocol::data_challenge{nonce};
    auto ec = co_await net::write_frame(stream, challenge, {});
    if (ec) co_return handshake_result("write failed: " + ec.message());
    auto reply = co_await net::read_frame(stream, {}, protocol::max_handshake_frame_body);
    auto* proof = reply ? std::get_if<protocol::data_auth>(&*reply) : nullptr;
    const auto s = owner.lock();
    if (!proof || !s || s->closed ||
        !protocol::equal_constant_time(protocol::data_proof(s->data_key, s->id, nonce),
                                       proof->proof)) {
        co_return handshake_result("data connection refused: no proof, a wrong one, or its "
                                   "session ended");
    }
    co_return new_data_connection{std::move(stream), owner};
}

// Sessions' opening and ending lines, a few a minute per token: a client reconnecting in a
// loop must not fill the log. One limiter per configured token (or the one of a relay
// without tokens), so the map stays that small.
core::log_limiter& control_port::session_log(const std::string& token_hex) {
    return session_logs_.try_emplace(token_hex, 20.0).first->second;
}

// The session's reader loop; the session ends when this returns.
asio::awaitable<void> control_port::run_session(new_session n, std::string from) {
    const std::string token_hex = protocol::to_hex(n.verifier);
    const owner_key owner = token_hex + protocol::to_hex(n.hello.client_id);
    if (tokens_required_) {
        std::uint32_t open = 0;
        if (auto c = sessions_per_token_.find(token_hex); c != sessions_per_token_.end())
            open = c->second;
        if (auto old = by_owner_.find(owner); old != by_owner_.end() && !old->second.expired())
            --open;  // the session this one replaces
        if (open >= ctx_.cfg.max_sessions_per_token) {
            if (handshake_log_.allow(clock::now()))
                spdlog::info("client {} refused: its token has {} sessions open "
                             "(max_sessions_per_token){}",
                             from, open, handshake_log_.suppressed_note());
            co_await refuse(n.stream, protocol::error_code::limit,
                            fmt::format("this token already has {} clients connected to this "
                                        "relay (max_sessions_per_token)",
                                        open));
            co_return;
        }
        // A relay of a cluster counts the other relays' sessions too.
        if (const auto others = co_await registry_.admit_token(
                token_hex, tunnel_registry::token_count::sessions, open + 1,
                ctx_.cfg.max_sessions_per_token)) {
            if (handshake_log_.allow(clock::now()))
                spdlog::info("client {} refused: its token has {} sessions open here and {} on "
                             "the cluster's other relays (max_sessions_per_token){}",
                             from, open, *others, handshake_log_.suppressed_note());
            co_await refuse(n.stream, protocol::error_code::limit,
                            fmt::format("this token already has {} clients connected to this "
                                        "relay and {} to the cluster's other relays "
                                        "(max_sessions_per_token)",
                                        open, *others));
            co_return;
        }
    }
    auto s = std::make_shared<session>(std::move(n.stream), ctx_.io.get_executor(),
                                       ctx_.cfg.max_control_frames_per_second,
                                       std::size_t{ctx_.cfg.pool_size} * 4);
    s->close = [this](session& closing) { close_session(closing); };
    s->version = std::min(n.hello.max_version, protocol::protocol_version);
    s->id = protocol::random_bytes<16>();
    s->id_hex = protocol::to_hex(s->id);
    s->owner = owner;
    s->token = n.verifier;
    error_code ec;
    const auto peer = s->control.socket().remote_endpoint(ec);
    s->address = ec ? from : config::endpoint{peer.address().to_string(), peer.port()}.to_string();
    s->agent = core::printable(n.hello.agent);
    s->connected_since = std::chrono::system_clock::now();
    // A relay without tokens has no secret the key could come from: it hands the key over.
    s->data_key = !tokens_required_ ? protocol::random_bytes<32>()
                                      : protocol::data_key(n.key, n.nonce, n.hello.client_id);
    if (auto old = by_owner_.find(s->owner); old != by_owner_.end()) {
        if (auto previous = old->second.lock()) {
            spdlog::info("session {} replaced by a reconnect of the same client",
                         previous->id_hex.substr(0, 8));
            s->count_reconnect(ctx_.counters.reconnects);
            close_session(*previous);
        }
    }
    sessions_[s->id_hex] = s;
    by_owner_[s->owner] = s;
    ++sessions_per_token_[token_hex];
    s->send(protocol::welcome{s->id, static_cast<std::uint32_t>(ctx_.cfg.heartbeat.count()),
                               ctx_.cfg.pool_size,
                               !tokens_required_ ? s->data_key : protocol::key32{}});
    if (auto& log = session_log(token_hex); log.allow(clock::now()))
        spdlog::info("session {} opened from {} ({}){}", s->id_hex.substr(0, 8), from,
                     n.hello.agent.empty() ? "unknown agent" : core::printable(n.hello.agent),
                     log.suppressed_note());
    ctx_.spawn(write_session(s));
    ctx_.spawn(heartbeat_session(s));

    const auto dead_after = ctx_.cfg.heartbeat * 3;
    std::string reason = "closed";
    while (!s->closed) {
        auto frame = co_await net::read_frame(s->control, dead_after);
        if (!frame) {
            reason = frame.error() == "timed out" ? "no heartbeat from the client"
                                                  : frame.error();
            break;
        }
        if (!s->frames.take(clock::now())) {
            reason = "it sent control frames too fast (max_control_frames_per_second)";
            break;
        }
        if (auto* open = std::get_if<protocol::open_tunnel>(&*frame)) {
            co_await open_tunnel(s, std::move(*open));
        } else if (auto* p = std::get_if<protocol::ping>(&*frame)) {
            s->send(protocol::pong{p->opaque});
        } else if (auto* pong = std::get_if<protocol::pong>(&*frame)) {
            if (pong->opaque == s->ping_opaque && s->ping_opaque != 0)
                s->rtt = clock::now() - s->ping_sent;
        } else if (std::holds_alternative<protocol::goaway>(*frame)) {
            s->leaving = true;  // a clean exit: free its names now instead of leasing them
            reason = "the client stopped";
            break;
        } else {
            reason = "protocol error: unexpected frame";
            break;
        }
    }
    if (auto& log = session_log(token_hex); !s->closed && log.allow(clock::now()))
        spdlog::info("session {} ended: {}{}", s->id_hex.substr(0, 8), reason,
                     log.suppressed_note());
    close_session(*s);
}

std::optional<control_port::authenticated> control_port::authenticate(const protocol::key32& nonce,
                                          const protocol::id16& client_id,
                                          const protocol::key32& proof) const {
    if (!tokens_required_) return authenticated{};
    std::optional<authenticated> match;
    for (const auto& v : tokens_)  // every token is checked, so timing reveals nothing
        if (auto key = protocol::check_session_proof(v, nonce, client_id, proof))
            match = authenticated{v, *key};
    return match;
}

asio::awaitable<void> control_port::write_session(std::shared_ptr<session> s) {
    const auto ec = co_await s->out.run(s->control, control_frame_timeout);
    if (ec && !s->closed) {
        spdlog::info("session {} ended: write failed: {}", s->id_hex.substr(0, 8), ec.message());
        close_session(*s);
    }
}

asio::awaitable<void> control_port::heartbeat_session(std::shared_ptr<session> s) {
    std::uint64_t n = 0;
    while (!s->closed) {
        s->heartbeat.expires_after(ctx_.cfg.heartbeat);
        co_await s->heartbeat.async_wait(use_tuple);
        if (s->closed) break;
        s->ping_opaque = ++n;
        s->ping_sent = clock::now();
        s->send(protocol::ping{n});
        s->pool.drop_closed();
    }
}

void control_port::close_session(session& s) {
    if (s.closed) return;
    s.closed = true;
    error_code ec;
    s.out.close();
    s.heartbeat.cancel();
    s.control.close();
    s.pool.close();
    const auto now = clock::now();
    for (auto& [id, t] : s.tunnels) {
        if (t->acceptor) t->acceptor->close(ec);
        registry_.remove(*t, s.leaving, now);
        if (t->kind == protocol::tunnel_kind::http) ctx_.release_tunnel_label(t->name);
    }
    ctx_.tunnels_did_change();
    const std::string token_hex = protocol::to_hex(s.token);
    if (auto it = tunnels_per_token_.find(token_hex); it != tunnels_per_token_.end()) {
        it->second -= std::min<std::uint32_t>(it->second, s.tunnels.size());
        if (it->second == 0) tunnels_per_token_.erase(it);
    }
    if (auto it = sessions_per_token_.find(token_hex);
        it != sessions_per_token_.end() && --it->second == 0)
        sessions_per_token_.erase(it);
    s.tunnels.clear();
    sessions_.erase(s.id_hex);
    if (auto it = by_owner_.find(s.owner); it != by_owner_.end()) {
        auto current = it->second.lock();
        if (!current || current.get() == &s) by_owner_.erase(it);
    }
}



asio::awaitable<void> control_port::open_tunnel(std::shared_ptr<session> s,
                                               protocol::open_tunnel req) {
    auto refuse = [&](protocol::error_code code, std::string message) {
        if (s->log.allow(clock::now()))
            spdlog::info("session {}: tunnel refused: {}{}", s->id_hex.substr(0, 8), message,
                         s->log.suppressed_note());
        s->send(protocol::tunnel_refused{req.request_id, code, std::move(message)});
    };
    const auto printable_ascii = [](std::string_view v) {
        return std::all_of(v.begin(), v.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    };
    if (!printable_ascii(req.target) || !printable_ascii(req.host_header))
        co_return refuse(protocol::error_code::protocol,
                      "the tunnel's target and host header must be printable ASCII");
    if (ctx_.draining) co_return refuse(protocol::error_code::shutting_down, "relay is shutting down");
    // The owner's policies, checked before anything is claimed.
    std::vector<config::policy_config> policies;
    bool owner_cache = false;
    if (!req.policies.empty()) {
        if (req.kind != tunnel_kind::http)
            co_return refuse(protocol::error_code::bad_policy,
                          "policies are for http tunnels: the relay does not read a tcp or tls "
                          "tunnel's bytes");
        auto parsed = config::load_owner_policies(req.policies, "tunnel policies",
                                                  ctx_.cfg.tunnel_policy_forbid);
        if (!parsed) co_return refuse(protocol::error_code::bad_policy, core::printable(parsed.error()));
        policies = std::move(parsed->policies);
        owner_cache = parsed->cache;
        if (owner_cache && !ctx_.tunnel_cache)
            co_return refuse(protocol::error_code::bad_policy,
                          "this relay has no cache for tunnels ([tunnel_policy] cache): run the "
                          "tunnel without --cache");
    }
    if (s->tunnels.size() >= ctx_.cfg.max_tunnels_per_client)
        co_return refuse(protocol::error_code::limit,
                      fmt::format("this relay allows at most {} tunnels per client",
                                  ctx_.cfg.max_tunnels_per_client));
    // Only a relay with tokens can tell who is who; without, clients are limited one by one.
    const std::string token_hex = protocol::to_hex(s->token);
    if (tokens_required_) {
        const std::uint32_t here = tunnels_per_token_[token_hex];
        if (here >= ctx_.cfg.max_tunnels_per_token)
            co_return refuse(protocol::error_code::limit,
                             fmt::format("this token may hold at most {} tunnels on this relay",
                                         ctx_.cfg.max_tunnels_per_token));
        // A relay of a cluster counts the other relays' tunnels too.
        if (const auto others = co_await registry_.admit_token(
                token_hex, tunnel_registry::token_count::tunnels, here + 1,
                ctx_.cfg.max_tunnels_per_token))
            co_return refuse(protocol::error_code::limit,
                             fmt::format("this token may hold at most {} tunnels across the "
                                         "cluster's relays; {} are here and {} on the others",
                                         ctx_.cfg.max_tunnels_per_token, here, *others));
        if (s->closed) co_return;
    }
    const bool in_group = !req.group.empty();
    if (in_group) {
        const bool digest = req.group.size() == 64 &&
                            std::all_of(req.group.begin(), req.group.end(), [](char c) {
                                return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                            });
        if (!digest)
            co_return refuse(protocol::error_code::protocol,
                          "a tunnel group is named by 64 lowercase hex digits");
        if (req.kind == tunnel_kind::tcp)
            co_return refuse(protocol::error_code::bad_name,
                          "tunnel groups are for http and tls tunnels; a tcp port has one client");
        if (req.name.empty())
            co_return refuse(protocol::error_code::bad_name,
                          "a tunnel group shares a name: ask for one (--subdomain NAME)");
        if (!tokens_required_ && !config::is_loopback_host(ctx_.cfg.control_addr.host))
            co_return refuse(protocol::error_code::unauthorized,
                          "this relay has no tokens, so it cannot tell who may join a tunnel "
                          "group: give the relay a tokens file (--token-file) and the clients "
                          "a token");
    }
    auto t = std::make_shared<tunnel>();
    t->id = next_tunnel_id_++;
    t->kind = req.kind;
    t->target = req.target;
    t->host_header = req.host_header.empty() ? "preserve" : req.host_header;
    t->owner = s;
    t->opened = std::chrono::system_clock::now();
    // The group's clients hold its name together: the same token and the same group key.
    t->holder = in_group ? token_hex + "/group/" + req.group : s->owner;
    t->group = req.group.substr(0, 12);
    t->new_connections = core::token_bucket(ctx_.cfg.max_new_connections_per_second,
                                            ctx_.cfg.max_new_connections_per_second);
    const auto now = clock::now();
    if (req.kind == tunnel_kind::tls && ctx_.https_port == 0)
        co_return refuse(protocol::error_code::port_unavailable,
                      "this relay has no HTTPS port (--https-addr) for TLS tunnels");
    if (req.kind == tunnel_kind::http || req.kind == tunnel_kind::tls) {
        std::string name = req.name;
        // A name with a dot is a custom domain (--domain); without, a subdomain of the relay's.
        const bool custom = name.find('.') != std::string::npos;
        if (custom) {
            if (auto problem = custom_domain_problem(name, s->token))
                co_return refuse(protocol::error_code::bad_name, std::move(*problem));
        } else if (!name.empty() && !http::valid_name(name)) {
            co_return refuse(protocol::error_code::bad_name,
                          core::printable(*http::name_problem(name)));
        }
        if (std::find(ctx_.cfg.reserved_names.begin(), ctx_.cfg.reserved_names.end(), name) !=
            ctx_.cfg.reserved_names.end())
            co_return refuse(protocol::error_code::bad_name,
                          fmt::format("the subdomain '{}' is reserved on this relay", name));
        if (name.empty()) {
            do name = http::random_name();
            while (registry_.name_held(name, now));
        }
        if (auto bound = std::find_if(ctx_.cfg.bound_names.begin(), ctx_.cfg.bound_names.end(),
                                      [&](const auto& b) { return b.first == name; });
            bound != ctx_.cfg.bound_names.end() &&
            !protocol::equal_constant_time(bound->second, s->token))
            co_return refuse(protocol::error_code::name_taken,
                          fmt::format("the subdomain '{}' is bound to another token", name));
        if (std::any_of(s->tunnels.begin(), s->tunnels.end(), [&](const auto& open) {
                return open.second->kind == req.kind && open.second->name == name;
            }))
            co_return refuse(protocol::error_code::name_taken,
                          fmt::format("the subdomain '{}' is already open by this client", name));
        // A group's members judge its visitors alike, or one member could weaken the rest.
        if (const tunnel_group* peers = registry_.local(req.kind, name);
            peers && !peers->members.empty() && peers->members.front()->policy_text != req.policies)
            co_return refuse(protocol::error_code::bad_policy,
                             fmt::format("the other clients of the group serving '{}' set {}"
                                         "policies; give every member the same",
                                         name, req.policies.empty() ? "" : "other "));
        t->name = name;
        if (!req.policies.empty()) {
            t->policy_text = req.policies;
            t->policies = std::make_shared<const policy::chain>(policy::build_chain(policies));
            t->policy_configs =
                std::make_shared<const std::vector<config::policy_config>>(std::move(policies));
            t->owner_cache = owner_cache;
        }
        const bool leased = registry_.name_held(name, now) && !registry_.local(req.kind, name);
        const bool held_before = registry_.name_holder(name, now) == t->holder;
        const bool claimed = co_await registry_.claim_name(*t, now);
        if (!claimed)
            co_return refuse(protocol::error_code::name_taken,
                          in_group ? fmt::format("the subdomain '{}' is in use by another client "
                                                 "or group (a group's clients share its token "
                                                 "and key)",
                                                 name)
                                   : fmt::format("the subdomain '{}' is in use by another client",
                                                 name));
        if (s->closed) {  // it went away while the claim was asked
            if (!held_before) registry_.drop_name(name, t->holder);
            co_return;
        }
        if (leased) s->count_reconnect(ctx_.counters.reconnects);
        t->url = req.kind == tunnel_kind::http ? ctx_.http_url(name) : ctx_.tls_url(name);
    } else {
        auto port = co_await bind_tunnel_port(*t, req.port, t->holder, now);
        if (!port) co_return refuse(protocol::error_code::port_unavailable, port.error());
        if (s->closed) {
            registry_.drop_port(*port, t->holder);
            co_return;
        }
        t->port = *port;
        t->url = fmt::format("tcp://{}:{}", ctx_.cfg.domain, t->port);
    }
    registry_.add(t);
    // Its request counters exist, at zero, from now: a scrape before the first request sees them.
    if (t->kind == protocol::tunnel_kind::http) ctx_.hold_tunnel_label(t->name);
    ctx_.tunnels_did_change();
    if (t->acceptor) serve_port_(t);
    s->tunnels[t->id] = t;
    ++tunnels_per_token_[token_hex];
    if (in_group)
        spdlog::info("session {}: tunnel {} -> {} (group member {})", s->id_hex.substr(0, 8),
                     t->url, t->target, registry_.local(t->kind, t->name)->members.size());
    else
        spdlog::info("session {}: tunnel {} -> {}", s->id_hex.substr(0, 8), t->url, t->target);
    s->send(protocol::tunnel_opened{req.request_id, t->id, t->url});
}

std::optional<std::string> control_port::custom_domain_problem(
    const std::string& domain, const protocol::verifier& token) const {
    if (!http::valid_domain(domain) || domain.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
                                           std::string::npos)
        return fmt::format("'{}' is not a lowercase domain name", core::printable(domain));
    const std::string& own = ctx_.cfg.domain;
    if (domain == own || (domain.size() > own.size() && domain.ends_with("." + own)))
        return fmt::format("'{}' is under this relay's domain: ask for it with --subdomain",
                           domain);
    for (const auto& [who, patterns] : ctx_.cfg.custom_domains) {
        if (!protocol::equal_constant_time(who, token)) continue;
        for (const auto& p : patterns)
            if (http::custom_domain_allowed(p, domain)) return std::nullopt;
    }
    return fmt::format("this relay does not let your token serve '{}': its operator lists the "
                       "domains a token may use in custom_domains",
                       domain);
}

asio::awaitable<tl::expected<std::uint16_t, std::string>> control_port::bind_tunnel_port(
    tunnel& t, std::uint16_t wanted, owner_key owner, clock::time_point now) {
    const auto range = ctx_.cfg.tcp_ports;
    // The port is claimed, then bound; a port this client held or leased before stays its own
    // whatever happens to this request.
    const auto try_port = [&](std::uint16_t port) -> asio::awaitable<tl::expected<void, std::string>> {
        if (registry_.local_port(port) && registry_.port_held_by(port, owner, now))
            co_return tl::unexpected(fmt::format("port {} is already open by this client", port));
        const bool held_before = registry_.port_held_by(port, owner, now);
        const bool claimed = co_await registry_.claim_port(port, owner, now);
        if (!claimed)
            co_return tl::unexpected(fmt::format("port {} is in use by another client", port));
        tcp::acceptor a(ctx_.io);
        auto bound = ctx_.listen(a, {ctx_.cfg.http_addr.host, port}, "tcp tunnel");
        if (!bound) {
            if (!held_before) registry_.drop_port(port, owner);
            co_return bound;
        }
        t.acceptor.emplace(std::move(a));
        co_return tl::expected<void, std::string>{};
    };
    if (wanted != 0) {
        if (!range.contains(wanted))
            co_return tl::unexpected(fmt::format("port {} is outside this relay's range {}",
                                                 wanted, range.to_string()));
        auto r = co_await try_port(wanted);
        if (!r) co_return tl::unexpected(r.error());
        co_return wanted;
    }
    const unsigned span = unsigned{range.high} - range.low + 1;
    const unsigned start = protocol::random_bytes<16>()[0] * 257u % span;
    for (unsigned i = 0; i < span; ++i) {
        const auto port = static_cast<std::uint16_t>(range.low + (start + i) % span);
        if (registry_.port_held(port, now)) continue;
        auto r = co_await try_port(port);
        if (r) co_return port;
    }
    co_return tl::unexpected(fmt::format("no free port left in {}", range.to_string()));
}


void control_port::begin_drain(std::string_view reason) {
    error_code ec;
    acceptor_.close(ec);
    for (auto& [id, s] : sessions_) {
        s->out.push(protocol::goaway{std::string(reason)});  // not send(): no erasing here
        s->pool.close_idle();
    }
}

void control_port::kick(session& s) {
    if (auto& log = session_log(protocol::to_hex(s.token)); log.allow(clock::now()))
        spdlog::info("session {} ended: closed by the admin API{}", s.id_hex.substr(0, 8),
                     log.suppressed_note());
    close_session(s);
}

void control_port::add_token(const protocol::verifier& v) {
    if (std::find(tokens_.begin(), tokens_.end(), v) == tokens_.end()) tokens_.push_back(v);
}

std::size_t control_port::revoke_token(const protocol::verifier& v) {
    std::erase(tokens_, v);
    std::vector<std::shared_ptr<session>> theirs;
    for (auto& [id, s] : sessions_)
        if (s->token == v) theirs.push_back(s);
    for (auto& s : theirs) {
        spdlog::info("session {} ended: its token was revoked", s->id_hex.substr(0, 8));
        s->leaving = true;  // a revoked token keeps no names
        close_session(*s);
    }
    return theirs.size();
}

void control_port::close_all() {
    std::vector<std::shared_ptr<session>> all;
    for (auto& [id, s] : sessions_) all.push_back(s);
    for (auto& s : all) close_session(*s);
}

void control_port::read_gauges(relay_gauges& g) const {
    g.sessions = sessions_.size();
    for (const auto& [id, s] : sessions_) {
        g.data_pool_idle += s->pool.idle();
        g.data_pool_waiting += s->pool.waiting();
        for (const auto& [tid, t] : s->tunnels) {
            const auto kind = static_cast<std::size_t>(t->kind);
            if (kind >= 1 && kind <= g.tunnels.size()) ++g.tunnels[kind - 1];
        }
    }
}

}  // namespace porthole::relay
