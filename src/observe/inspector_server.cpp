#include "observe/inspector_server.hpp"

#include "observe/inspector_page.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <optional>
#include <set>
#include <utility>

namespace porthole::observe {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using json = nlohmann::json;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A page holds an event stream and a few fetches; past this many open connections a new one gets
// 503 and is closed at once.
constexpr std::size_t connection_limit = 64;
// From being ready for a request (idle keep-alive time included) to having its whole head.
constexpr auto head_timeout = std::chrono::seconds(10);
constexpr auto body_timeout = std::chrono::seconds(30);
constexpr auto write_timeout = std::chrono::seconds(30);
constexpr std::size_t small_body_limit = 16 * 1024;  // any request but a replay
constexpr std::size_t event_backlog_limit = 16 * 1024 * 1024;  // a page this far behind is cut off
constexpr std::size_t default_list_limit = 50;
constexpr int ports_to_try = 10;

using request = bhttp::request<bhttp::string_body>;
using response = bhttp::response<bhttp::string_body>;

// DNS rebinding defence: a name other than localhost could point anywhere tomorrow.
bool trusted_host(std::string_view host) {
    if (host.empty()) return false;
    if (host.front() == '[') {
        const auto close = host.find(']');
        if (close == std::string_view::npos) return false;
        error_code ec;
        asio::ip::make_address_v6(std::string(host.substr(1, close - 1)), ec);
        return !ec;
    }
    host = host.substr(0, host.find(':'));
    if (host == "localhost") return true;
    error_code ec;
    asio::ip::make_address_v4(std::string(host), ec);
    return !ec;
}

std::string origin_host(std::string_view origin) {
    const auto scheme = origin.find("://");
    return scheme == std::string_view::npos ? std::string() : std::string(origin.substr(scheme + 3));
}

std::string query_param(std::string_view target, std::string_view name) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
            std::string value;
            const auto raw = pair.substr(eq + 1);
            for (std::size_t i = 0; i < raw.size(); ++i) {
                if (raw[i] == '+') {
                    value.push_back(' ');
                } else if (unsigned byte = 0; raw[i] == '%' && i + 2 < raw.size() &&
                                              std::from_chars(raw.data() + i + 1, raw.data() + i + 3,
                                                              byte, 16)
                                                      .ptr == raw.data() + i + 3) {
                    value.push_back(static_cast<char>(byte));
                    i += 2;
                } else {
                    value.push_back(raw[i]);
                }
            }
            return value;
        }
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return {};
}

