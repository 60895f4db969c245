#include "admin/admin_server.hpp"

#include "admin/api.hpp"
#include "admin/dashboard_page.hpp"
#include "admin/event_feed.hpp"
#include "core/sha256.hpp"
#include "core/token_bucket.hpp"
#include "observe/local_http.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include <unistd.h>

namespace porthole::admin {

struct admin_server::state {
    admin_settings settings;
    relay_control& relay;
    std::optional<bearer_check> bearer;
    event_feed* feed = nullptr;  // null once the admin_server is gone
    std::uint64_t auth_failures = 0;
    // When a refusal from each address was last logged.
    std::unordered_map<std::string, core::token_bucket::clock::time_point> failure_logged;
};

namespace {

namespace local_http = observe::local_http;
using namespace std::chrono_literals;

constexpr unsigned socket_mode = 0660;
constexpr std::size_t connection_limit = 32;
constexpr std::size_t failure_log_entries = 1024;  // addresses remembered for the log's pace

// Root, the relay's own user, or a member of its group.
bool peer_allowed(const local_http::peer& p) {
    const auto uid = static_cast<std::int64_t>(::geteuid());
    const auto gid = static_cast<std::int64_t>(::getegid());
    if (p.uid == 0 || p.uid == uid || p.gid == gid) return true;
    return std::find(p.groups.begin(), p.groups.end(), gid) != p.groups.end();
}

// POST /api/upgrade {"binary": PATH, "wait": SECONDS}: answered once the new process serves.
// It starts a program, so only callers the kernel vouches for may ask: the socket, not TCP.
local_http::reply upgrade(admin_server::state& st, const local_http::request& req) {
    if (req.method != "POST") return local_http::error_reply(405, "POST only");
    if (!req.from.unix_socket)
        return local_http::error_reply(
            403, "an upgrade starts a program, so it is asked for on the admin socket only "
                 "(porthole admin upgrade on the relay's host)");
    std::string binary;
    long wait = 30;
    if (!req.body.empty()) {
        const auto doc = nlohmann::json::parse(req.body, nullptr, false);
        if (doc.is_discarded() || !doc.is_object())
            return local_http::error_reply(400, "the body is a JSON object");
        if (auto b = doc.find("binary"); b != doc.end()) {
            if (!b->is_string() || !b->get<std::string>().starts_with("/"))
                return local_http::error_reply(400, "binary is an absolute path");
            binary = b->get<std::string>();
        }
        if (auto w = doc.find("wait"); w != doc.end()) {
            if (!w->is_number_integer() || w->get<long>() < 1 || w->get<long>() > 600)
                return local_http::error_reply(400, "wait is a number of seconds, 1 to 600");
            wait = w->get<long>();
        }
    }
    auto later = std::make_shared<local_http::deferred_reply>();
    st.relay.upgrade(binary, std::chrono::seconds(wait), req.from.describe(),
                     [later](upgrade_result r) {
                         if (r.result == outcome::done)
                             later->complete(local_http::json_reply(
                                 200, nlohmann::json{{"pid", r.pid}, {"binary", r.binary}}.dump()));
                         else
                             later->complete(local_http::error_reply(
                                 r.result == outcome::conflict ? 409 : 422, r.message));
                     });
    local_http::reply r;
    r.later = std::move(later);
    return r;
}

// The dashboard's files: its page asks for the token itself, so they need none.
struct dashboard_file {
    std::string_view path;
    const std::string_view& text;
    std::string_view content_type;
};
const std::array<dashboard_file, 3> dashboard_files{{
    {"/", dashboard_html, "text/html; charset=utf-8"},
    {"/admin.js", dashboard_js, "text/javascript; charset=utf-8"},
    {"/admin.css", dashboard_css, "text/css; charset=utf-8"},
}};

// Tells the dashboard whether this listener wants the token, so it asks before calling the API.
constexpr std::string_view dashboard_auth_path = "/dashboard.json";

const dashboard_file* dashboard_file_at(std::string_view path) {
    for (const auto& f : dashboard_files)
        if (f.path == path) return &f;
    return nullptr;
}

// No inline script or style, nothing from elsewhere, no framing, no referrer.
local_http::reply dashboard_reply(const dashboard_file& f) {
    local_http::reply r;
    r.body = std::string(f.text);
    r.content_type = std::string(f.content_type);
    r.fields = {{"Content-Security-Policy",
                 "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                 "frame-ancestors 'none'"},
                {"X-Frame-Options", "DENY"},
                {"X-Content-Type-Options", "nosniff"},
                {"Referrer-Policy", "no-referrer"}};
    return r;
}

local_http::reply handle(admin_server::state& st, const local_http::request& req) {
    if (req.path == "/api/upgrade") return upgrade(st, req);
    const auto* file = dashboard_file_at(req.path);
    const bool read_only = file || req.path == dashboard_auth_path ||
                           req.path == "/api/events" || req.path == "/metrics";
    if (read_only && req.method != "GET") return local_http::error_reply(405, "GET only");
    if (file) return dashboard_reply(*file);
    if (req.path == dashboard_auth_path)
        return local_http::json_reply(
            200, req.from.unix_socket ? "{\"token\":\"none\"}\n" : "{\"token\":\"required\"}\n");
    if (req.path == "/api/events") {
        if (!st.feed) return local_http::error_reply(503, "the relay is stopping");
        return st.feed->subscribe();
    }
    if (req.path == "/metrics") {
        auto text = st.settings.metrics ? st.settings.metrics() : std::nullopt;
        if (!text) return local_http::error_reply(404, "this relay serves no metrics yet");
        local_http::reply r;
        r.body = std::move(*text);
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        return r;
    }
    if (!req.path.starts_with("/api/"))
        return local_http::error_reply(404, "no such page or API: " + req.path);
    const std::string limit = req.query("limit");
    const std::string url = req.query("url");
    const std::string prefix = req.query("prefix");
    const api_answer a = admin::handle(st.relay, api_request{req.method, req.path, req.body, limit,
                                                             req.from.describe(), url, prefix});
    return local_http::json_reply(a.status, a.body);
}

// TCP: every request but the dashboard's files carries the token. A miss is counted, and logged at most once a second
// per address.
std::optional<local_http::reply> admit(admin_server::state& st, const local_http::request& head) {
    if (head.method == "GET" && (dashboard_file_at(head.path) || head.path == dashboard_auth_path))
        return std::nullopt;
    if (st.bearer && (*st.bearer)(head.field("authorization"))) return std::nullopt;
    ++st.auth_failures;
    const std::string from = head.from.address.substr(0, head.from.address.rfind(':'));
    const auto now = core::token_bucket::clock::now();
    if (st.failure_logged.size() > failure_log_entries) st.failure_logged.clear();
    auto& last = st.failure_logged[from];
    if (now - last >= 1s) {
        last = now;
        spdlog::warn("admin: refused a request from {}: {} bearer token", from,
                     head.field("authorization").empty() ? "no" : "a wrong");
    }
    auto r = local_http::error_reply(401, "send Authorization: Bearer TOKEN with the admin token");
    r.fields.emplace_back("WWW-Authenticate", "Bearer");
    return r;
}

local_http::options options_for(const std::shared_ptr<admin_server::state>& st) {
    local_http::options opts;
    opts.name = "the admin API";
    opts.connection_limit = connection_limit;
    opts.hosts = st->settings.hosts;
    opts.origin_on_every_request = true;
    return opts;
}

}  // namespace

bearer_check::bearer_check(std::string_view token) : digest_(core::sha256(token)) {}

bool bearer_check::operator()(std::string_view authorization) const {
    constexpr std::string_view scheme = "Bearer ";
    std::string_view given;
    if (authorization.size() > scheme.size() &&
        std::equal(scheme.begin(), scheme.end(), authorization.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
        given = authorization.substr(scheme.size());
    const auto digest = core::sha256(given);
    return CRYPTO_memcmp(digest.data(), digest_.data(), digest.size()) == 0 && !given.empty();
}

tl::expected<std::unique_ptr<admin_server>, std::string> admin_server::start(
    boost::asio::io_context& io, admin_settings settings, relay_control& relay) {
    std::unique_ptr<admin_server> server(new admin_server());
    auto st = std::make_shared<state>(
        state{std::move(settings), relay, std::nullopt, nullptr, 0, {}});
    if (!st->settings.token.empty()) st->bearer.emplace(st->settings.token);
    server->state_ = st;
    server->feed_ = std::make_unique<event_feed>(io, relay);
    st->feed = server->feed_.get();
    const auto& path = st->settings.socket_path;
    if (!path.empty()) {
        if (st->settings.socket_fd < 0 && local_http::socket_answers(path))
            return tl::unexpected(fmt::format(
                "another relay answers on {}; replace it with porthole admin upgrade, or give "
                "this one another admin_socket",
                path));
        auto opts = options_for(st);
        opts.accept_peer = [](const local_http::peer& p) {
            if (peer_allowed(p)) return true;
            spdlog::warn("admin: refused uid {} (pid {}) on the socket: not root, the relay's "
                         "user or its group",
                         p.uid, p.pid);
            return false;
        };
        auto handler = [st](const local_http::request& req) { return handle(*st, req); };
        auto listening =
            st->settings.socket_fd >= 0
                ? local_http::server::adopt_unix(io, st->settings.socket_fd, path,
                                                 std::move(opts), std::move(handler))
                : local_http::server::listen_unix(io, path, socket_mode, std::move(opts),
                                                  std::move(handler));
        if (!listening)
            return tl::unexpected(fmt::format(
                "admin_socket {}: {} (systemd's RuntimeDirectory= makes the directory; "
                "--admin-socket PATH puts it elsewhere, --admin-socket \"\" turns it off)",
                path, listening.error()));
        server->unix_ = std::move(*listening);
    }
    if (!st->settings.tcp_host.empty()) {
        if (!st->bearer) return tl::unexpected(std::string("admin_addr needs admin_token"));
        auto opts = options_for(st);
        opts.admit = [st](const local_http::request& head) { return admit(*st, head); };
        auto handler = [st](const local_http::request& req) { return handle(*st, req); };
        auto listening =
            st->settings.tcp_fd >= 0
                ? local_http::server::adopt_tcp(io, st->settings.tcp_fd, std::move(opts),
                                                std::move(handler))
                : local_http::server::listen_tcp(io, st->settings.tcp_host,
                                                 st->settings.tcp_port, 1, std::move(opts),
                                                 std::move(handler));
        if (!listening)
            return tl::unexpected(fmt::format("admin_addr {}:{}: {}", st->settings.tcp_host,
                                              st->settings.tcp_port, listening.error()));
        server->tcp_ = std::move(*listening);
    }
    return server;
}

admin_server::~admin_server() {
    // A connection may outlive the server by a moment; it finds no feed then.
    state_->feed = nullptr;
    feed_.reset();
}

int admin_server::socket_fd() const { return unix_ ? unix_->listener_fd() : -1; }

int admin_server::tcp_fd() const { return tcp_ ? tcp_->listener_fd() : -1; }

bool admin_server::answering() const {
    return (unix_ && unix_->answering()) || (tcp_ && tcp_->answering());
}

void admin_server::stop_accepting() {
    if (unix_) unix_->stop_accepting_keep_file();
    if (tcp_) tcp_->stop_accepting_keep_file();
}

std::uint64_t admin_server::auth_failures() const { return state_->auth_failures; }

std::string admin_server::socket_path() const { return unix_ ? unix_->where() : std::string(); }

std::string admin_server::tcp_address() const { return tcp_ ? tcp_->where() : std::string(); }

}  // namespace porthole::admin
