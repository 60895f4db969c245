#include "cache/http_cache.hpp"

#include "cache/memory_store.hpp"
#include "cache/tiered_store.hpp"
#include "core/sha256.hpp"
#include "http/header_edits.hpp"
#include "http/token_char.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace porthole::cache {

namespace {

using boost::beast::iequals;

// The same-host path of a Location or Content-Location value ("/x", or "http[s]://host/x" when
// its host is `host`); empty for another host's.
std::string_view same_host_target(std::string_view value, std::string_view host) {
    if (value.starts_with('/')) return value.starts_with("//") ? std::string_view() : value;
    for (const std::string_view scheme : {"http://", "https://"}) {
        if (value.size() < scheme.size() || !iequals(value.substr(0, scheme.size()), scheme))
            continue;
        std::string_view rest = value.substr(scheme.size());
        const auto slash = rest.find('/');
        const std::string_view authority = rest.substr(0, slash);
        if (!iequals(authority, host)) return {};
        return slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    }
    return {};
}

std::string cache_status_field(std::string_view value) {
    return fmt::format("Cache-Status: {}\r\n", value);
}

}  // namespace

cache_settings settings_from(const config::cache_config& c) {
    cache_settings s;
    s.memory = c.memory;
    s.max_entry = c.max_object;
    s.rules.default_ttl = c.default_ttl;
    s.rules.store_set_cookie = c.store_set_cookie;
    s.stale_when_offline = c.stale_when_offline;
    return s;
}

std::int64_t epoch_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

tl::expected<std::shared_ptr<http_cache>, std::string> make_cache(const config::cache_config& c) {
    std::shared_ptr<disk_store> disk;
    if (c.disk) {
        auto opened = disk_store::open(c.disk->path, c.disk->size, c.max_object);
        if (!opened) return tl::unexpected(opened.error());
        disk = std::move(*opened);
    }
    return std::make_shared<http_cache>(settings_from(c), std::move(disk));
}

http_cache::http_cache(const cache_settings& settings, std::shared_ptr<disk_store> disk)
    : settings_(settings), disk_(std::move(disk)) {
    if (disk_)
        store_ = std::make_unique<tiered_store>(settings.memory, settings.max_entry, disk_);
    else
        store_ = std::make_unique<memory_store>(settings.memory, settings.max_entry);
}

std::string http_cache::key_of(bool https, std::string_view host, std::string_view target,
                               std::string_view scope) {
    std::string h = http::lowercase(host);
    if (h.ends_with(https ? ":443" : ":80")) h.resize(h.size() - (https ? 4 : 3));
    if (scope.empty()) return fmt::format("{}://{}{}", https ? "https" : "http", h, target);
    return fmt::format("{}://{}{} @{}", https ? "https" : "http", h, target, scope);
}

std::string http_cache::scope_of(const std::string& holder) {
    if (holder.empty()) return {};
    const std::lock_guard lock(mutex_);
    if (const auto it = scopes_.find(holder); it != scopes_.end()) return it->second;
    if (scopes_.size() >= 4096) scopes_.clear();  // holders come and go; keep the table small
    return scopes_.emplace(holder, core::sha256_hex(holder, 32)).first->second;  // 128 bits
}

std::size_t http_cache::bytes() const {
    const std::lock_guard lock(mutex_);
    return store_->bytes();
}

std::size_t http_cache::entries() const {
    const std::lock_guard lock(mutex_);
    return store_->entries();
}

found http_cache::lookup(const std::string& key, const http::message_head& request,
                         std::int64_t now) {
    found f;
    std::vector<entry> variants;
    {
        const std::lock_guard lock(mutex_);
        variants = store_->find(key);
    }
    if (variants.empty()) {
        f.miss = "uri-miss";
        return f;
    }
    for (const auto& v : variants) {
        if (!vary_matches(*v, request)) continue;
        f.stored = v;
        const auto age = current_age(v->facts, v->request_time, v->response_time, now);
        f.verdict = judge(v->facts, facts_of(request), v->lifetime, age);
        if (f.verdict.verdict == use::validate)
            f.miss = facts_of(request).cc.no_cache || facts_of(request).pragma_no_cache
                         ? "request"
                         : "stale";
        return f;
    }
    f.miss = "vary-miss";
    return f;
}

bool http_cache::fetching(const std::string& key) const {
    const std::lock_guard lock(mutex_);
    return pending_.contains(key);
}

bool http_cache::begin_fetch(const std::string& key) {
    const std::lock_guard lock(mutex_);
    return pending_.try_emplace(key).second;
}

boost::asio::awaitable<void> http_cache::wait_for(const std::string& key,
                                                  std::chrono::steady_clock::duration limit) {
    const auto loop = co_await boost::asio::this_coro::executor;
    auto timer = std::make_shared<boost::asio::steady_timer>(loop, limit);
    {
        const std::lock_guard lock(mutex_);
        const auto it = pending_.find(key);
        if (it == pending_.end()) co_return;  // over already
        it->second.push_back({loop, timer});
    }
    co_await timer->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    // Gone by the limit with the fetch still under way: no longer waited for.
    const std::lock_guard lock(mutex_);
    if (const auto it = pending_.find(key); it != pending_.end())
        std::erase_if(it->second, [&](const waiter& w) { return w.timer == timer; });
}

