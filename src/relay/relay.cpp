#include "relay/relay.hpp"

#include "core/printable.hpp"
#include "core/token_bucket.hpp"
#include "http/host_route.hpp"
#include "http/message_head.hpp"
#include "net/address_group.hpp"
#include "net/client_hello.hpp"
#include "net/io_buffer.hpp"
#include "net/frame_io.hpp"
#include "net/pump.hpp"
#include "net/tls.hpp"
#include "net/socket_state.hpp"
#include "protocol/auth.hpp"
#include "relay/data_pool.hpp"
#include "relay/handshake_gate.hpp"
#include "relay/session.hpp"
#include "relay/lease_table.hpp"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <deque>
#include <iostream>
#include <unordered_map>
#include <unordered_set>

namespace porthole::relay {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using protocol::tunnel_kind;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto frame_write_timeout = 10s;  // a frame to a client that does not take it
constexpr auto stream_wait_timeout = 10s;
constexpr auto stream_ready_timeout = 75s;  // above the longest --connect-timeout a client takes
constexpr std::size_t read_chunk = net::io_block_size;
constexpr int max_stream_attempts = 8;

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

std::string peer_ip(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? std::string("unknown") : ep.address().to_string();
}

using stream_result = tl::expected<net::stream, std::string>;

class relay {
public:
    relay(asio::io_context& io, const config::server_config& cfg,
          std::optional<net::server_tls> tls, std::unique_ptr<net::https_certificates> https)
        : io_(io), cfg_(cfg), tls_(std::move(tls)), names_(cfg.lease_grace),
          ports_(cfg.lease_grace), control_acceptor_(io), http_acceptor_(io),
          https_(std::move(https)), https_acceptor_(io), signals_(io, SIGINT, SIGTERM),
          sweep_(io) {}

    tl::expected<void, std::string> listen() {
        auto bound = bind(control_acceptor_, cfg_.control_addr, "control");
        if (!bound) return bound;
        bound = bind(http_acceptor_, cfg_.http_addr, "http");
        if (!bound) return bound;
        http_port_ = http_acceptor_.local_endpoint().port();
        if (cfg_.https_addr) {
            bound = bind(https_acceptor_, *cfg_.https_addr, "https");
            if (!bound) return bound;
            https_port_ = https_acceptor_.local_endpoint().port();
        }
        return {};
    }

    void start() {
        announce();
        if (max_connections_per_ip_ < cfg_.max_connections_per_ip ||
            gate_total_ < cfg_.max_unauthenticated)
            spdlog::info("descriptor limit {}: at most {} visitor connections per address and {} "
                         "unfinished control handshakes (raise the limit, e.g. LimitNOFILE=, for "
                         "the configured {} and {})",
                         descriptors_, max_connections_per_ip_, gate_total_,
                         cfg_.max_connections_per_ip, cfg_.max_unauthenticated);
        spawn(accept_control());
        spawn(accept_http());
        if (https_acceptor_.is_open()) spawn(accept_https());
        spawn(sweep());
        signals_.async_wait([this](error_code ec, int sig) {
            if (!ec) begin_shutdown(sig);
        });
    }

private:
    template <class Awaitable>
    void spawn(Awaitable&& a) {
        asio::co_spawn(io_, std::forward<Awaitable>(a), log_exception);
    }

    tl::expected<void, std::string> bind(tcp::acceptor& a, const config::endpoint& at,
                                         std::string_view what) {
        error_code ec;
        auto address = asio::ip::make_address(at.host == "localhost" ? "127.0.0.1" : at.host, ec);
        if (ec)
            return tl::unexpected(fmt::format("cannot listen on {} ({}): '{}' is not an IP address",
                                              at.to_string(), what, at.host));
        tcp::endpoint ep(address, at.port);
        a.open(ep.protocol(), ec);
        if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            error_code ignored;
            a.close(ignored);
            return tl::unexpected(fmt::format("cannot listen on {} ({}): {}", at.to_string(), what,
                                              ec == asio::error::address_in_use
                                                  ? std::string("address already in use")
                                                  : ec.message()));
        }
        return {};
    }

    std::string https_text() const {
        const auto ep = https_acceptor_.local_endpoint();
        return config::endpoint{ep.address().to_string(), ep.port()}.to_string();
    }

    bool net_loopback() const { return config::is_loopback_host(cfg_.control_addr.host); }

    // The public URL of a name: https when the relay serves HTTPS.
    std::string http_url(const std::string& name) const {
        if (https_)
            return https_port_ == 443 ? fmt::format("https://{}.{}", name, cfg_.domain)
                                      : fmt::format("https://{}.{}:{}", name, cfg_.domain, https_port_);
        return http_port_ == 80 ? fmt::format("http://{}.{}", name, cfg_.domain)
                                : fmt::format("http://{}.{}:{}", name, cfg_.domain, http_port_);
    }

