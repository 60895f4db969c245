#include "client/agent.hpp"

#include "client/client_metrics.hpp"
#include "client/http_forwarder.hpp"
#include "client/terminal_view.hpp"
#include "core/heap_trim.hpp"
#include "core/printable.hpp"
#include "core/service_notify.hpp"
#include "core/use_tuple.hpp"
#include "net/connect.hpp"
#include "net/frame_io.hpp"
#include "net/pump.hpp"
#include "net/tls.hpp"
#include "observe/inspector_server.hpp"
#include "protocol/auth.hpp"

#include <boost/asio.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <iostream>
#include <random>
#include <unistd.h>
#include <unordered_set>

namespace porthole::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using protocol::tunnel_kind;

constexpr auto connect_timeout = 10s;
constexpr auto first_backoff = 200ms;
constexpr auto max_backoff = 10s;
constexpr std::uint16_t max_pool_size = 64;

void log_exception(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        spdlog::error("unexpected failure in a connection: {}", x.what());
    }
}

// "name" of "https://name.example.com:8443" (the relay's URL for a tunnel).
std::string first_label(const std::string& url) {
    auto start = url.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    return url.substr(start, url.find('.', start) - start);
}

std::string describe_target(const tunnel_spec& t) {
    return t.kind == tunnel_kind::http ? "http://" + t.target.to_string() : t.target.to_string();
}


constexpr std::size_t heads_only_memory = 1024 * 1024;  // --inspect=false: the terminal's list

struct session_state {
    session_state(net::stream s, const asio::any_io_executor& ex)
        : control(std::move(s)), out(ex, 1024 * 1024), heartbeat(ex) {}
    net::stream control;
    net::frame_queue out;
    asio::steady_timer heartbeat;
    protocol::id16 id{};
    protocol::key32 data_key{};
    unsigned data_opening = 0;  // data connections being opened and not yet handed a visitor
    std::chrono::milliseconds heartbeat_interval{10000};
    std::unordered_set<net::stream*> idle_data;
    std::uint64_t ping_number = 0;
    clock::time_point ping_sent;
    std::optional<clock::duration> rtt{};  // the last heartbeat's
    std::chrono::system_clock::time_point welcomed{};
    bool closed = false;

    void close() {
        if (closed) return;
        closed = true;
        out.close();
        heartbeat.cancel();
        control.close();
        for (auto* d : idle_data) d->close();
    }
};

enum class ending { lost, fatal, stopped };
struct session_end {
    ending how;
    std::string reason;
    reconnect_reason cause = reconnect_reason::lost;  // when `how` is lost
};

struct tunnel_state {
    tunnel_spec spec;
    std::uint32_t tunnel_id = 0;
    std::string url;
    bool ever_opened = false;
    observe::tunnel_metrics metrics;
    std::string qr_shown;  // the URL whose QR code was printed last (the live view draws its own)
    bool open = false;  // in the session up now
    tunnel_counters counters{};

    // As the inspector names it: the config file's name, or what other agents call a tunnel
    // given on the command line.
    std::string name() const { return spec.name.empty() ? "command_line" : spec.name; }
};

class agent {
public:
    agent(asio::io_context& io, const agent_config& cfg)
        : io_(io), cfg_(cfg), signals_(io, SIGINT, SIGTERM), backoff_timer_(io),
          client_id_(protocol::random_bytes<16>()),
          key_(protocol::key_of_token(cfg.token)),
          trust_{cfg.server_ca, cfg.server_fingerprint, cfg.insecure},
          store_(cfg.inspect.enabled ? cfg.inspect.memory : heads_only_memory,
                 cfg.inspect.enabled ? cfg.inspect.body_limit : 0) {
        for (const auto& spec : cfg.tunnels) tunnels_.push_back(tunnel_state{spec, 0, {}, false, {}, {}});
    }

    // Start-up work that needs no relay: the inspector's port and the TLS settings.
    tl::expected<void, std::string> prepare() {
        if (cfg_.inspect.enabled) {
            observe::inspector_hooks hooks{
                [this] { return tunnels_json(); },
                [this](const observe::exchange_record& original, std::string_view raw) {
                    return replay(original, raw);
                },
                [this] { return metrics_text(); }};
            auto server = observe::inspector_server::start(
                io_, cfg_.inspect.addr.value_or(config::endpoint{"127.0.0.1", 4040}),
                !cfg_.inspect.addr, store_, std::move(hooks));
            if (server)
                inspector_ = std::move(*server);
            else if (cfg_.inspect.addr)
                return tl::unexpected(server.error());
            else  // the default address: the tunnel matters more than its inspector
                spdlog::warn("{}", server.error());
        }
        if (!cfg_.tls_enabled()) return {};
        auto ctx = net::make_client_tls(trust_);
        if (!ctx) return tl::unexpected(ctx.error());
        tls_.emplace(std::move(*ctx));
        if (trust_.insecure)
            std::cerr << "porthole: WARNING: --insecure: the relay's certificate is not checked; "
                         "anyone on the network path can impersonate it\n";
        return {};
    }

