#include "observe/inspector_server.hpp"

#include "observe/inspector_page.hpp"
#include "observe/local_http.hpp"
#include "observe/prom_text.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <utility>

namespace porthole::observe {
namespace {

using json = nlohmann::json;
using local_http::error_reply;
using local_http::json_reply;
using local_http::reply;
using local_http::request;

// A page holds an event stream and a few fetches; past this many open connections a new one gets
// 503 and is closed at once.
constexpr std::size_t connection_limit = 64;
constexpr std::size_t small_body_limit = 16 * 1024;  // any request but a replay
constexpr std::size_t event_backlog_limit = 16 * 1024 * 1024;  // a page this far behind is cut off
constexpr std::size_t default_list_limit = 50;
constexpr int ports_to_try = 10;

bool is_replay(const request& req) {
    return req.method == "POST" && req.path == "/api/requests/http";
}

}  // namespace

struct inspector_server::impl : std::enable_shared_from_this<impl> {
    impl(capture_store& s, inspector_hooks h) : store(s), hooks(std::move(h)) {}

    capture_store& store;
    inspector_hooks hooks;
    std::set<local_http::event_stream*> subscribers;  // pages listening to /api/events
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

    // What a replay may carry: an edited copy of a recorded request (its head, 64 KiB by default,
    // and as much body as is recorded), base64 in JSON.
    std::size_t body_limit_for(const request& head) const {
        if (!is_replay(head)) return small_body_limit;
        return std::max<std::size_t>(1024 * 1024, (store.body_limit() + 64 * 1024) / 3 * 4 + 4096);
    }

    reply events() {
        auto stream = std::make_shared<local_http::event_stream>(event_backlog_limit);
        subscribers.insert(stream.get());
        stream->on_end([self = shared_from_this(), s = stream.get()] { self->subscribers.erase(s); });
        reply r;
        r.events = std::move(stream);
        r.body = "event: tunnels\ndata: " + hooks.tunnels_json() + "\n\n";
        return r;
    }

    // A request that local_http's checks let through.
    reply handle(const request& req) {
        const std::string& path = req.path;
        if (path == "/api/events" && req.method == "GET") return events();
        if (path == "/" || path == "/index.html" || path.starts_with("/inspect")) {
            if (req.method != "GET" && req.method != "HEAD")
                return error_reply(405, "GET only");
            reply res;
            res.body = std::string(inspector_page);
            res.content_type = "text/html; charset=utf-8";
            res.fields = {{"Content-Security-Policy",
                           "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src "
                           "'self' 'unsafe-inline'; img-src 'self' data:"},
                          {"X-Frame-Options", "DENY"}};
            return res;
        }
        if (path == "/metrics" && hooks.metrics) {
            if (req.method != "GET") return error_reply(405, "GET only");
            reply res;
            res.body = hooks.metrics();
            res.content_type = std::string(prom_content_type);
            return res;
        }
        if (path == "/api/tunnels" && req.method == "GET")
            return json_reply(200, hooks.tunnels_json());
        if (path == "/api/requests/http") {
            if (req.method == "GET") {
                std::size_t limit = default_list_limit;
                const std::string given = req.query("limit");
                if (!given.empty()) {
                    try {
                        limit = std::stoul(given);
                    } catch (const std::exception&) {
                        return error_reply(400, "limit must be a number");
                    }
                }
                return json_reply(200,
                                  records_json(store.list(limit, req.query("tunnel_name"))));
            }
            if (req.method == "DELETE") {
                store.clear();
                return json_reply(204, "");
            }
            if (req.method == "POST") return replay(req);
            return error_reply(405, "GET, POST or DELETE");
        }
        constexpr std::string_view one = "/api/requests/http/";
        if (path.starts_with(one) && req.method == "GET") {
            auto r = store.find(std::string_view(path).substr(one.size()));
            if (!r) return error_reply(404, "no request with that id");
            return json_reply(200, record_json(*r));
        }
        return error_reply(404, "no such page or API: " + path);
    }

    reply replay(const request& req) {
        const json body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("id") || !body["id"].is_string())
            return error_reply(400, "send {\"id\": \"...\"}, optionally with \"raw\": BASE64");
        auto original = store.find(body["id"].get<std::string>());
        if (!original) return error_reply(404, "no request with that id");
        std::string raw;
        if (body.contains("raw")) {
            if (!body["raw"].is_string()) return error_reply(400, "raw must be a base64 string");
            auto decoded = base64_decode(body["raw"].get<std::string>());
            if (!decoded) return error_reply(400, "raw is not base64");
            raw = std::move(*decoded);
        } else {
            if (original->request_body.truncated())
                return error_reply(
                    422, fmt::format("only {} of the body's {} bytes were captured; raise "
                                     "--inspect-body-limit to replay it",
                                     original->request_body.data.size(),
                                     original->request_body.size));
            raw = original->request_head + original->request_body.data;
        }
        auto ok = hooks.replay(*original, raw);
        if (!ok) return error_reply(400, ok.error());
        return json_reply(204, "");
    }
};

inspector_server::inspector_server(std::shared_ptr<impl> i,
                                   std::unique_ptr<local_http::server> http)
    : impl_(std::move(i)), http_(std::move(http)) {}

inspector_server::~inspector_server() {
    impl_->store.unsubscribe(impl_->store_token);
    http_.reset();  // ends the event streams
}

tl::expected<std::unique_ptr<inspector_server>, std::string> inspector_server::start(
    boost::asio::io_context& io, const config::endpoint& addr, bool next_free,
    capture_store& store, inspector_hooks hooks) {
    auto i = std::make_shared<impl>(store, std::move(hooks));
    local_http::options opts;
    opts.name = "the inspector";
    opts.connection_limit = connection_limit;
    opts.body_limit_for = [i](const request& head) { return i->body_limit_for(head); };
    const int tries = next_free ? ports_to_try : 1;
    auto http = local_http::server::listen_tcp(
        io, addr.host, addr.port, tries, std::move(opts),
        [i](const request& req) { return i->handle(req); });
    if (!http) {
        if (http.error().ends_with("is not an IP address"))
            return tl::unexpected("--inspect-addr: " + http.error());
        return tl::unexpected(fmt::format(
            "the inspector cannot listen on {}{}: {} (pick another with --inspect-addr, or "
            "--inspect=false)",
            addr.to_string(), next_free ? fmt::format(" or the {} ports after it", tries - 1) : "",
            http.error()));
    }
    i->listen_to_store();
    return std::unique_ptr<inspector_server>(new inspector_server(std::move(i), std::move(*http)));
}

std::string inspector_server::url() const { return "http://" + http_->where(); }

void inspector_server::tunnels_changed() {
    if (impl_->subscribers.empty()) return;
    impl_->broadcast("event: tunnels\ndata: " + impl_->hooks.tunnels_json() + "\n\n");
}

}  // namespace porthole::observe