    void announce() {
        const auto control = control_acceptor_.local_endpoint();
        const auto http = http_acceptor_.local_endpoint();
        const std::string control_text = config::endpoint{control.address().to_string(),
                                                          control.port()}.to_string();
        const std::string http_text =
            config::endpoint{http.address().to_string(), http.port()}.to_string();
        // A self-signed certificate is trusted by pinning: tell clients what to pin.
        const bool pin = tls_ && cfg_.control_cert.empty();
        std::string client_flags = cfg_.tokens.empty() ? "" : " --token TOKEN";
        if (pin) client_flags += " --server-fingerprint " + tls_->fingerprint;
        else if (tls_ && net_loopback()) client_flags += " --tls on";
        if (cfg_.json) {
            nlohmann::json j{{"event", "listening"},
                             {"http", http_text},
                             {"control", control_text},
                             {"domain", cfg_.domain},
                             {"tcp_ports", cfg_.tcp_ports.to_string()},
                             {"tls", tls_.has_value()}};
            if (tls_) j["fingerprint"] = tls_->fingerprint;
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
                             PORTHOLE_VERSION, http_url("*"), http_text,
                             https_ ? ", https on " + https_text() : std::string(), control_text,
                             tls_ ? ", TLS " + tls_->fingerprint : std::string(", plaintext"),
                             cfg_.tokens.empty() ? " (no token required)" : "",
                             cfg_.tcp_ports.to_string(), control_text, client_flags)
                      << std::flush;
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

    // ---- control port: sessions and data connections ---------------------------------------

    asio::awaitable<void> accept_control() {
        while (!draining_) {
            auto [ec, socket] = co_await control_acceptor_.async_accept(use_tuple);
            if (ec == asio::error::operation_aborted || draining_) co_return;
            if (ec) {
                co_await pause_after_accept_error(ec, "control");
                continue;
            }
            socket.set_option(tcp::no_delay(true), ec);
            spawn(serve_control_port(std::move(socket)));
        }
    }

    asio::awaitable<void> pause_after_accept_error(error_code ec, std::string_view what) {
        // EMFILE and friends: back off instead of spinning; the listener recovers by itself.
        spdlog::warn("accept on the {} listener failed: {}", what, ec.message());
        asio::steady_timer t(io_, 100ms);
        co_await t.async_wait(use_tuple);
    }

    // What a connection proved before its handshake deadline.
    struct new_session {
        net::stream stream;
        protocol::hello hello;
        protocol::verifier verifier;  // which token
        protocol::token_key key;  // the key the client proved it holds
        protocol::key32 nonce;  // the session's CHALLENGE
    };
    struct new_data_connection {
        net::stream stream;
        std::weak_ptr<session> owner;
    };
    // A struct, not the variant itself: awaitable operator|| would splice a variant's alternatives
    // into its own result. A failure is returned, not logged where it happens: a handshake cut
    // off by its deadline still runs to its end, and only the caller knows the real reason.
    struct handshake_result {
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
    asio::awaitable<void> serve_control_port(tcp::socket socket) {
        const std::string from = peer_ip(socket);
        asio::steady_timer deadline(io_, cfg_.handshake_timeout);
        auto place = gate_.admit(net::address_group(from), [&deadline] { deadline.cancel(); });
        if (!place) {
            if (handshake_log_.allow(clock::now()))
                spdlog::info("control port: refused a connection from {}: it has {} unfinished "
                             "handshakes (max_unauthenticated_per_ip){}",
                             from, gate_per_ip_, handshake_log_.suppressed_note());
            co_return;
        }
        auto done = co_await (handshake(std::move(socket)) ||
                              deadline.async_wait(use_tuple));
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
        else if (auto* d = std::get_if<new_data_connection>(&result.proved))
            add_data_connection(std::move(*d));
        else if (!result.failure.empty() && handshake_log_.allow(clock::now()))
            spdlog::log(result.warning ? spdlog::level::warn : spdlog::level::info,
                        "control port: closing connection from {}: {}{}", from, result.failure,
                        handshake_log_.suppressed_note());
    }

    // TLS first when the transport is encrypted, then the first frame says what the connection is.
    asio::awaitable<handshake_result> handshake(tcp::socket socket) {
        std::optional<net::stream> accepted;
        if (tls_) {
            net::tls_socket tls(std::move(socket), tls_->context);
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

    asio::awaitable<void> refuse(net::stream& stream, protocol::error_code code,
                                 std::string message) {
        const protocol::message frame = protocol::error{code, std::move(message)};
        co_await net::write_frame(stream, frame, frame_write_timeout);
    }

    asio::awaitable<handshake_result> authenticate_session(net::stream stream,
                                                           protocol::hello hello) {
        if (hello.min_version > protocol::protocol_version ||
            hello.max_version < protocol::protocol_version) {
            co_await refuse(stream, protocol::error_code::unsupported_version,
                            fmt::format("this relay speaks protocol version {}; the client speaks "
                                        "{}-{} (use a client of the relay's version)",
                                        protocol::protocol_version, hello.min_version,
                                        hello.max_version));
            co_return handshake_result(fmt::format("client speaks protocol versions {}-{}",
                                                   hello.min_version, hello.max_version));
        }
        if (draining_) {
            co_await refuse(stream, protocol::error_code::shutting_down, "relay is shutting down");
            co_return handshake_result("the relay is shutting down");
        }
        const auto nonce = protocol::random_bytes<32>();
        const protocol::message challenge = protocol::challenge{protocol::protocol_version, nonce};
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

    asio::awaitable<handshake_result> authenticate_data(net::stream stream,
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
    core::log_limiter& session_log(const std::string& token_hex) {
        return session_logs_.try_emplace(token_hex, 20.0).first->second;
    }

    // Queues a frame for the session; one that has stopped reading is closed.
    void send(session& s, const protocol::message& m) {
        if (s.out.push(m)) return;
        spdlog::info("session {} ended: it does not read what the relay sends",
                     s.id_hex.substr(0, 8));
        close_session(s);
    }

    // The session's reader loop; the session ends when this returns.
    asio::awaitable<void> run_session(new_session n, std::string from) {
        const std::string token_hex = protocol::to_hex(n.verifier);
        const owner_key owner = token_hex + protocol::to_hex(n.hello.client_id);
        if (!cfg_.tokens.empty()) {
            std::uint32_t open = 0;
            if (auto c = sessions_per_token_.find(token_hex); c != sessions_per_token_.end())
                open = c->second;
            if (auto old = by_owner_.find(owner); old != by_owner_.end() && !old->second.expired())
                --open;  // the session this one replaces
            if (open >= cfg_.max_sessions_per_token) {
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
        }
        auto s = std::make_shared<session>(std::move(n.stream), io_.get_executor(),
                                           cfg_.max_control_frames_per_second,
                                           std::size_t{cfg_.pool_size} * 4);
        s->id = protocol::random_bytes<16>();
        s->id_hex = protocol::to_hex(s->id);
        s->owner = owner;
        s->token = n.verifier;
        // A relay without tokens has no secret the key could come from: it hands the key over.
        s->data_key = cfg_.tokens.empty() ? protocol::random_bytes<32>()
                                          : protocol::data_key(n.key, n.nonce, n.hello.client_id);
        if (auto old = by_owner_.find(s->owner); old != by_owner_.end()) {
            if (auto previous = old->second.lock()) {
                spdlog::info("session {} replaced by a reconnect of the same client",
                             previous->id_hex.substr(0, 8));
                close_session(*previous);
            }
        }
        sessions_[s->id_hex] = s;
        by_owner_[s->owner] = s;
        ++sessions_per_token_[token_hex];
        send(*s, protocol::welcome{s->id, static_cast<std::uint32_t>(cfg_.heartbeat.count()),
                                   cfg_.pool_size,
                                   cfg_.tokens.empty() ? s->data_key : protocol::key32{}});
        if (auto& log = session_log(token_hex); log.allow(clock::now()))
            spdlog::info("session {} opened from {} ({}){}", s->id_hex.substr(0, 8), from,
                         n.hello.agent.empty() ? "unknown agent" : core::printable(n.hello.agent),
                         log.suppressed_note());
        spawn(write_session(s));
        spawn(heartbeat_session(s));

        const auto dead_after = cfg_.heartbeat * 3;
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
                open_tunnel(s, *open);
            } else if (auto* p = std::get_if<protocol::ping>(&*frame)) {
                send(*s, protocol::pong{p->opaque});
            } else if (std::holds_alternative<protocol::pong>(*frame)) {
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

    // The verifier a proof matched and the key behind it; a relay without tokens takes anyone,
    // as the zero verifier.
    struct authenticated {
        protocol::verifier verifier{};
        protocol::token_key key{};
    };
    std::optional<authenticated> authenticate(const protocol::key32& nonce,
                                              const protocol::id16& client_id,
                                              const protocol::key32& proof) const {
        if (cfg_.tokens.empty()) return authenticated{};
        std::optional<authenticated> match;
        for (const auto& v : cfg_.tokens)  // every token is checked, so timing reveals nothing
            if (auto key = protocol::check_session_proof(v, nonce, client_id, proof))
                match = authenticated{v, *key};
        return match;
    }

    asio::awaitable<void> write_session(std::shared_ptr<session> s) {
        const auto ec = co_await s->out.run(s->control, frame_write_timeout);
        if (ec && !s->closed) {
            spdlog::info("session {} ended: write failed: {}", s->id_hex.substr(0, 8), ec.message());
            close_session(*s);
        }
    }

    asio::awaitable<void> heartbeat_session(std::shared_ptr<session> s) {
        std::uint64_t n = 0;
        while (!s->closed) {
            s->heartbeat.expires_after(cfg_.heartbeat);
            co_await s->heartbeat.async_wait(use_tuple);
            if (s->closed) break;
            send(*s, protocol::ping{++n});
            s->pool.drop_closed();
        }
    }

    void close_session(session& s) {
        if (s.closed) return;
        s.closed = true;
        error_code ec;
        s.out.close();
        s.heartbeat.cancel();
        s.control.close();
        s.pool.close();
        const auto now = clock::now();
        for (auto& [id, t] : s.tunnels) {
            if (t->kind == tunnel_kind::http || t->kind == tunnel_kind::tls) {
                auto& routes = t->kind == tunnel_kind::http ? http_tunnels_ : tls_tunnels_;
                if (auto it = routes.find(t->name); it != routes.end() && it->second == t)
                    routes.erase(it);
                if (s.leaving)
                    names_.drop(t->name, s.owner);
                else
                    names_.release(t->name, s.owner, now);
            } else {
                if (t->acceptor) t->acceptor->close(ec);
                tcp_tunnels_.erase(t->port);
                if (s.leaving)
                    ports_.drop(t->port, s.owner);
                else
                    ports_.release(t->port, s.owner, now);
            }
        }
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

    void add_data_connection(new_data_connection d) {
        const auto s = d.owner.lock();
        if (s && !s->closed) s->pool.add(std::move(d.stream));
    }

    // A data connection of the tunnel's client, connected to the tunnel's target.
    asio::awaitable<stream_result> open_stream(const tunnel& t, std::string visitor) {
        for (int attempt = 0; attempt < max_stream_attempts; ++attempt) {
            auto s = t.owner.lock();
            if (!s || s->closed)
                co_return tl::unexpected(fmt::format("the client of this tunnel is offline"));
            std::optional<net::stream> conn = s->pool.take_idle();
            if (!conn) {
                if (s->pool.waiting() >= cfg_.max_pending_streams)
                    co_return tl::unexpected(std::string(
                        "too many visitors are waiting for this client (max_pending_streams)"));
                send(*s, protocol::pool_want{1});
                if (s->closed) co_return tl::unexpected(std::string("the client went offline"));
                conn = co_await s->pool.wait(stream_wait_timeout);
                if (!conn)
                    co_return tl::unexpected(std::string(
                        s->closed ? "the client of this tunnel went offline"
                                  : "the client did not open a data connection in time"));
            }
            net::stream& stream = *conn;
            const protocol::message start = protocol::stream_start{t.id, visitor};
            auto ec = co_await net::write_frame(stream, start, frame_write_timeout);
            if (ec) continue;
            auto reply = co_await net::read_frame(stream, stream_ready_timeout);
            if (!reply) {
                if (reply.error() == "timed out")
                    co_return tl::unexpected(std::string("the client did not answer in time"));
                continue;  // died in the pool: nothing of the visitor's was sent, try another
            }
            if (std::holds_alternative<protocol::stream_ready>(*reply)) co_return std::move(stream);
            if (auto* failed = std::get_if<protocol::stream_failed>(&*reply)) {
                // The detail may name the client's local address: it stays out of the visitor's
                // page (the client logs and shows it).
                spdlog::info("tunnel {}: the client could not reach its local service: {}",
                             t.url, core::printable(failed->message));
                co_return tl::unexpected(std::string("its local service is not reachable"));
            }
            co_return tl::unexpected(std::string("the client answered with an unexpected frame"));
        }
        co_return tl::unexpected(std::string("no working data connection from the client"));
    }

    // ---- tunnels ---------------------------------------------------------------------------

    void open_tunnel(const std::shared_ptr<session>& s, const protocol::open_tunnel& req) {
        auto refuse = [&](protocol::error_code code, std::string message) {
            if (s->log.allow(clock::now()))
                spdlog::info("session {}: tunnel refused: {}{}", s->id_hex.substr(0, 8), message,
                             s->log.suppressed_note());
            send(*s, protocol::tunnel_refused{req.request_id, code, std::move(message)});
        };
        const auto printable_ascii = [](std::string_view v) {
            return std::all_of(v.begin(), v.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
        };
        if (!printable_ascii(req.target) || !printable_ascii(req.host_header))
            return refuse(protocol::error_code::protocol,
                          "the tunnel's target and host header must be printable ASCII");
        if (draining_) return refuse(protocol::error_code::shutting_down, "relay is shutting down");
        if (s->tunnels.size() >= cfg_.max_tunnels_per_client)
            return refuse(protocol::error_code::limit,
                          fmt::format("this relay allows at most {} tunnels per client",
                                      cfg_.max_tunnels_per_client));
        // Only a relay with tokens can tell who is who; without, clients are limited one by one.
        const std::string token_hex = protocol::to_hex(s->token);
        if (!cfg_.tokens.empty() && tunnels_per_token_[token_hex] >= cfg_.max_tunnels_per_token)
            return refuse(protocol::error_code::limit,
                          fmt::format("this token may hold at most {} tunnels on this relay",
                                      cfg_.max_tunnels_per_token));
        auto t = std::make_shared<tunnel>();
        t->id = next_tunnel_id_++;
        t->kind = req.kind;
        t->target = req.target;
        t->host_header = req.host_header.empty() ? "preserve" : req.host_header;
        t->owner = s;
        t->new_connections = core::token_bucket(cfg_.max_new_connections_per_second,
                                                cfg_.max_new_connections_per_second);
        const auto now = clock::now();
        if (req.kind == tunnel_kind::tls && !https_acceptor_.is_open())
            return refuse(protocol::error_code::port_unavailable,
                          "this relay has no HTTPS port (--https-addr) for TLS tunnels");
        if (req.kind == tunnel_kind::http || req.kind == tunnel_kind::tls) {
            std::string name = req.name;
            if (!name.empty() && !http::valid_name(name))
                return refuse(protocol::error_code::bad_name,
                              fmt::format("'{}' is not a valid subdomain: use 1-63 characters "
                                          "a-z, 0-9 and '-', not starting or ending with '-'",
                                          core::printable(name)));
            if (std::find(cfg_.reserved_names.begin(), cfg_.reserved_names.end(), name) !=
                cfg_.reserved_names.end())
                return refuse(protocol::error_code::bad_name,
                              fmt::format("the subdomain '{}' is reserved on this relay", name));
            if (name.empty()) {
                do name = http::random_name();
                while (names_.held(name, now));
            }
            if (auto bound = std::find_if(cfg_.bound_names.begin(), cfg_.bound_names.end(),
                                          [&](const auto& b) { return b.first == name; });
                bound != cfg_.bound_names.end() &&
                !protocol::equal_constant_time(bound->second, s->token))
                return refuse(protocol::error_code::name_taken,
                              fmt::format("the subdomain '{}' is bound to another token", name));
            auto& routes = req.kind == tunnel_kind::http ? http_tunnels_ : tls_tunnels_;
            if (auto open = routes.find(name); open != routes.end() && open->second->owner.lock() == s)
                return refuse(protocol::error_code::name_taken,
                              fmt::format("the subdomain '{}' is already open by this client", name));
            if (!names_.claim(name, s->owner, now))
                return refuse(protocol::error_code::name_taken,
                              fmt::format("the subdomain '{}' is in use by another client", name));
            t->name = name;
            if (req.kind == tunnel_kind::http) {
                t->url = http_url(name);
                http_tunnels_[name] = t;
            } else {
                t->url = https_port_ == 443 ? fmt::format("tls://{}.{}", name, cfg_.domain)
                                            : fmt::format("tls://{}.{}:{}", name, cfg_.domain,
                                                          https_port_);
                tls_tunnels_[name] = t;
            }
        } else {
            auto port = bind_tunnel_port(*t, req.port, s->owner, now);
            if (!port) return refuse(protocol::error_code::port_unavailable, port.error());
            t->port = *port;
            t->url = fmt::format("tcp://{}:{}", cfg_.domain, t->port);
            tcp_tunnels_[t->port] = t;
            spawn(accept_tcp(t));
        }
        s->tunnels[t->id] = t;
        ++tunnels_per_token_[token_hex];
        spdlog::info("session {}: tunnel {} -> {}", s->id_hex.substr(0, 8), t->url, t->target);
        send(*s, protocol::tunnel_opened{req.request_id, t->id, t->url});
    }

    tl::expected<std::uint16_t, std::string> bind_tunnel_port(tunnel& t, std::uint16_t wanted,
                                                              const owner_key& owner,
                                                              clock::time_point now) {
        const auto range = cfg_.tcp_ports;
        auto try_port = [&](std::uint16_t port) -> tl::expected<void, std::string> {
            if (tcp_tunnels_.contains(port) && ports_.held_by(port, owner, now))
                return tl::unexpected(fmt::format("port {} is already open by this client", port));
            // A port this client holds or leases stays its own whatever happens to this request.
            const bool held_before = ports_.held_by(port, owner, now);
            if (!ports_.claim(port, owner, now))
                return tl::unexpected(fmt::format("port {} is in use by another client", port));
            tcp::acceptor a(io_);
            auto bound = bind(a, {cfg_.http_addr.host, port}, "tcp tunnel");
            if (!bound) {
                if (!held_before) ports_.drop(port, owner);
                return bound;
            }
            t.acceptor.emplace(std::move(a));
            return {};
        };
        if (wanted != 0) {
            if (!range.contains(wanted))
                return tl::unexpected(fmt::format("port {} is outside this relay's range {}",
                                                  wanted, range.to_string()));
            auto r = try_port(wanted);
            if (!r) return tl::unexpected(r.error());
            return wanted;
        }
        const unsigned span = unsigned{range.high} - range.low + 1;
        const unsigned start = protocol::random_bytes<16>()[0] * 257u % span;
        for (unsigned i = 0; i < span; ++i) {
            const auto port = static_cast<std::uint16_t>(range.low + (start + i) % span);
            if (ports_.held(port, now)) continue;
            if (try_port(port)) return port;
        }
        return tl::unexpected(fmt::format("no free port left in {}", range.to_string()));
    }

    // Once a second: expired leases go, idle visitor connections past their deadline close.
    asio::awaitable<void> sweep() {
        while (!draining_) {
            sweep_.expires_after(1s);
            co_await sweep_.async_wait(use_tuple);
            now_ = clock::now();
            names_.expire(now_);
            ports_.expire(now_);
            error_code ec;
            for (auto* w : watched_)
                if (w->deadline <= now_) w->conn.socket().cancel(ec);
        }
    }

    // ---- TCP edge --------------------------------------------------------------------------

    asio::awaitable<void> accept_tcp(std::shared_ptr<tunnel> t) {
        while (t->acceptor && t->acceptor->is_open()) {
            auto [ec, socket] = co_await t->acceptor->async_accept(use_tuple);
            if (ec == asio::error::operation_aborted || !t->acceptor->is_open()) co_return;
            if (ec) {
                co_await pause_after_accept_error(ec, "tcp tunnel");
                continue;
            }
            socket.set_option(tcp::no_delay(true), ec);
            spawn(serve_tcp_visitor(std::move(socket), t));
        }
    }

    // TLS passthrough: the still-encrypted connection goes to the client as it came.
    asio::awaitable<void> pass_through(tcp::socket visitor, const std::string& from,
                                       std::shared_ptr<tunnel> t) {
        if (t->active >= cfg_.max_connections_per_tunnel ||
            !t->new_connections.take(clock::now()))
            co_return;
        const tunnel_slot slot(t);
        auto stream = co_await open_stream(*t, from);
        if (!stream) {
            spdlog::info("tls {}: visitor {} dropped: {}", t->name, from, stream.error());
            co_return;
        }
        net::stream visitor_stream(std::move(visitor));
        co_await net::pump(visitor_stream, *stream);
    }

    asio::awaitable<void> serve_tcp_visitor(tcp::socket visitor, std::shared_ptr<tunnel> t) {
        const std::string from = peer_ip(visitor);
        const visit_guard guard(*this, from);
        if (!guard.within_limit || t->active >= cfg_.max_connections_per_tunnel ||
            !t->new_connections.take(clock::now())) {
            if (visitor_log_.allow(clock::now()))
                spdlog::info("tcp {}: visitor {} refused: connection limit{}", t->port, from,
                             visitor_log_.suppressed_note());
            co_return;
        }
        const tunnel_slot slot(t);
        auto stream = co_await open_stream(*t, from);
        if (!stream) {
            spdlog::info("tcp {}: visitor {} dropped: {}", t->port, from, stream.error());
            co_return;
        }
        net::stream visitor_stream(std::move(visitor));
        co_await net::pump(visitor_stream, *stream);
    }

    // ---- HTTP edge -------------------------------------------------------------------------

    // Counts a visitor connection for shutdown and for the per-address limit.
    struct visit_guard {
        visit_guard(relay& r, std::string ip)
            : r(r), ip(std::move(ip)), counted_as(net::address_group(this->ip)) {
            ++r.active_visitors_;
            within_limit = ++r.per_ip_[counted_as] <= r.max_connections_per_ip_;
        }
        ~visit_guard() {
            --r.active_visitors_;
            if (auto it = r.per_ip_.find(counted_as); it != r.per_ip_.end() && --it->second == 0)
                r.per_ip_.erase(it);
        }
        visit_guard(const visit_guard&) = delete;
        visit_guard& operator=(const visit_guard&) = delete;
        relay& r;
        std::string ip;
        std::string counted_as;
        bool within_limit;
    };

    // Holds one of a tunnel's max_connections_per_tunnel slots.
    struct tunnel_slot {
        explicit tunnel_slot(std::shared_ptr<tunnel> t) : t(std::move(t)) { ++this->t->active; }
        ~tunnel_slot() { --t->active; }
        tunnel_slot(const tunnel_slot&) = delete;
        tunnel_slot& operator=(const tunnel_slot&) = delete;
        std::shared_ptr<tunnel> t;
    };

    asio::awaitable<void> accept_http() {
        while (!draining_) {
            auto [ec, socket] = co_await http_acceptor_.async_accept(use_tuple);
            if (ec == asio::error::operation_aborted || draining_) co_return;
            if (ec) {
                co_await pause_after_accept_error(ec, "http");
                continue;
            }
            socket.set_option(tcp::no_delay(true), ec);
            spawn(serve_plain_http_visitor(std::move(socket)));
        }
    }

    asio::awaitable<void> accept_https() {
        while (!draining_) {
            auto [ec, socket] = co_await https_acceptor_.async_accept(use_tuple);
            if (ec == asio::error::operation_aborted || draining_) co_return;
            if (ec) {
                co_await pause_after_accept_error(ec, "https");
                continue;
            }
            socket.set_option(tcp::no_delay(true), ec);
            spawn(serve_https_visitor(std::move(socket)));
        }
    }

    // The ClientHello, peeked (left in the socket): its server name picks a passthrough tunnel.
    asio::awaitable<net::client_hello_sni> peek_client_hello(tcp::socket& socket,
                                                             clock::time_point deadline) {
        using status = net::client_hello_sni::status;
        std::vector<std::uint8_t> bytes;  // taken once bytes arrive: an idle socket holds none
        asio::steady_timer pause(io_);
        while (clock::now() < deadline) {
            auto ready = co_await net::within(
                socket.async_wait(tcp::socket::wait_read, use_tuple),
                std::chrono::duration_cast<clock::duration>(deadline - clock::now()));
            if (!ready || std::get<0>(*ready)) break;
            bytes.resize(16 * 1024 + 5);
            const auto n = ::recv(socket.native_handle(), bytes.data(), bytes.size(), MSG_PEEK);
            if (n <= 0) break;
            auto sni = net::find_sni({bytes.data(), static_cast<std::size_t>(n)});
            if (sni.what != status::need_more) co_return sni;
            // The rest of the hello is on its way; the peeked bytes keep the socket readable.
            pause.expires_after(5ms);
            co_await pause.async_wait(use_tuple);
        }
        co_return net::client_hello_sni{status::not_tls, {}};
    }

    asio::awaitable<void> serve_plain_http_visitor(tcp::socket socket) {
        const visit_guard guard(*this, peer_ip(socket));
        co_await serve_http_visitor(net::stream(std::move(socket)), guard, false);
    }

    // Counted from accept, before a byte is read: idle sockets count against the address too.
    asio::awaitable<void> serve_https_visitor(tcp::socket socket) {
        const visit_guard guard(*this, peer_ip(socket));
        if (!guard.within_limit) co_return;
        // One deadline for the ClientHello and the handshake: a slow handshake is a slow head.
        const auto deadline = clock::now() + cfg_.header_timeout;
        const auto hello = co_await peek_client_hello(socket, deadline);
        if (hello.what == net::client_hello_sni::status::found) {
            if (auto name = http::tunnel_name_for_host(hello.name, cfg_.domain)) {
                if (auto it = tls_tunnels_.find(*name); it != tls_tunnels_.end()) {
                    co_await pass_through(std::move(socket), guard.ip, it->second);
                    co_return;
                }
            }
        }
        if (!https_ || clock::now() >= deadline) co_return;  // a passthrough-only HTTPS port
        net::tls_socket tls(std::move(socket), https_->context());
        auto done = co_await net::within(tls.handshake(net::tls_socket::role::server),
                                         deadline - clock::now());
        if (!done || *done) co_return;
        co_await serve_http_visitor(net::stream(std::move(tls)), guard, true);
    }

    // A socket whose reads and writes have a deadline, enforced by the once-a-second sweeper
    // rather than a timer per operation (that timer was a tenth of the relay's work per request).
    struct watched_socket {
        watched_socket(net::stream s, relay& r) : conn(std::move(s)), owner(r) {
            owner.watched_.insert(this);
        }
        ~watched_socket() { owner.watched_.erase(this); }
        watched_socket(const watched_socket&) = delete;
        watched_socket& operator=(const watched_socket&) = delete;

        net::stream conn;
        relay& owner;
        clock::time_point deadline = clock::time_point::max();
        bool idle = false;  // waiting for the next request: closed at once on shutdown
    };

    struct upstream {
        upstream(net::stream s, relay& r, std::shared_ptr<tunnel> t)
            : stream(std::move(s), r), tunnel_id(t->id), slot(std::move(t)) {}
        watched_socket stream;
        std::uint32_t tunnel_id;
        tunnel_slot slot;
        net::io_buffer in;  // bytes read from the tunnel but not yet forwarded
    };

    static std::string_view view(const net::io_buffer& b) {
        return {static_cast<const char*>(b.data().data()), b.size()};
    }

    // `ready`: a readiness wait has just succeeded, so the bytes are read without another wait.
    asio::awaitable<bool> read_more(watched_socket& s, net::io_buffer& in,
                                    std::chrono::seconds timeout, bool ready = false) {
        s.deadline = now_ + timeout;
        net::io_result result;
        if (ready)
            result = co_await s.conn.read_ready(in.prepare(read_chunk));
        else
            result = co_await s.conn.read_some(in.prepare(read_chunk));
        s.deadline = clock::time_point::max();
        in.commit(std::get<1>(result));
        co_return !std::get<0>(result);
    }

    asio::awaitable<bool> write_all(watched_socket& s, std::string_view bytes,
                                    std::chrono::seconds timeout, std::string_view more = {}) {
        s.deadline = now_ + timeout;
        auto [ec, n] = co_await s.conn.write(asio::buffer(bytes), asio::buffer(more));
        s.deadline = clock::time_point::max();
        co_return !ec;
    }

    asio::awaitable<void> reply_and_close(watched_socket& visitor, unsigned status,
                                          std::string_view reason, std::string text) {
        // Named, not a temporary inside co_await: GCC 12 can destroy such temporaries twice.
        const std::string response = http::relay_response(status, reason, text + "\n");
        co_await write_all(visitor, response, 10s);
        visitor.conn.shutdown_send();
    }

    asio::awaitable<void> serve_http_visitor(net::stream stream, const visit_guard& guard,
                                             bool https) {
        const std::string& from = guard.ip;
        watched_socket visitor(std::move(stream), *this);
        if (!guard.within_limit) {
            co_await reply_and_close(visitor, 429, "Too Many Requests",
                                     "porthole: too many connections from your address");
            co_return;
        }
        net::io_buffer in;
        std::optional<upstream> up;
        for (bool first = true;; first = false) {
            // A kept-alive connection may idle between requests; once bytes arrive, the head has
            // header_timeout to complete (slowloris).
            if (in.size() == 0 && https) {
                // OpenSSL may hold decrypted bytes already, so wait by reading.
                if (!co_await read_more(visitor, in, first ? cfg_.header_timeout : cfg_.idle_timeout))
                    co_return;
            } else if (in.size() == 0) {
                // Idle connections hold no buffer and no timer: the sweeper enforces the deadline.
                in.shrink_to_fit();
                if (up) up->in.shrink_to_fit();
                visitor.deadline = now_ + (first ? cfg_.header_timeout : cfg_.idle_timeout);
                visitor.idle = true;
                auto [wait_ec] = co_await visitor.conn.socket().async_wait(
                    tcp::socket::wait_read, use_tuple);
                visitor.idle = false;
                // No co_await inside || or &&: GCC 12 evaluates it even when short-circuited.
                if (wait_ec || draining_) co_return;
                const bool got = co_await read_more(visitor, in, cfg_.header_timeout, true);
                if (!got || in.size() == 0) co_return;
            }
            if (!co_await exchange(visitor, in, up, from, https)) co_return;
        }
    }

    // One request and its response on a visitor connection; false when the connection is done.
    // A frame of its own, so an idle keep-alive connection keeps none of this state.
    asio::awaitable<bool> exchange(watched_socket& visitor, net::io_buffer& in,
                                   std::optional<upstream>& up, const std::string& from,
                                   bool https) {
        http::framer<true> request(cfg_.max_header_bytes);
        std::optional<http::rejection> raw_head_problem;
        const auto head_deadline = clock::now() + cfg_.header_timeout;
        error_code ec;
        for (;;) {
            const std::size_t used = request.put(in.data(), ec);
            if (request.is_header_done()) raw_head_problem = http::check_raw_head(view(in).substr(0, used));
            in.consume(used);
            if (request.is_header_done() || (ec && ec != beast::http::error::need_more)) break;
            const auto left = std::chrono::duration_cast<std::chrono::seconds>(
                head_deadline - clock::now());
            bool got = false;
            if (left.count() > 0)
                got = co_await read_more(visitor, in, std::max(left, std::chrono::seconds(1)));
            if (!got) {
                if (in.size() != 0)
                    co_await reply_and_close(visitor, 408, "Request Timeout",
                                             "the request head did not arrive in time");
                co_return false;
            }
        }
        if (!request.is_header_done()) {
            const auto r = http::rejection_for(request, ec);
            if (visitor_log_.allow(clock::now()))
                spdlog::info("http: bad request from {}: {}{}", from, r.reason,
                             visitor_log_.suppressed_note());
            co_await reply_and_close(visitor, r.status, http::reason_phrase(r.status), r.reason);
            co_return false;
        }
        if (auto r = raw_head_problem ? raw_head_problem : http::check_request(request)) {
            if (visitor_log_.allow(clock::now()))
                spdlog::info("http: bad request from {}: {}{}", from, r->reason,
                             visitor_log_.suppressed_note());
            co_await reply_and_close(visitor, r->status, http::reason_phrase(r->status), r->reason);
            co_return false;
        }
        // Body bytes that came with the head are checked before anything reaches the tunnel,
        // so a malformed chunked body in the first packet never gets to the local service.
        std::size_t parsed_body = 0;
        if (!request.is_done() && in.size() != 0) {
            request.eager(true);
            parsed_body = request.put(in.data(), ec);
            if (ec && ec != beast::http::error::need_more) {
                const auto r = http::rejection_for(request, ec);
                if (visitor_log_.allow(clock::now()))
                    spdlog::info("http: bad request body from {}: {}{}", from, r.reason,
                                 visitor_log_.suppressed_note());
                co_await reply_and_close(visitor, r.status, http::reason_phrase(r.status),
                                         "malformed request body: " + r.reason);
                co_return false;
            }
        }
        const http::message_head& head = request.head();
        const std::string* host = head.find("host");
        if (cfg_.redirect_https && !https && host) {
            const auto colon = host->rfind(':');
            const std::string bare =
                colon == std::string::npos || host->back() == ']' ? *host : host->substr(0, colon);
            const std::string_view path = http::origin_form(head.target);
            const std::string_view slash = path.starts_with('/') ? "" : "/";
            const std::string location =
                https_port_ == 443
                    ? fmt::format("https://{}{}{}", bare, slash, path)
                    : fmt::format("https://{}:{}{}{}", bare, https_port_, slash, path);
            const std::string response = http::redirect_response(location);
            co_await write_all(visitor, response, 10s);
            visitor.conn.shutdown_send();
            co_return false;
        }
        auto name = host ? http::tunnel_name_for_host(*host, cfg_.domain) : std::nullopt;
        if (!name) {
            std::string message =
                fmt::format("porthole: this relay serves tunnels at NAME.{}; '{}' is not one",
                            cfg_.domain, host ? std::string_view(*host) : std::string_view());
            co_await reply_and_close(visitor, 404, "Not Found", std::move(message));
            co_return false;
        }
        auto found = http_tunnels_.find(*name);
        if (found == http_tunnels_.end()) {
            if (names_.held(*name, clock::now()))
                co_await reply_and_close(visitor, 502, "Bad Gateway",
                                         fmt::format("porthole: the client of tunnel '{}' is "
                                                     "reconnecting; try again shortly",
                                                     *name));
            else
                co_await reply_and_close(
                    visitor, 404, "Not Found",
                    fmt::format("porthole: no tunnel named '{}' is connected to this relay",
                                *name));
            co_return false;
        }
        std::shared_ptr<tunnel> t = found->second;
        if (up && (up->tunnel_id != t->id || up->in.size() != 0 ||
                   !net::idle_and_open(up->stream.conn.socket())))
            up.reset();
        if (!up) {
            if (t->active >= cfg_.max_connections_per_tunnel) {
                co_await reply_and_close(visitor, 503, "Service Unavailable",
                                         "porthole: this tunnel is at its connection limit");
                co_return false;
            }
            if (!t->new_connections.take(clock::now())) {
                co_await reply_and_close(visitor, 429, "Too Many Requests",
                                         "porthole: this tunnel is taking new connections "
                                         "too fast; retry shortly");
                co_return false;
            }
            auto stream = co_await open_stream(*t, from);
            if (!stream) {
                co_await reply_and_close(visitor, 502, "Bad Gateway",
                                         fmt::format("porthole: tunnel '{}' could not take the "
                                                     "request: {}",
                                                     t->name, stream.error()));
                co_return false;
            }
            up.emplace(std::move(*stream), *this, t);
        }
        const std::string forwarded = http::forward_request_head(
            head, {from, https ? "https" : "http", t->host_header, t->target, request.upgrade()});
        const bool sent = co_await write_all(up->stream, forwarded, cfg_.idle_timeout,
                                             view(in).substr(0, parsed_body));
        in.consume(parsed_body);
        if (!sent) {
            co_await reply_and_close(visitor, 502, "Bad Gateway",
                                     "porthole: the tunnel closed while sending the request");
            co_return false;
        }
        exchange_outcome outcome;
        if (request.is_done()) {  // no body: skip running a second coroutine alongside
            outcome.request_ok = true;
            co_await forward_response(*up, visitor, head.method == "HEAD", outcome);
        } else {
            co_await (forward_request_body(request, visitor, in, up->stream, outcome) &&
                      forward_response(*up, visitor, head.method == "HEAD", outcome));
        }
        if (outcome.response == response_state::none && outcome.bad_request_body) {
            co_await reply_and_close(visitor, 400, "Bad Request", "malformed request body");
            co_return false;
        }
        if (outcome.response == response_state::none) {
            co_await reply_and_close(
                visitor, 502, "Bad Gateway",
                fmt::format("porthole: tunnel '{}' {}", t->name,
                            outcome.bad_response ? "answered with a malformed response"
                                                 : "closed the connection without a response"));
            co_return false;
        }
        if (outcome.response == response_state::upgraded && outcome.request_ok) {
            if (in.size() != 0) {
                const bool sent = co_await write_all(up->stream, view(in), cfg_.idle_timeout);
                if (!sent) co_return false;
            }
            if (up->in.size() != 0) {
                const bool sent = co_await write_all(visitor, view(up->in), cfg_.idle_timeout);
                if (!sent) co_return false;
            }
            co_await net::pump(visitor.conn, up->stream.conn);
            co_return false;
        }
        if (outcome.response != response_state::complete || !outcome.request_ok ||
            !request.keep_alive() || !outcome.keep_alive || draining_) {
            visitor.conn.shutdown_send();
            co_return false;
        }
        if (!outcome.upstream_reusable) up.reset();
        co_return true;
    }

    enum class response_state { none, partial, complete, upgraded };
    struct exchange_outcome {
        bool request_ok = false;
        bool bad_request_body = false;
        bool bad_response = false;  // refused before a byte of it reached the visitor
        response_state response = response_state::none;
        bool keep_alive = false;
        bool upstream_reusable = false;
    };

    // Forwards the request body exactly as framed; leaves pipelined bytes after it in `in`.
    asio::awaitable<void> forward_request_body(http::framer<true>& request,
                                               watched_socket& visitor, net::io_buffer& in,
                                               watched_socket& upstream,
                                               exchange_outcome& outcome) {
        error_code ec;
        request.eager(true);
        while (!request.is_done()) {
            std::size_t used = 0;
            if (in.size() != 0) {
                used = request.put(in.data(), ec);
                if (ec && ec != beast::http::error::need_more) {
                    // Cut the tunnel stream: the local service sees an aborted request.
                    spdlog::info("http: malformed request body: {}", ec.message());
                    outcome.bad_request_body = true;
                    upstream.conn.close();
                    co_return;
                }
            }
            if (used > 0) {
                if (!co_await write_all(upstream, view(in).substr(0, used),
                                        cfg_.idle_timeout))
                    co_return;
                in.consume(used);
                continue;
            }
            if (!co_await read_more(visitor, in, cfg_.idle_timeout)) {
                upstream.conn.shutdown_send();
                co_return;
            }
        }
        outcome.request_ok = true;
    }

    // Forwards interim responses and the final response, exactly as framed.
    asio::awaitable<void> forward_response(upstream& up, watched_socket& visitor,
                                           bool head_request, exchange_outcome& outcome) {
        error_code ec;
        for (;;) {
            http::framer<false> response(64 * 1024, false);
            response.skip(head_request);
            response.eager(true);  // head and body in one write when they arrived together
            while (!response.is_done()) {
                std::size_t used = 0;
                if (up.in.size() != 0) {
                    used = response.put(up.in.data(), ec);
                    if (ec && ec != beast::http::error::need_more) {
                        spdlog::info("http: malformed response from the tunnel: {}",
                                     http::rejection_for(response, ec).reason);
                        outcome.bad_response = outcome.response == response_state::none;
                        break;
                    }
                }
                if (used > 0) {
                    if (!co_await write_all(visitor, view(up.in).substr(0, used),
                                            cfg_.idle_timeout))
                        break;
                    up.in.consume(used);
                    outcome.response = response_state::partial;
                    continue;
                }
                if (!co_await read_more(up.stream, up.in, cfg_.idle_timeout)) {
                    if (response.is_header_done() && response.need_eof())
                        response.put_eof(ec);  // a close-delimited body ends here
                    break;
                }
            }
            if (!response.is_done()) {
                // Stop the body forwarder too; the caller answers 502 if nothing was sent yet.
                error_code ignored;
                visitor.conn.socket().cancel(ignored);
                co_return;
            }
            const unsigned status = response.head().status;
            if (status == 101) {
                outcome.response = response_state::upgraded;
                co_return;
            }
            if (status >= 100 && status < 200) continue;
            outcome.response = response_state::complete;
            outcome.keep_alive = response.keep_alive();
            outcome.upstream_reusable = response.keep_alive() && !response.need_eof();
            co_return;
        }
    }

    // ---- shutdown --------------------------------------------------------------------------

    void begin_shutdown(int sig) {
        if (draining_) return;
        draining_ = true;
        spdlog::info("{} received: draining (up to {} s)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                     cfg_.shutdown_timeout.count());
        signals_.async_wait([this](error_code ec, int) {
            if (!ec) {
                spdlog::warn("second signal: stopping now");
                io_.stop();
            }
        });
        error_code ec;
        control_acceptor_.close(ec);
        http_acceptor_.close(ec);
        https_acceptor_.close(ec);
        sweep_.cancel();
        for (auto& [port, t] : tcp_tunnels_)
            if (t->acceptor) t->acceptor->close(ec);
        for (auto& [id, s] : sessions_) {
            s->out.push(protocol::goaway{"relay is shutting down"});  // not send(): no erasing here
            s->pool.close_idle();
        }
        for (auto* w : watched_)
            if (w->idle) w->conn.socket().cancel(ec);
        spawn(finish_shutdown());
    }

    asio::awaitable<void> finish_shutdown() {
        const auto deadline = clock::now() + cfg_.shutdown_timeout;
        asio::steady_timer t(io_);
        while (active_visitors_ > 0 && clock::now() < deadline) {
            t.expires_after(20ms);
            co_await t.async_wait(use_tuple);
        }
        if (active_visitors_ > 0)
            spdlog::warn("{} visitor connections still open at the deadline", active_visitors_);
        std::vector<std::shared_ptr<session>> all;
        for (auto& [id, s] : sessions_) all.push_back(s);
        for (auto& s : all) close_session(*s);
        io_.stop();
    }

    asio::io_context& io_;
    const config::server_config& cfg_;
    std::optional<net::server_tls> tls_;  // set when the client transport is TLS
    lease_table<std::string> names_;
    lease_table<std::uint16_t> ports_;
    tcp::acceptor control_acceptor_;
    tcp::acceptor http_acceptor_;
    std::unique_ptr<net::https_certificates> https_;  // set when visitors may use HTTPS
    tcp::acceptor https_acceptor_;
    std::uint16_t https_port_ = 0;
    asio::signal_set signals_;
    asio::steady_timer sweep_;
    std::uint16_t http_port_ = 0;
    std::uint32_t next_tunnel_id_ = 1;
    bool draining_ = false;
    std::size_t active_visitors_ = 0;
    std::unordered_map<std::string, std::shared_ptr<session>> sessions_;
    std::unordered_map<owner_key, std::weak_ptr<session>> by_owner_;
    std::unordered_map<std::string, std::shared_ptr<tunnel>> http_tunnels_;
    std::unordered_map<std::string, std::shared_ptr<tunnel>> tls_tunnels_;  // passthrough by SNI
    std::unordered_map<std::uint16_t, std::shared_ptr<tunnel>> tcp_tunnels_;
    std::unordered_set<watched_socket*> watched_;
    std::unordered_map<std::string, std::uint32_t> per_ip_;  // open visitor connections
    std::unordered_map<std::string, std::uint32_t> tunnels_per_token_;
    std::unordered_map<std::string, std::uint32_t> sessions_per_token_;
    // The limits that protect descriptors, no larger than the descriptor limit allows.
    std::uint32_t descriptors_ = descriptor_limit();
    std::uint32_t max_connections_per_ip_ =
        std::min(cfg_.max_connections_per_ip, std::max<std::uint32_t>(descriptors_ / 4, 8));
    std::uint32_t gate_total_ =
        std::min(cfg_.max_unauthenticated, std::max<std::uint32_t>(descriptors_ / 8, 4));
    std::uint32_t gate_per_ip_ = std::min(cfg_.max_unauthenticated_per_ip, gate_total_);
    handshake_gate gate_{gate_total_, gate_per_ip_};
    core::log_limiter handshake_log_{30};  // lines about strangers on the control port
    core::log_limiter visitor_log_{30};  // lines about visitors' bad requests and refusals
    std::unordered_map<std::string, core::log_limiter> session_logs_;
    clock::time_point now_ = clock::now();  // refreshed by the sweeper: deadlines are coarse
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

int run(const config::server_config& cfg) {
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
    relay r(io, cfg, std::move(tls), std::move(https));
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