void http_cache::end_fetch(const std::string& key) {
    std::vector<waiter> waiting;
    {
        const std::lock_guard lock(mutex_);
        const auto it = pending_.find(key);
        if (it == pending_.end()) return;
        waiting = std::move(it->second);
        pending_.erase(it);
    }
    // A timer is touched only on its own loop.
    for (auto& w : waiting)
        boost::asio::post(w.loop, [timer = std::move(w.timer)] { timer->cancel(); });
}

void http_cache::store(const std::string& key, entry e) {
    bool stored = false;
    {
        const std::lock_guard lock(mutex_);
        stored = store_->put(key, std::move(e));
    }
    if (stored) ++counts_.stores;
}

void http_cache::invalidate(bool https, std::string_view host, std::string_view target,
                            std::string_view scope, std::string_view response_head) {
    const std::lock_guard lock(mutex_);
    store_->remove(key_of(https, host, target, scope));
    http::for_each_field(response_head, [&](std::string_view name, std::string_view value) {
        if (!iequals(name, "location") && !iequals(name, "content-location")) return;
        const std::string_view path = same_host_target(value, host);
        if (!path.empty()) store_->remove(key_of(https, host, path, scope));
    });
}

std::size_t http_cache::purge(std::string_view url, bool prefix) {
    std::vector<std::string> keys;
    if (url.starts_with("http://") || url.starts_with("https://")) {
        keys.emplace_back(url);
    } else {
        keys.push_back("http://" + std::string(url));
        keys.push_back("https://" + std::string(url));
    }
    std::size_t n = 0;
    const std::lock_guard lock(mutex_);
    // A URL's keys: its own, and its scoped ones (" @" cannot be part of a URL).
    for (const auto& k : keys)
        n += prefix ? store_->remove_prefix(k) : store_->remove(k) + store_->remove_prefix(k + " @");
    return n;
}

response_recorder::response_recorder(http_cache& cache, std::string key,
                                     const http::message_head& request, entry validating,
                                     bool stale_on_error, std::string_view miss)
    : cache_(cache), key_(std::move(key)), request_(request),
      request_facts_(facts_of(request)), validating_(std::move(validating)),
      stale_on_error_(stale_on_error), miss_(miss), request_time_(epoch_now()) {}

void response_recorder::invalidate_after(bool https, std::string_view host,
                                         std::string_view target, std::string_view scope) {
    invalidating_ = invalidation{https, std::string(host), std::string(target), std::string(scope)};
}

void response_recorder::final_head(http::framer<false>& response, std::string_view head) {
    const unsigned status = response.head().status;
    const std::int64_t now = epoch_now();
    if (invalidating_) {
        const auto& i = *invalidating_;
        if (status < 400) cache_.invalidate(i.https, i.host, i.target, i.scope, head);
        cache_status_ = cache_status_field("porthole; fwd=method");
        return;
    }
    if (status == 304 && validating_) {
        // Our own conditional request's answer: the stored response is renewed and served.
        auto renewed = std::make_shared<stored_response>(*validating_);
        refresh(*renewed, http::fields_of(head), request_time_, now, cache_.settings().rules);
        renewed->serve_offline = serve_offline_;
        validating_ = renewed;
        cache_.store(key_, validating_);
        ++cache_.counts().revalidated;
        swallowed_ = renewed_ = true;
        return;
    }
    if (status >= 500 && validating_ && stale_on_error_) {
        swallowed_ = true;
        return;
    }
    const auto fields = http::fields_of(head);
    pending_ = std::make_unique<stored_response>();
    pending_->status = status;
    pending_->facts = facts_of(status, fields);
    const auto refusal =
        refusal_to_store(request_.method, request_facts_, pending_->facts, cache_.settings().rules);
    const auto length = response.content_length();
    storing_ = !refusal && (!length || *length <= cache_.settings().max_entry);
    if (!storing_) {
        pending_.reset();
        cache_status_ = cache_status_field(fmt::format("porthole; fwd={}", miss_));
        return;
    }
    const std::uint64_t received_age = pending_->facts.age;  // Age is not a stored field
    pending_->fields = storable_fields(fields, now);
    pending_->facts = facts_of(status, pending_->fields);
    pending_->facts.age = received_age;
    pending_->lifetime = freshness_lifetime(pending_->facts, cache_.settings().rules);
    pending_->request_time = request_time_;
    pending_->response_time = now;
    pending_->vary_values = vary_values(pending_->facts.vary, request_);
    pending_->serve_offline = serve_offline_;
    body_.limit = cache_.settings().max_entry;
    cache_status_ = cache_status_field(fmt::format("porthole; fwd={}; stored", miss_));
}

void response_recorder::finish(bool complete) {
    if (!storing_ || !pending_) return;
    storing_ = false;
    if (!complete || body_.truncated()) return;
    pending_->body = std::move(body_.data);
    cache_.store(key_, entry(std::move(pending_)));
}

}  // namespace porthole::cache
