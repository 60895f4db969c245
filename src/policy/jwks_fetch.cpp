#include "policy/jwks_fetch.hpp"

#include "config/site_config.hpp"
#include "core/printable.hpp"
#include "http/message_head.hpp"
#include "net/frame_io.hpp"
#include "policy/jwt_auth.hpp"
#include "upstream/backend_connect.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace porthole::policy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_jwks_body = 1024 * 1024;
constexpr std::size_t max_jwks_head = 64 * 1024;
constexpr auto connect_timeout = 5s;
constexpr auto fetch_timeout = 10s;  // connect, request and the whole answer
constexpr auto first_retry = std::chrono::milliseconds(1s);
constexpr auto longest_retry = std::chrono::milliseconds(5min);

std::string seconds_text(std::chrono::milliseconds d) {
    return d.count() % 1000 == 0 ? fmt::format("{} s", d.count() / 1000)
                                 : fmt::format("{} ms", d.count());
}

}  // namespace

tl::expected<std::optional<std::string>, std::string> fetched_body(std::string_view bytes, bool eof,
                                                                   std::size_t max_body) {
    http::framer<false> parser(max_jwks_head, false);
    http::body_capture body;
    body.limit = max_body;
    parser.capture_body(&body);
    boost::beast::error_code ec;
    std::string_view rest = bytes;
    while (!parser.is_done()) {
        const std::size_t used = parser.put(asio::const_buffer(rest.data(), rest.size()), ec);
        if (ec == boost::beast::http::error::need_more) break;
        if (ec) return tl::unexpected(fmt::format("a malformed HTTP response ({})", ec.message()));
        if (parser.is_header_done() && parser.head().status != 200)
            return tl::unexpected(fmt::format("the server answered {}", parser.head().status));
        if (body.truncated() || used == 0) break;
        rest.remove_prefix(used);
    }
    ec = {};
    if (body.truncated())
        return tl::unexpected(fmt::format("the answer is over {} bytes", max_body));
    if (!parser.is_done() && eof && parser.is_header_done() && parser.need_eof()) {
        parser.put_eof(ec);
        if (ec) return tl::unexpected(fmt::format("a malformed HTTP response ({})", ec.message()));
    }
    if (parser.is_done()) return std::optional<std::string>(std::move(body.data));
    if (eof) return tl::unexpected(std::string("the server closed before its answer was whole"));
    return std::optional<std::string>();
}

class jwks_fetcher : public std::enable_shared_from_this<jwks_fetcher> {
public:
    jwks_fetcher(std::string url, config::upstream_member origin, std::string target,
                 std::vector<tcp::endpoint> addresses, std::optional<upstream::backend_tls> tls,
                 std::chrono::milliseconds refresh)
        : url_(std::move(url)),
          origin_(std::move(origin)),
          target_(std::move(target)),
          addresses_(std::move(addresses)),
          tls_(std::move(tls)),
          refresh_(refresh) {}

    std::shared_ptr<key_ring> ring = std::make_shared<key_ring>();

    void refresh_at_most(std::chrono::milliseconds every) { refresh_ = std::min(refresh_, every); }

    void start(const asio::any_io_executor& ex) {
        if (timer_) return;  // running already: a reload starts only the rings it added
        timer_.emplace(ex);
        asio::co_spawn(ex, run(shared_from_this()), [](std::exception_ptr e) {
            if (e) spdlog::error("a jwks_url fetch failed unexpectedly");
        });
    }