response reply(const request& req, bhttp::status status, std::string body,
               std::string_view type = "application/json") {
    response res{status, req.version()};
    res.set(bhttp::field::server, "porthole");
    res.set(bhttp::field::cache_control, "no-store");
    if (!body.empty() || status != bhttp::status::no_content) {
        res.set(bhttp::field::content_type, type);
        res.body() = std::move(body);
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

response error_reply(const request& req, bhttp::status status, std::string message) {
    return reply(req, status,
                 json{{"error", std::move(message)}}.dump(-1, ' ', false, json::error_handler_t::replace) +
                     "\n");
}

bool changes_state(const request& req) {
    return req.method() == bhttp::verb::post || req.method() == bhttp::verb::delete_;
}

bool is_replay(const request& req) {
    const auto target = req.target();
    return req.method() == bhttp::verb::post &&
           target.substr(0, target.find('?')) == "/api/requests/http";
}

// Past the limit a connection costs no coroutine and no buffer: a 503 written without waiting
// (a fresh socket's send buffer takes it whole), then closed.
void turn_away(tcp::socket& socket) {
    static const std::string busy = [] {
        const std::string body = R"({"error":"the inspector has too many open connections"})"
                                 "\n";
        return fmt::format("HTTP/1.1 503 Service Unavailable\r\nServer: porthole\r\n"
                           "Content-Type: application/json\r\nCache-Control: no-store\r\n"
                           "Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
                           body.size(), body);
    }();
    error_code ec;
    socket.non_blocking(true, ec);
    std::array<char, 4096> unread;
    socket.read_some(asio::buffer(unread), ec);  // bytes left unread turn the close into a reset
    socket.write_some(asio::buffer(busy), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
}

}  // namespace

struct inspector_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& io, capture_store& s, inspector_hooks h)
        : io(io), acceptor(io), store(s), hooks(std::move(h)) {}

    asio::io_context& io;
    tcp::acceptor acceptor;
    capture_store& store;
    inspector_hooks hooks;
    bool stopped = false;
    std::size_t open_connections = 0;

    // One open connection, counted from its accept until its coroutine frame is gone; it keeps
    // the server alive that long.
    class connection_slot {
    public:
        explicit connection_slot(std::shared_ptr<impl> owner) : owner_(std::move(owner)) {
            ++owner_->open_connections;
        }
        connection_slot(connection_slot&& other) noexcept = default;
        connection_slot& operator=(connection_slot&&) = delete;
        ~connection_slot() {
            if (owner_) --owner_->open_connections;
        }

    private:
        std::shared_ptr<impl> owner_;
    };

    // A page listening to /api/events.
    struct subscriber {
        explicit subscriber(const asio::any_io_executor& ex) : wake(ex) {}
        asio::steady_timer wake;
        std::deque<std::string> pending;
        std::size_t pending_bytes = 0;
        bool overflowed = false;
        void push(std::string event) {
            if (overflowed) return;
            pending_bytes += event.size();
            pending.push_back(std::move(event));
            if (pending_bytes > event_backlog_limit) overflowed = true;
            wake.cancel();
        }
    };
    std::set<subscriber*> subscribers;
    std::uint64_t store_token = 0;

    void broadcast(const std::string& event) {
        for (auto* s : subscribers) s->push(event);
    }

    void listen_to_store() {
        store_token = store.subscribe(
            [this](capture_store::event e, const exchange_record* r, const captured_frame* f) {
                if (subscribers.empty()) return;  // nobody watching: no JSON built
                switch (e) {
                case capture_store::event::request:
                    broadcast("event: request\ndata: " + record_json(*r) + "\n\n");
                    break;
                case capture_store::event::frame:
                    broadcast("event: frame\ndata: " + frame_json(*r, *f) + "\n\n");
                    break;
                case capture_store::event::clear: broadcast("event: clear\ndata: {}\n\n"); break;
                }
            });
    }

    asio::awaitable<void> accept() {
        auto self = shared_from_this();
        while (!stopped) {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec) {
                if (ec == asio::error::operation_aborted) co_return;
                asio::steady_timer pause(io, std::chrono::milliseconds(100));
                co_await pause.async_wait(use_tuple);
                continue;
            }
            if (open_connections >= connection_limit) {
                spdlog::debug("inspector: {} connections open, turning a new one away",
                              open_connections);
                turn_away(socket);
                continue;
            }
            asio::co_spawn(io,
                           serve(beast::tcp_stream(std::move(socket)), connection_slot(self)),
                           [](std::exception_ptr e) {
                               if (e) spdlog::debug("inspector: a connection failed unexpectedly");
                           });
        }
    }

    // What a replay may carry: an edited copy of a recorded request (its head, 64 KiB by default,
    // and as much body as is recorded), base64 in JSON.
    std::size_t replay_body_limit() const {
        return std::max<std::size_t>(1024 * 1024, (store.body_limit() + 64 * 1024) / 3 * 4 + 4096);
    }

    std::size_t body_limit_for(const request& head) const {
        return is_replay(head) ? replay_body_limit() : small_body_limit;
    }

    // The answer a request gets on its head alone, before a byte of its body is read.
    std::optional<response> refusal(const request& head,
                                    std::optional<std::uint64_t> length) const {
        if (!trusted_host(head[bhttp::field::host]))
            return error_reply(head, bhttp::status::misdirected_request,
                               "the inspector answers only to localhost or an IP address");
        if (changes_state(head)) {
            const auto type = head[bhttp::field::content_type];
            if (type.substr(0, 16) != "application/json")
                return error_reply(head, bhttp::status::unsupported_media_type,
                                   "send Content-Type: application/json");
            const auto origin = head[bhttp::field::origin];
            if (!origin.empty() && origin_host(origin) != head[bhttp::field::host])
                return error_reply(head, bhttp::status::forbidden,
                                   "cross-origin requests may not change the inspector");
        }
        if (length && *length > body_limit_for(head)) return too_large(head);
        return std::nullopt;
    }

    response too_large(const request& head) const {
        return error_reply(head, bhttp::status::payload_too_large,
                           fmt::format("this request may carry at most {} bytes of body",
                                       body_limit_for(head)));
    }

    asio::awaitable<void> serve(beast::tcp_stream stream, connection_slot) {
        beast::flat_buffer buffer;
        for (;;) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.body_limit(boost::none);  // refusal() judges the length by endpoint
            stream.expires_after(head_timeout);
            auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, use_tuple);
            if (ec) co_return;
            const auto length = parser.content_length();
            if (auto res = refusal(parser.get(), length ? std::optional(*length) : std::nullopt)) {
                // A body left unread leaves the connection fit for nothing more.
                res->keep_alive(parser.get().keep_alive() && parser.is_done());
                if (!co_await send(stream, *res)) co_return;
                continue;
            }
            if (!parser.is_done()) {
                if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
                    bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_,
                                                             parser.get().version()};
                    stream.expires_after(write_timeout);
                    auto [cec, c] = co_await bhttp::async_write(stream, go_on, use_tuple);
                    if (cec) co_return;
                }
                parser.body_limit(body_limit_for(parser.get()));
                stream.expires_after(body_timeout);
                auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
                if (bec == bhttp::error::body_limit) {
                    auto res = too_large(parser.get());
                    res.keep_alive(false);
                    co_await send(stream, res);
                }
                if (bec) co_return;
            }
            request req = parser.release();
            if (req.target() == "/api/events" && req.method() == bhttp::verb::get) {
                co_await stream_events(stream);
                co_return;
            }
            response res = handle(req);
            if (!co_await send(stream, res)) co_return;
        }
    }

    // False when the response could not be written, or the connection is to close after it.
    static asio::awaitable<bool> send(beast::tcp_stream& stream, response& res) {
        stream.expires_after(write_timeout);
        auto [ec, n] = co_await bhttp::async_write(stream, res, use_tuple);
        if (!ec && !res.keep_alive()) stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        co_return !ec && res.keep_alive();
    }

    asio::awaitable<void> stream_events(beast::tcp_stream& stream) {
        subscriber sub(io.get_executor());
        subscribers.insert(&sub);
        struct leave {
            std::set<subscriber*>& set;
            subscriber* s;
            ~leave() { set.erase(s); }
        } guard{subscribers, &sub};
        std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            "Server: porthole\r\nConnection: close\r\n\r\n";
        head += "event: tunnels\ndata: " + hooks.tunnels_json() + "\n\n";
        stream.expires_after(write_timeout);
        auto [ec, n] = co_await asio::async_write(stream, asio::buffer(head), use_tuple);
        if (ec) co_return;
        // A comment line every 15 s finds pages that went away.
        while (!stopped && !sub.overflowed) {
            if (sub.pending.empty()) {
                sub.wake.expires_after(std::chrono::seconds(15));
                co_await sub.wake.async_wait(use_tuple);
                if (sub.pending.empty()) sub.pending.push_back(": keep-alive\n\n");
            }
            std::string batch;
            while (!sub.pending.empty()) {
                batch += sub.pending.front();
                sub.pending.pop_front();
            }
            sub.pending_bytes = 0;
            stream.expires_after(write_timeout);
            auto [wec, written] =
                co_await asio::async_write(stream, asio::buffer(batch), use_tuple);
            if (wec) co_return;
        }
    }

    // A request that refusal() let through.
    response handle(const request& req) {
        const std::string target(req.target());
        const std::string path = target.substr(0, target.find('?'));
        if (path == "/" || path == "/index.html" || path.starts_with("/inspect")) {
            if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head)
                return error_reply(req, bhttp::status::method_not_allowed, "GET only");
            auto res = reply(req, bhttp::status::ok, std::string(inspector_page),
                             "text/html; charset=utf-8");
            res.set("Content-Security-Policy",
                    "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' "
                    "'unsafe-inline'; img-src 'self' data:");
            res.set("X-Frame-Options", "DENY");
            return res;
        }
        if (path == "/api/tunnels" && req.method() == bhttp::verb::get)
            return reply(req, bhttp::status::ok, hooks.tunnels_json());
        if (path == "/api/requests/http") {
            if (req.method() == bhttp::verb::get) {
                std::size_t limit = default_list_limit;
                const std::string given = query_param(target, "limit");
                if (!given.empty()) {
                    try {
                        limit = std::stoul(given);
                    } catch (const std::exception&) {
                        return error_reply(req, bhttp::status::bad_request,
                                           "limit must be a number");
                    }
                }
                return reply(req, bhttp::status::ok,
                             records_json(store.list(limit, query_param(target, "tunnel_name"))));
            }
            if (req.method() == bhttp::verb::delete_) {
                store.clear();
                return reply(req, bhttp::status::no_content, "");
            }
            if (req.method() == bhttp::verb::post) return replay(req);
            return error_reply(req, bhttp::status::method_not_allowed, "GET, POST or DELETE");
        }
        constexpr std::string_view one = "/api/requests/http/";
        if (path.starts_with(one) && req.method() == bhttp::verb::get) {
            auto r = store.find(std::string_view(path).substr(one.size()));
            if (!r) return error_reply(req, bhttp::status::not_found, "no request with that id");
            return reply(req, bhttp::status::ok, record_json(*r));
        }
        return error_reply(req, bhttp::status::not_found, "no such page or API: " + path);
    }

    response replay(const request& req) {
        const json body = json::parse(req.body(), nullptr, false);
        if (!body.is_object() || !body.contains("id") || !body["id"].is_string())
            return error_reply(req, bhttp::status::bad_request,
                               "send {\"id\": \"...\"}, optionally with \"raw\": BASE64");
        auto original = store.find(body["id"].get<std::string>());
        if (!original) return error_reply(req, bhttp::status::not_found, "no request with that id");
        std::string raw;
        if (body.contains("raw")) {
            if (!body["raw"].is_string())
                return error_reply(req, bhttp::status::bad_request, "raw must be a base64 string");
            auto decoded = base64_decode(body["raw"].get<std::string>());
            if (!decoded) return error_reply(req, bhttp::status::bad_request, "raw is not base64");
            raw = std::move(*decoded);
        } else {
            if (original->request_body.truncated())
                return error_reply(
                    req, bhttp::status::unprocessable_entity,
                    fmt::format("only {} of the body's {} bytes were captured; raise "
                                "--inspect-body-limit to replay it",
                                original->request_body.data.size(), original->request_body.size));
            raw = original->request_head + original->request_body.data;
        }
        auto ok = hooks.replay(*original, raw);
        if (!ok) return error_reply(req, bhttp::status::bad_request, ok.error());
        return reply(req, bhttp::status::no_content, "");
    }
};

