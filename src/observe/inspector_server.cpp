#include "observe/inspector_server.hpp"

#include "observe/inspector_page.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <deque>
#include <set>

namespace porthole::observe {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using json = nlohmann::json;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t request_body_limit = 8 * 1024 * 1024;
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

}  // namespace

struct inspector_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& io, capture_store& s, inspector_hooks h)
        : io(io), acceptor(io), store(s), hooks(std::move(h)) {}

    asio::io_context& io;
    tcp::acceptor acceptor;
    capture_store& store;
    inspector_hooks hooks;
    bool stopped = false;

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
            asio::co_spawn(io, serve(std::move(socket)), [](std::exception_ptr e) {
                if (e) spdlog::debug("inspector: a connection failed unexpectedly");
            });
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        auto self = shared_from_this();
        beast::flat_buffer buffer;
        for (;;) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.body_limit(request_body_limit);
            auto [ec, n] = co_await bhttp::async_read(socket, buffer, parser, use_tuple);
            if (ec) co_return;
            request req = parser.release();
            if (req.target() == "/api/events" && req.method() == bhttp::verb::get &&
                trusted_host(req[bhttp::field::host])) {
                co_await stream_events(socket);
                co_return;
            }
            response res = handle(req);
            auto [wec, written] = co_await bhttp::async_write(socket, res, use_tuple);
            if (wec || !res.keep_alive()) co_return;
        }
    }

    asio::awaitable<void> stream_events(tcp::socket& socket) {
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
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(head), use_tuple);
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
            auto [wec, written] = co_await asio::async_write(socket, asio::buffer(batch), use_tuple);
            if (wec) co_return;
        }
    }

    response handle(const request& req) {
        if (!trusted_host(req[bhttp::field::host]))
            return error_reply(req, bhttp::status::misdirected_request,
                               "the inspector answers only to localhost or an IP address");
        const std::string target(req.target());
        const std::string path = target.substr(0, target.find('?'));
        const bool changes = req.method() == bhttp::verb::post || req.method() == bhttp::verb::delete_;
        if (changes) {
            const auto type = req[bhttp::field::content_type];
            if (type.substr(0, 16) != "application/json")
                return error_reply(req, bhttp::status::unsupported_media_type,
                                   "send Content-Type: application/json");
            const auto origin = req[bhttp::field::origin];
            if (!origin.empty() && origin_host(origin) != req[bhttp::field::host])
                return error_reply(req, bhttp::status::forbidden,
                                   "cross-origin requests may not change the inspector");
        }
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