    void stop() {
        stopped_ = true;
        if (timer_) timer_->cancel();
    }

private:
    // `self` keeps the fetcher while the loop runs (the relay may let go of it first).
    static asio::awaitable<void> run(std::shared_ptr<jwks_fetcher> self) {
        auto retry = first_retry;
        while (!self->stopped_) {
            auto fetched = co_await net::within(self->fetch(), fetch_timeout);
            if (self->stopped_) co_return;
            std::string problem;
            if (!fetched) {
                problem = "timed out";
            } else if (!*fetched) {
                problem = fetched->error();
            } else if (auto set = parse_jwks(**fetched); !set) {
                problem = fmt::format("not a JWK Set: {}", set.error());
            } else if (set->keys.empty()) {
                problem = "no key a jwt policy can use (RSA, EC P-256 or Ed25519 for signatures)";
                for (const auto& skipped : set->skipped) problem += "; " + skipped;
            } else {
                self->take(std::move(*set));
                retry = first_retry;
            }
            auto wait = self->refresh_;
            if (!problem.empty()) {
                wait = std::min(retry, self->refresh_);
                retry = std::min(retry * 2, longest_retry);
                spdlog::warn(
                    "jwks_url {}: {}; {}; trying again in {}", self->url_, problem,
                    self->ring->keys.empty()
                        ? std::string("its jwt policies answer 401 until a fetch succeeds")
                        : fmt::format("keeping the {} key{} it had", self->ring->keys.size(),
                                      self->ring->keys.size() == 1 ? "" : "s"),
                    seconds_text(wait));
            }
            self->timer_->expires_after(wait);
            co_await self->timer_->async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }

    void take(jwk_set set) {
        if (set.keys == ring->keys) return;
        std::string kids;
        for (const auto& k : set.keys) kids += (kids.empty() ? "" : ", ") + key_name(k);
        spdlog::info("jwks_url {}: {} key{} ({}){}", url_, set.keys.size(),
                     set.keys.size() == 1 ? "" : "s", kids,
                     set.skipped.empty() ? "" : fmt::format("; {} skipped", set.skipped.size()));
        ring->keys = std::move(set.keys);
        ++ring->generation;
    }

    static std::string key_name(const jwk& k) {
        return k.kid.empty() ? std::string("no kid") : "kid " + core::printable(k.kid);
    }

    // The response body, or why there is none.
    asio::awaitable<tl::expected<std::string, std::string>> fetch() {
        auto conn = co_await upstream::connect_backend(origin_, addresses_, connect_timeout,
                                                       tls_ ? &*tls_ : nullptr);
        if (!conn) co_return tl::unexpected(conn.error());
        const bool https = origin_.kind == config::upstream_member::scheme::https;
        const bool default_port = origin_.port == (https ? 443 : 80);
        const std::string host = origin_.host.find(':') != std::string::npos
                                     ? fmt::format("[{}]", origin_.host)
                                     : origin_.host;
        const std::string request = fmt::format(
            "GET {} HTTP/1.1\r\nHost: {}{}\r\nAccept: application/jwk-set+json, "
            "application/json\r\nUser-Agent: porthole/" PORTHOLE_VERSION
            "\r\nConnection: close\r\n\r\n",
            target_, host, default_port ? std::string() : fmt::format(":{}", origin_.port));
        if (auto [ec, n] = co_await conn->write(asio::buffer(request)); ec)
            co_return tl::unexpected(ec.message());
        std::string bytes;
        char buf[16 * 1024];
        for (;;) {
            auto [ec, n] = co_await conn->read_some(asio::buffer(buf));
            bytes.append(buf, n);
            const bool eof = net::is_end_of_stream(ec);
            if (ec && !eof) co_return tl::unexpected(ec.message());
            auto body = fetched_body(bytes, eof, max_jwks_body);
            if (!body) co_return tl::unexpected(body.error());
            if (*body) co_return std::move(**body);
            if (bytes.size() > max_jwks_head + max_jwks_body + 64 * 1024)
                co_return tl::unexpected(std::string("the answer is too large"));
        }
    }

    std::string url_;
    config::upstream_member origin_;
    std::string target_;
    std::vector<tcp::endpoint> addresses_;
    std::optional<upstream::backend_tls> tls_;
    std::chrono::milliseconds refresh_;
    std::optional<asio::steady_timer> timer_;
    bool stopped_ = false;
};

jwks_sources::jwks_sources() = default;
jwks_sources::~jwks_sources() = default;

tl::expected<void, std::string> jwks_sources::add(
    const std::vector<config::policy_config>& configs) {
    for (const auto& c : configs) {
        const auto* s = std::get_if<config::jwt_settings>(&c.settings);
        if (!s || s->jwks_url.empty()) continue;
        if (auto known = fetchers_.find(s->jwks_url); known != fetchers_.end()) {
            known->second->refresh_at_most(s->jwks_refresh);
            continue;
        }
        const auto parts = config::split_url(s->jwks_url);
        if (!parts) return tl::unexpected(fmt::format("jwks_url {}", parts.error()));
        auto origin = config::parse_member(parts->first);
        if (!origin) return tl::unexpected(fmt::format("jwks_url {}", origin.error()));
        auto addresses = upstream::resolve_member(*origin);
        if (!addresses)
            return tl::unexpected(fmt::format("jwks_url {}: {}", s->jwks_url, addresses.error()));
        std::optional<upstream::backend_tls> tls;
        if (origin->kind == config::upstream_member::scheme::https) {
            auto made = upstream::make_backend_tls("");
            if (!made)
                return tl::unexpected(fmt::format("jwks_url {}: {}", s->jwks_url, made.error()));
            tls = std::move(*made);
        }
        fetchers_.emplace(s->jwks_url, std::make_shared<jwks_fetcher>(
                                           s->jwks_url, std::move(*origin), parts->second,
                                           std::move(*addresses), std::move(tls), s->jwks_refresh));
    }
    return {};
}

std::shared_ptr<const key_ring> jwks_sources::ring(const std::string& url) const {
    const auto it = fetchers_.find(url);
    return it == fetchers_.end() ? std::make_shared<key_ring>() : it->second->ring;
}

void jwks_sources::start(const asio::any_io_executor& ex) {
    for (auto& [url, f] : fetchers_) f->start(ex);
}

void jwks_sources::stop() {
    for (auto& [url, f] : fetchers_) f->stop();
}

}  // namespace porthole::policy