inspector_server::inspector_server(std::shared_ptr<impl> i) : impl_(std::move(i)) {}

inspector_server::~inspector_server() {
    impl_->stopped = true;
    impl_->store.unsubscribe(impl_->store_token);
    error_code ec;
    impl_->acceptor.close(ec);
    for (auto* s : impl_->subscribers) s->wake.cancel();
}

tl::expected<std::unique_ptr<inspector_server>, std::string> inspector_server::start(
    asio::io_context& io, const config::endpoint& addr, bool next_free, capture_store& store,
    inspector_hooks hooks) {
    auto i = std::make_shared<impl>(io, store, std::move(hooks));
    error_code ec;
    const auto address = asio::ip::make_address(addr.host, ec);
    if (ec) return tl::unexpected(fmt::format("--inspect-addr: '{}' is not an IP address", addr.host));
    const int tries = next_free ? ports_to_try : 1;
    for (int n = 0; n < tries; ++n) {
        const tcp::endpoint ep(address, static_cast<std::uint16_t>(addr.port + n));
        i->acceptor = tcp::acceptor(io);
        i->acceptor.open(ep.protocol(), ec);
        if (!ec) i->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) i->acceptor.bind(ep, ec);
        if (!ec) i->acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (!ec) break;
    }
    if (ec)
        return tl::unexpected(fmt::format(
            "the inspector cannot listen on {}{}: {} (pick another with --inspect-addr, or "
            "--inspect=false)",
            addr.to_string(), next_free ? fmt::format(" or the {} ports after it", tries - 1) : "",
            ec.message()));
    i->listen_to_store();
    asio::co_spawn(io, i->accept(), asio::detached);
    return std::unique_ptr<inspector_server>(new inspector_server(std::move(i)));
}

std::string inspector_server::url() const {
    error_code ec;
    const auto ep = impl_->acceptor.local_endpoint(ec);
    return ep.address().is_v6() ? fmt::format("http://[{}]:{}", ep.address().to_string(), ep.port())
                                : fmt::format("http://{}:{}", ep.address().to_string(), ep.port());
}

void inspector_server::tunnels_changed() {
    if (impl_->subscribers.empty()) return;
    impl_->broadcast("event: tunnels\ndata: " + impl_->hooks.tunnels_json() + "\n\n");
}

}  // namespace porthole::observe
