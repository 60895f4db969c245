#include "policy/jwks_fetch.hpp"

#include "config/site_config.hpp"
#include "core/printable.hpp"
#include "http/whole_response.hpp"
#include "net/frame_io.hpp"
#include "policy/key_ring.hpp"
#include "upstream/one_request.hpp"

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
    auto got = http::read_whole_response(bytes, eof, max_body);
    if (!got) return tl::unexpected(got.error());
    if (!*got) return std::optional<std::string>();
    if ((*got)->head.status != 200)
        return tl::unexpected(fmt::format("the server answered {}", (*got)->head.status));
    return std::optional<std::string>(std::move((*got)->body));
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
                const auto had = self->ring->keys().keys->size();
                spdlog::warn("jwks_url {}: {}; {}; trying again in {}", self->url_, problem,
                             had == 0 ? std::string("its jwt policies answer 401 until a fetch succeeds")
                                      : fmt::format("keeping the {} key{} it had", had,
                                                    had == 1 ? "" : "s"),
                             seconds_text(wait));
            }
            self->timer_->expires_after(wait);
            co_await self->timer_->async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }

    void take(jwk_set set) {
        std::string kids;
        for (const auto& k : set.keys) kids += (kids.empty() ? "" : ", ") + key_name(k);
        const auto count = set.keys.size();
        if (!ring->replace(std::move(set.keys))) return;
        spdlog::info("jwks_url {}: {} key{} ({}){}", url_, count, count == 1 ? "" : "s", kids,
                     set.skipped.empty() ? "" : fmt::format("; {} skipped", set.skipped.size()));
    }

    static std::string key_name(const jwk& k) {
        return k.kid.empty() ? std::string("no kid") : "kid " + core::printable(k.kid);
    }

    // The response body, or why there is none.
    asio::awaitable<tl::expected<std::string, std::string>> fetch() {
        upstream::one_request_spec spec;
        spec.target = target_;
        spec.headers = "Accept: application/jwk-set+json, application/json\r\n";
        spec.max_body = max_jwks_body;
        auto got = co_await upstream::one_request(origin_, addresses_, tls_ ? &*tls_ : nullptr,
                                                  spec, connect_timeout);
        if (!got) co_return tl::unexpected(got.error());
        if (got->head.status != 200)
            co_return tl::unexpected(fmt::format("the server answered {}", got->head.status));
        co_return std::move(got->body);
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
    const std::lock_guard lock(mutex_);
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
    const std::lock_guard lock(mutex_);
    const auto it = fetchers_.find(url);
    return it == fetchers_.end() ? std::make_shared<key_ring>() : it->second->ring;
}

void jwks_sources::start(const asio::any_io_executor& ex) {
    const std::lock_guard lock(mutex_);
    for (auto& [url, f] : fetchers_) f->start(ex);
}

void jwks_sources::stop() {
    const std::lock_guard lock(mutex_);
    for (auto& [url, f] : fetchers_) f->stop();
}

}  // namespace porthole::policy