    void start() {
        signals_.async_wait([this](error_code ec, int) {
            if (!ec) stop();
        });
        if (cfg_.live_view) {
            view_ = std::make_unique<terminal_view>(io_, store_, !cfg_.no_color, cfg_.qr);
            view_->set_relay(cfg_.server.to_string() + (tls_ ? "  (TLS)" : ""));
            if (inspector_) view_->set_inspector(inspector_->url());
            view_tunnels();
            view_->start();
        } else if (inspector_) {
            if (cfg_.json)
                emit({{"event", "inspector"}, {"url", inspector_->url()}});
            else
                std::cout << "porthole  inspector  " << inspector_->url() << std::endl;
        }
        if (!cfg_.live_view) store_.subscribe([this](observe::capture_store::event e,
                                                     const observe::exchange_record* r,
                                                     const observe::captured_frame*) {
            if (e == observe::capture_store::event::request) log_request(*r);
        });
        asio::co_spawn(io_, main_loop(), log_exception);
        asio::co_spawn(io_, trim_heap(), log_exception);
    }

    int exit_code() const { return exit_code_; }

private:
    // The relay this client uses now: one of --server's list, in turn.
    const config::endpoint& relay() const {
        return cfg_.servers.empty() ? cfg_.server : cfg_.servers[relay_index_];
    }

    // Tells the relay this client is leaving for good (its names are freed at once, not leased),
    // then stops; a relay that does not read the goodbye within a second is not waited for.
    void stop() {
        stopping_ = true;
        core::notify_stopping();
        backoff_timer_.cancel();
        if (!session_ || session_->closed) return io_.stop();
        session_->out.push(protocol::goaway{"client stopped"});
        session_->out.finish();
        backoff_timer_.expires_after(1s);
        backoff_timer_.async_wait([this](error_code) { io_.stop(); });
    }

    // Once a second: the heap a burst of visitors freed goes back to the OS.
    asio::awaitable<void> trim_heap() {
        asio::steady_timer tick(io_);
        core::heap_trim heap;
        while (!stopping_) {
            tick.expires_after(1s);
            co_await tick.async_wait(use_tuple);
            heap.tick();
        }
    }

    asio::awaitable<void> main_loop() {
        auto backoff = std::chrono::milliseconds(first_backoff);
        std::mt19937 rng(std::random_device{}());
        for (int attempt = 1; !stopping_; ++attempt) {
            bool was_ready = false;
            const session_end end = co_await run_session(was_ready);
            if (stopping_ || end.how == ending::stopped) break;
            // With a list of relays, the next one is tried: an unreachable relay, or one that
            // went away, is another relay's turn (every relay of a cluster serves the names).
            const std::size_t relays = std::max<std::size_t>(1, cfg_.servers.size());
            const bool unreachable = end.cause == reconnect_reason::unreachable;
            if (relays > 1 && (end.how == ending::lost || unreachable)) {
                relay_index_ = (relay_index_ + 1) % relays;
                if (end.how == ending::fatal && ++unreachable_in_row_ < relays) continue;
                if (end.how == ending::fatal) {
                    report_error(fmt::format("none of the {} relays answered; the last: {}",
                                             relays, end.reason));
                    exit_code_ = 1;
                    break;
                }
            }
            if (end.how == ending::fatal) {
                report_error(end.reason);
                exit_code_ = 1;
                break;
            }
            if (was_ready) {
                backoff = first_backoff;
                attempt = 1;
                unreachable_in_row_ = 0;
            }
            // Full jitter in [backoff/2, backoff]: a relay restart is not hit by every client at once.
            std::uniform_int_distribution<long> jitter(backoff.count() / 2, backoff.count());
            const auto delay = std::chrono::milliseconds(jitter(rng));
            counters_.reconnecting(end.cause);
            report_reconnecting(attempt, delay, end.reason);
            backoff_timer_.expires_after(delay);
            co_await backoff_timer_.async_wait(use_tuple);
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, max_backoff);
        }
        io_.stop();
    }

    // A connection to the relay, with TLS when the transport is encrypted.
    asio::awaitable<tl::expected<net::stream, std::string>> connect_relay() {
        const config::endpoint& to = relay();
        auto socket = co_await net::connect(to, connect_timeout);
        if (!socket) co_return tl::unexpected(socket.error());
        if (!tls_) co_return net::stream(std::move(*socket));
        net::tls_socket tls(std::move(*socket), *tls_);
        net::configure_client_stream(tls.native_handle(), trust_, to.host);
        // What tells a relay's HTTPS port (443 through a strict firewall) that a client calls.
        net::offer_control_alpn(tls.native_handle());
        auto done = co_await net::within(tls.handshake(net::tls_socket::role::client),
                                         connect_timeout);
        if (!done) co_return tl::unexpected(std::string("TLS handshake timed out"));
        if (const error_code ec = *done) {
            std::string why = ec.message();
            const long verify = SSL_get_verify_result(tls.native_handle());
            if (!trust_.fingerprint.empty() && verify != X509_V_OK)
                why = "the relay's certificate does not match --server-fingerprint";
            else if (verify != X509_V_OK)
                why = fmt::format("the relay's certificate was not accepted ({}); pass "
                                  "--server-fingerprint with the fingerprint the relay prints, "
                                  "or --server-ca",
                                  X509_verify_cert_error_string(verify));
            else if (why.find("wrong version number") != std::string::npos)
                why += " (does the relay speak TLS? it may need --control-tls on, or this "
                       "client --tls off)";
            co_return tl::unexpected("TLS: " + why);
        }
        co_return net::stream(std::move(tls));
    }

    asio::awaitable<session_end> run_session(bool& was_ready) {
        const std::string relay_name = relay().to_string();
        auto transport = co_await connect_relay();
        if (!transport) {
            const auto reason = fmt::format("cannot reach the relay at {}: {}", relay_name,
                                            transport.error());
            co_return session_end{ever_connected_ ? ending::lost : ending::fatal, reason,
                                  reconnect_reason::unreachable};
        }
        net::stream& stream = *transport;
        auto fail = [&](std::string why) {
            return session_end{ever_connected_ ? ending::lost : ending::fatal,
                               fmt::format("relay {}: {}", relay_name, why),
                               reconnect_reason::handshake};
        };
        // GCC 12 mis-destroys temporaries inside co_await conditions: name every frame first.
        const protocol::message hello = protocol::hello{
            protocol::oldest_protocol_version, protocol::protocol_version, client_id_,
            fmt::format("porthole/{}", PORTHOLE_VERSION)};
        auto ec = co_await net::write_frame(stream, hello, connect_timeout);
        if (ec) co_return fail("the connection closed during the handshake");
        auto challenge_frame = co_await net::read_frame(stream, connect_timeout);
        if (!challenge_frame)
            co_return fail("handshake failed: " + challenge_frame.error() +
                           (tls_ ? "" : " (if the relay uses TLS, pass --tls on)"));
        if (auto* e = std::get_if<protocol::error>(&*challenge_frame)) co_return refused(*e);
        auto* challenge = std::get_if<protocol::challenge>(&*challenge_frame);
        if (!challenge) co_return fail("unexpected reply to HELLO");
        // Version 2 has no field for policies: such a relay would serve the tunnel unguarded.
        if (challenge->version < 3 &&
            std::any_of(tunnels_.begin(), tunnels_.end(),
                        [](const tunnel_state& t) { return !t.spec.policies.empty(); }))
            co_return session_end{ending::fatal,
                                  fmt::format("relay {} speaks protocol version {}, which cannot "
                                              "carry a tunnel's policies (--basic-auth, "
                                              "--allow-ip, ...): upgrade the relay, or run "
                                              "without them",
                                              relay_name, challenge->version)};
        const auto session_proof = protocol::session_proof(key_, challenge->nonce, client_id_);
        const protocol::message auth = protocol::auth{session_proof};
        ec = co_await net::write_frame(stream, auth, connect_timeout);
        if (ec) co_return fail("the connection closed during the handshake");
        auto welcome_frame = co_await net::read_frame(stream, connect_timeout);
        if (!welcome_frame) co_return fail("handshake failed: " + welcome_frame.error());
        if (auto* e = std::get_if<protocol::error>(&*welcome_frame)) co_return refused(*e);
        auto* welcome = std::get_if<protocol::welcome>(&*welcome_frame);
        if (!welcome) co_return fail("unexpected reply to AUTH");
        ever_connected_ = true;

        auto s = std::make_shared<session_state>(std::move(stream), io_.get_executor());
        s->id = welcome->session_id;
        // The relay numbers tunnels per relay: an id of the last session could name another
        // tunnel now. Each gets its new id with TUNNEL_OPENED (ids start at 1).
        for (auto& t : tunnels_) t.tunnel_id = 0;
        // A relay without tokens hands the key over; with tokens, it comes from the token.
        s->data_key = welcome->open_data_key != protocol::key32{}
                          ? welcome->open_data_key
                          : protocol::data_key(key_, challenge->nonce, client_id_);
        s->heartbeat_interval = std::chrono::milliseconds(
            std::clamp<std::uint32_t>(welcome->heartbeat_ms, 1000, 600000));
        s->welcomed = std::chrono::system_clock::now();
        session_ = s;
        asio::co_spawn(io_, write_session(s), log_exception);
        asio::co_spawn(io_, heartbeat(s), log_exception);
        open_data_connections(s, welcome->pool_size);
        for (std::size_t i = 0; i < tunnels_.size(); ++i) {
            const auto& t = tunnels_[i];
            s->out.push(protocol::open_tunnel{
                static_cast<std::uint32_t>(i), t.spec.kind, t.spec.subdomain,
                t.spec.remote_port, t.spec.target.to_string(), t.spec.host_header,
                t.spec.group.empty() ? std::string() : protocol::group_digest(t.spec.group),
                t.spec.policies});
        }

        session_end end{ending::lost, "connection closed"};
        std::size_t opened = 0;
        while (!s->closed) {
            auto frame = co_await net::read_frame(s->control, s->heartbeat_interval * 3);
            if (!frame) {
                const bool silent = frame.error() == "timed out";
                end.reason = silent ? "no heartbeat from the relay"
                                    : "connection lost: " + frame.error();
                end.cause = silent ? reconnect_reason::heartbeat : reconnect_reason::lost;
                break;
            }
            if (auto* opened_frame = std::get_if<protocol::tunnel_opened>(&*frame)) {
                if (opened_frame->request_id >= tunnels_.size()) continue;
                auto& t = tunnels_[opened_frame->request_id];
                t.tunnel_id = opened_frame->tunnel_id;
                t.url = core::printable(opened_frame->url);
                remember_assignment(t);
                t.ever_opened = true;
                t.open = true;
                report_ready(t);
                if (++opened == tunnels_.size()) {
                    was_ready = true;
                    core::notify_ready(fmt::format("{} tunnel(s) open through {}", opened,
                                                   relay_name));
                }
            } else if (auto* refused_frame = std::get_if<protocol::tunnel_refused>(&*frame)) {
                end = {ending::fatal, fmt::format("the relay refused the tunnel: {}",
                                                  core::printable(refused_frame->message))};
                break;
            } else if (auto* p = std::get_if<protocol::ping>(&*frame)) {
                s->out.push(protocol::pong{p->opaque});
            } else if (auto* pong = std::get_if<protocol::pong>(&*frame)) {
                if (pong->opaque == s->ping_number) {
                    s->rtt = clock::now() - s->ping_sent;
                    if (view_)
                        view_->set_rtt(
                            std::chrono::duration_cast<std::chrono::microseconds>(*s->rtt));
                }
            } else if (auto* answered = std::get_if<protocol::policy_answered>(&*frame)) {
                record_policy_answer(*answered);
            } else if (auto* want = std::get_if<protocol::pool_want>(&*frame)) {
                open_data_connections(s, want->count);
            } else if (auto* bye = std::get_if<protocol::goaway>(&*frame)) {
                end.reason = "relay going away: " + core::printable(bye->reason);
                end.cause = reconnect_reason::goaway;
                break;
            } else if (auto* e = std::get_if<protocol::error>(&*frame)) {
                end = refused(*e);
                break;
            } else if (!std::holds_alternative<protocol::pong>(*frame)) {
                end.reason = "protocol error: unexpected frame from the relay";
                end.cause = reconnect_reason::protocol;
                break;
            }
        }
        for (auto& t : tunnels_) t.open = false;
        if (stopping_) end.how = ending::stopped;
        s->close();
        if (session_ == s) session_.reset();
        co_return end;
    }

    session_end refused(const protocol::error& e) {
        const bool retry = e.code == protocol::error_code::shutting_down;
        return {retry ? ending::lost : ending::fatal,
                fmt::format("the relay refused the connection ({}): {}", protocol::name_of(e.code),
                            core::printable(e.message)),
                reconnect_reason::goaway};
    }

    // After a relay restart the client asks for exactly what it had, so URLs stay the same.
    static void remember_assignment(tunnel_state& t) {
        if (t.spec.kind != tunnel_kind::tcp) {
            // A custom domain (a name with a dot) is asked for again as it is.
            if (t.spec.subdomain.find('.') == std::string::npos)
                t.spec.subdomain = first_label(t.url);
        } else {
            // A relay's URL that does not end in a port leaves the request as it was.
            const auto colon = t.url.rfind(':');
            std::uint16_t port = 0;
            if (colon != std::string::npos &&
                std::from_chars(t.url.data() + colon + 1, t.url.data() + t.url.size(), port).ec ==
                    std::errc())
                t.spec.remote_port = port;
        }
    }

    asio::awaitable<void> write_session(std::shared_ptr<session_state> s) {
        co_await s->out.run(s->control, connect_timeout);
        if (stopping_) {
            s->control.shutdown_send();
            io_.stop();
        }
        s->close();
    }

    // Pings at once (the first round-trip time) and then every interval.
    asio::awaitable<void> heartbeat(std::shared_ptr<session_state> s) {
        while (!s->closed) {
            s->ping_sent = clock::now();
            s->out.push(protocol::ping{++s->ping_number});
            s->heartbeat.expires_after(s->heartbeat_interval);
            co_await s->heartbeat.async_wait(use_tuple);
        }
    }

    // A request a policy of the relay answered itself: recorded (and logged) like one that came
    // through, with the policy named. What the relay sent is checked like a visitor's head.
    void record_policy_answer(const protocol::policy_answered& a) {
        const tunnel_state* t = tunnel_by_id(a.tunnel_id);
        const std::string_view raw = a.request_head;
        const auto line_end = raw.find("\r\n");
        const auto method_end = raw.find(' ');
        const auto target_end = raw.find(' ', method_end + 1);
        if (!t || line_end == std::string_view::npos || target_end == std::string_view::npos ||
            target_end > line_end || http::check_raw_head(raw) ||
            http::check_raw_head(a.response_head) || a.status < 100 || a.status > 599)
            return;
        http::message_head request;
        request.method = core::printable(raw.substr(0, method_end));
        request.target = core::printable(raw.substr(method_end + 1, target_end - method_end - 1));
        request.version = raw.substr(target_end + 1, line_end - target_end - 1) == "HTTP/1.0" ? 10
                                                                                          : 11;
        auto rec = store_.begin(t->name(), core::printable(a.visitor), std::move(request),
                                a.request_head);
        rec->policy = core::printable(a.policy);
        rec->response.emplace();
        rec->response->status = a.status;
        rec->response_head = a.response_head;
        rec->response_body.limit = store_.body_limit();
        rec->response_body.add(a.response_body);
        rec->state = observe::exchange_state::complete;
        store_.changed(*rec);
    }

    tunnel_state* tunnel_by_id(std::uint32_t id) {
        for (auto& t : tunnels_)
            if (t.ever_opened && t.tunnel_id == id) return &t;
        return nullptr;
    }

    // Opens up to `wanted` more data connections, never more than max_pool_size waiting at once
    // however often the relay asks: a hostile relay cannot make the client open thousands.
    void open_data_connections(const std::shared_ptr<session_state>& s, unsigned wanted) {
        const unsigned room = max_pool_size - std::min<unsigned>(max_pool_size, s->data_opening);
        for (unsigned i = 0; i < std::min(wanted, room); ++i) {
            ++s->data_opening;
            asio::co_spawn(io_, data_connection(s), log_exception);
        }
    }

    // One pooled data connection: proves itself, waits for a visitor, then carries it to the
    // local target.
    asio::awaitable<void> data_connection(std::shared_ptr<session_state> s) {
        struct opening {  // counted until a visitor arrives, however this ends
            session_state* s;
            void done() {
                if (s) --s->data_opening;
                s = nullptr;
            }
            ~opening() { done(); }
        } counted{s.get()};
        auto transport = co_await connect_relay();
        if (!transport || s->closed) co_return;
        net::stream& stream = *transport;
        const protocol::message hello = protocol::data_hello{s->id};
        auto ec = co_await net::write_frame(stream, hello, connect_timeout);
        if (ec) co_return;
        auto challenge = co_await net::read_frame(stream, connect_timeout);
        auto* nonce = challenge ? std::get_if<protocol::data_challenge>(&*challenge) : nullptr;
        if (!nonce) co_return;
        const protocol::message proof =
            protocol::data_auth{protocol::data_proof(s->data_key, s->id, nonce->nonce)};
        ec = co_await net::write_frame(stream, proof, connect_timeout);
        if (ec) co_return;
        s->idle_data.insert(&stream);
        auto frame = co_await net::read_frame(stream, {});
        s->idle_data.erase(&stream);
        if (!frame) co_return;
        auto* start = std::get_if<protocol::stream_start>(&*frame);
        if (!start) co_return;
        counted.done();
        if (!s->closed) open_data_connections(s, 1);
        tunnel_state* t = tunnel_by_id(start->tunnel_id);
        // A relay may hand a visitor to a pooled connection the instant a tunnel opens (one that
        // held visitors for its client to come back does), before TUNNEL_OPENED has arrived on
        // the control connection: wait a moment for it.
        for (int tries = 0; !t && tries < 200 && !s->closed; ++tries) {
            asio::steady_timer pause(io_, std::chrono::milliseconds(10));
            co_await pause.async_wait(use_tuple);
            t = tunnel_by_id(start->tunnel_id);
        }
        if (!t) {
            const protocol::message failed = protocol::stream_failed{"unknown tunnel"};
            co_await net::write_frame(stream, failed, connect_timeout);
            co_return;
        }
        if (t->spec.kind == tunnel_kind::http && reads_http(*t)) {
            // The local service is picked per request, by path: connected once the head is read.
            const protocol::message ready = protocol::stream_ready{};
            ec = co_await net::write_frame(stream, ready, connect_timeout);
            if (ec) co_return;
            asio::co_spawn(io_, forward_http(std::move(stream), start->visitor, http_tunnel_of(*t)),
                           log_exception);
            co_return;
        }
        auto local = co_await net::connect(t->spec.target, cfg_.target_connect_timeout);
        if (!local) {
            t->counters.failed(local_failure_of(local.error()));
            spdlog::warn("{}: cannot reach {} for visitor {}: {}", t->url,
                         t->spec.target.to_string(), core::printable(start->visitor),
                         local.error());
            const protocol::message failed = protocol::stream_failed{local.error()};
            co_await net::write_frame(stream, failed, connect_timeout);
            co_return;
        }
        const protocol::message ready = protocol::stream_ready{};
        ec = co_await net::write_frame(stream, ready, connect_timeout);
        if (ec) co_return;
        // The pump gets a small frame of its own; this larger one ends here.
        asio::co_spawn(io_,
                       carry(std::move(stream), net::stream(std::move(*local)), &t->metrics,
                             &t->counters.bytes),
                       log_exception);
    }

    static asio::awaitable<void> carry(net::stream relay_side, net::stream local,
                                       observe::tunnel_metrics* metrics, net::traffic* bytes) {
        ++metrics->connections;
        ++metrics->open;
        co_await net::pump(relay_side, local, *bytes);
        --metrics->open;
    }

    // Whether an HTTP tunnel's requests are read on this side: for path routes, the inspector and
    // the live view. Otherwise bytes pass untouched (splice() for bulk), the fastest path.
    bool reads_http(const tunnel_state& t) const {
        return !t.spec.routes.empty() || cfg_.inspect.enabled || cfg_.live_view;
    }

    client::http_tunnel http_tunnel_of(tunnel_state& t) {
        return {&t.spec,   t.name(),   first_label(t.url),
                &store_,   &t.metrics, cfg_.inspect.enabled,
                cfg_.target_connect_timeout, &t.counters};
    }

    // One scrape of /metrics: the counters as they are and the gauges read now.
    std::string metrics_text() const {
        client_gauges g;
        if (session_ && !session_->closed) {
            g.session_up = true;
            g.session_start = std::chrono::duration<double>(session_->welcomed.time_since_epoch())
                                  .count();
            if (session_->rtt)
                g.rtt_seconds = std::chrono::duration<double>(*session_->rtt).count();
            g.data_idle = session_->idle_data.size();
            g.data_connecting = session_->data_opening - std::min<std::uint64_t>(
                                                             session_->data_opening,
                                                             session_->idle_data.size());
        }
        for (const auto& t : tunnels_)
            g.tunnels.push_back({t.name(), protocol::name_of(t.spec.kind), t.open, t.metrics.open,
                                 t.metrics.connections, &t.counters});
        return write_metrics(counters_, g, observe::read_process_stats());
    }

    tl::expected<void, std::string> replay(const observe::exchange_record& original,
                                           std::string_view raw) {
        for (auto& t : tunnels_)
            if (t.spec.kind == tunnel_kind::http && t.name() == original.tunnel_name)
                return replay_http(raw, &original, http_tunnel_of(t), io_.get_executor());
        return tl::unexpected("the tunnel '" + original.tunnel_name + "' is not open in this client");
    }

    std::string tunnels_json() const {
        std::vector<observe::tunnel_info> list;
        for (const auto& t : tunnels_) {
            if (!t.ever_opened) continue;
            const std::string proto = t.spec.kind != tunnel_kind::http
                                          ? std::string(protocol::name_of(t.spec.kind))
                                      : t.url.starts_with("https:") ? "https"
                                                                     : "http";
            list.push_back({t.name(), t.url, proto, describe_target(t.spec), &t.metrics});
        }
        return observe::tunnels_json(list);
    }

    void view_tunnels() {
        if (!view_) return;
        std::vector<view_tunnel> list;
        for (const auto& t : tunnels_) {
            view_tunnel v{t.name(), t.ever_opened ? t.url : "", describe_target(t.spec), {},
                          &t.metrics};
            for (const auto& r : t.spec.routes)
                v.routes.push_back(fmt::format("{} -> {}", r.path, r.target.to_string()));
            list.push_back(std::move(v));
        }
        view_->set_tunnels(std::move(list));
    }

    // A finished request as one log line (text) or event (--json), gathered and written a moment
    // later, so a busy tunnel costs no write per request. Formatted by hand: this runs for every
    // request and a JSON document per line would cost more than forwarding it.
    void log_request(const observe::exchange_record& r) {
        using observe::exchange_state;
        if (r.state == exchange_state::pending || r.state == exchange_state::streaming ||
            r.state == exchange_state::closed)
            return;
        const unsigned status = r.response ? r.response->status : 0;
        const auto micros =
            std::chrono::duration_cast<std::chrono::microseconds>(r.duration).count();
        if (cfg_.json) {
            auto& out = pending_output_;
            out += R"({"event":"request","tunnel":)";
            append_json_string(out, r.tunnel_name);
            out += R"(,"method":)";
            append_json_string(out, r.request.method);
            out += R"(,"uri":)";
            append_json_string(out, r.request.target);
            out += R"(,"status":)";
            append_number(out, status);
            out.append(R"(,"state":")").append(observe::state_name(r.state));
            out += R"(","duration_ms":)";
            append_millis(out, micros, 3);
            out += R"(,"remote_addr":)";
            append_json_string(out, r.remote_addr);
            if (!r.policy.empty()) {
                out += R"(,"policy":)";
                append_json_string(out, r.policy);
            }
            out += "}\n";
        } else {
            auto& line = pending_output_;
            line.append("porthole  ").append(r.tunnel_name).append(" ").append(r.request.method);
            line.append(" ");
            core::append_printable(line, r.request.target);  // a visitor's bytes, on a terminal
            line.append(" -> ");
            if (status)
                append_number(line, status);
            else
                line.append(observe::state_name(r.state));
            line.append(" (");
            append_millis(line, micros, 1);
            line.append(" ms)");
            if (!r.policy.empty()) line.append(" answered by the relay's ").append(r.policy);
            line.append("\n");
        }
        if (!flush_pending_) {
            flush_pending_ = true;
            flush_timer_.expires_after(200ms);
            flush_timer_.async_wait([this](error_code) {
                flush_pending_ = false;
                flush_output();
            });
        }
    }

    static void append_number(std::string& out, std::uint64_t n) {
        char digits[24];
        out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
    }

    // Microseconds as milliseconds with `decimals` (1 or 3) places, rounded down.
    static void append_millis(std::string& out, std::int64_t micros, int decimals) {
        const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(micros, 0));
        append_number(out, us / 1000);
        char frac[3] = {static_cast<char>('0' + us / 100 % 10), static_cast<char>('0' + us / 10 % 10),
                        static_cast<char>('0' + us % 10)};
        out.append(".").append(frac, static_cast<std::size_t>(decimals));
    }

    static void append_json_string(std::string& out, std::string_view s) {
        out += '"';
        while (!s.empty()) {
            const auto plain = std::find_if(s.begin(), s.end(), [](char c) {
                const auto byte = static_cast<unsigned char>(c);
                return c == '"' || c == '\\' || byte < 0x20 || byte >= 0x80;
            });
            out.append(s.begin(), plain);
            s.remove_prefix(static_cast<std::size_t>(plain - s.begin()));
            if (s.empty()) break;
            const auto byte = static_cast<unsigned char>(s.front());
            if (byte == '"' || byte == '\\') {
                out += '\\';
                out += s.front();
            } else {
                // Targets are ASCII in practice; a stray byte must still leave valid JSON.
                static constexpr char hex[] = "0123456789abcdef";
                const char escaped[] = {'\\', 'u', '0', '0', hex[byte >> 4], hex[byte & 15]};
                out.append(escaped, sizeof escaped);
            }
            s.remove_prefix(1);
        }
        out += '"';
    }

    void flush_output() {
        if (pending_output_.empty()) return;
        std::cout << pending_output_ << std::flush;
        pending_output_.clear();
    }

    void emit(const nlohmann::json& event) {
        flush_output();
        std::cout << event.dump() << std::endl;
    }

    void report_ready(tunnel_state& t) {
        const std::string type(protocol::name_of(t.spec.kind));
        if (inspector_) inspector_->tunnels_changed();
        if (view_) {
            view_tunnels();
            view_->set_session("online", true);
            return;
        }
        if (cfg_.json) {
            nlohmann::json event{{"event", "ready"},
                                 {"type", type},
                                 {"url", t.url},
                                 {"target", describe_target(t.spec)}};
            if (!t.spec.name.empty()) event["name"] = t.spec.name;
            emit(event);
        } else {
            std::cout << fmt::format("porthole  {}{}  ->  {}",
                                     t.spec.name.empty() ? "" : t.spec.name + "  ", t.url,
                                     describe_target(t.spec))
                      << std::endl;
        }
        print_qr(t);
    }

    // Without the live view, a QR code goes to stdout only in text mode on a terminal; elsewhere
    // to stderr, so that stdout stays one line per event for whatever reads it.
    void print_qr(tunnel_state& t) {
        if (!cfg_.qr || t.url.empty() || t.url == t.qr_shown) return;
        t.qr_shown = t.url;
        const bool to_stdout = !cfg_.json && ::isatty(STDOUT_FILENO) == 1;
        std::ostream& out = to_stdout ? std::cout : std::cerr;
        const auto lines = qr_lines(t.url);
        if (lines.empty()) {
            out << "porthole: " << t.url << " is too long for a QR code" << std::endl;
            return;
        }
        std::string text;
        for (const auto& line : lines) text.append("  ").append(line).append("\n");
        out << text << std::flush;
    }

    void report_reconnecting(int attempt, std::chrono::milliseconds delay,
                             const std::string& reason) {
        core::notify_status(fmt::format("reconnecting (attempt {}): {}", attempt, reason));
        if (view_) {
            view_->set_session(fmt::format("reconnecting in {} ms (attempt {}): {}",
                                           delay.count(), attempt, reason),
                               false);
            return;
        }
        if (cfg_.json)
            emit({{"event", "reconnecting"},
                  {"attempt", attempt},
                  {"delay_ms", delay.count()},
                  {"reason", reason}});
        else
            std::cerr << fmt::format("porthole: {}; reconnecting in {} ms (attempt {})", reason,
                                     delay.count(), attempt)
                      << std::endl;
    }

    void report_error(const std::string& message) {
        view_.reset();  // back to the normal screen, so the error stays visible
        if (cfg_.json) emit({{"event", "error"}, {"message", message}});
        std::cerr << "porthole: error: " << message << std::endl;
    }

    asio::io_context& io_;
    const agent_config& cfg_;
    asio::signal_set signals_;
    asio::steady_timer backoff_timer_;
    const protocol::id16 client_id_;
    const protocol::token_key key_;
    const net::client_trust trust_;
    std::optional<asio::ssl::context> tls_;
    std::vector<tunnel_state> tunnels_;
    observe::capture_store store_;
    std::unique_ptr<observe::inspector_server> inspector_;
    std::unique_ptr<terminal_view> view_;
    asio::steady_timer flush_timer_{io_};
    std::string pending_output_;
    bool flush_pending_ = false;
    std::shared_ptr<session_state> session_;
    session_counters counters_{};
    bool ever_connected_ = false;
    bool stopping_ = false;
    int exit_code_ = 0;
    std::size_t relay_index_ = 0;  // which of cfg_.servers is in use
    std::size_t unreachable_in_row_ = 0;  // relays of the list that did not answer, in a row
};

// One thread. destroy_pending() shuts the services down, which destroys every handler still
// queued or waiting, and with them the coroutine frames suspended in them.
class agent_io : public asio::io_context {
public:
    agent_io() : asio::io_context(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO) {}
    void destroy_pending() { shutdown(); }
};

}  // namespace

int run(const agent_config& cfg) {
    agent_io io;
    agent a(io, cfg);
    if (auto ok = a.prepare(); !ok) {
        std::cerr << "porthole: error: " << ok.error() << "\n";
        return 1;
    }
    a.start();
    io.run();
    // Visitor connections still suspended at the stop count themselves in the agent's tunnels
    // as their frames go: they go now, while the agent exists.
    io.destroy_pending();
    return a.exit_code();
}

}  // namespace porthole::client
