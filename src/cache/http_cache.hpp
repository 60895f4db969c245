#pragma once
// A route's shared HTTP cache (RFC 9111): finds what is stored for a request and judges it,
// records a response from the upstream while it goes to the visitor, folds a 304 into what is
// stored, invalidates after unsafe methods, and makes concurrent misses for one key wait for the
// first one's response (request collapsing). The edge decides what to do with each verdict.
//
// One cache serves every event loop (threads): its store, its table of fetches under way and its
// scopes are under one mutex, held for a lookup or a store and never across an await; its
// counters are atomic. Stored entries are immutable and shared, so a loop sends one to its
// visitor without the lock. A miss that waits for another loop's fetch waits on a timer of its
// own loop, which the fetch's end cancels through that loop's executor.
#include "cache/disk_store.hpp"
#include "cache/freshness.hpp"
#include "cache/response_store.hpp"
#include "config/cache_config.hpp"
#include "http/forward_exchange.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace porthole::cache {

struct cache_settings {
    std::size_t memory = 256u << 20;
    std::size_t max_entry = 8u << 20;  // responses larger than this pass uncached
    freshness_rules rules;
    bool stale_when_offline = false;   // serve stale while the upstream cannot be reached at all
};

cache_settings settings_from(const config::cache_config& c);

class http_cache;
// The cache `c` describes, its disk tier opened (or taken over from the cache it replaces on a
// reload). Fails when the disk tier's directory cannot be used.
tl::expected<std::shared_ptr<http_cache>, std::string> make_cache(const config::cache_config& c);

// Seconds since the epoch, the clock the freshness rules use.
std::int64_t epoch_now();

struct counters {
    std::atomic<std::uint64_t> hits = 0;
    std::atomic<std::uint64_t> misses = 0;
    std::atomic<std::uint64_t> stale = 0;  // stale responses served (max-stale, revalidate, errors)
    std::atomic<std::uint64_t> revalidated = 0;  // stored responses a 304 renewed
    std::atomic<std::uint64_t> stores = 0;
    std::atomic<std::uint64_t> collapsed = 0;  // misses that waited for another's response
};

struct found {
    entry stored;  // null: nothing usable by URI and Vary
    judgement verdict;
    std::string_view miss;  // when not served: Cache-Status fwd= value ("uri-miss", ...)
};

class http_cache {
public:
    // With `disk`, responses are kept on disk too (tiered_store).
    explicit http_cache(const cache_settings& settings, std::shared_ptr<disk_store> disk = nullptr);

    // "scheme://host/target": host lowercased, without a default port; then " @SCOPE" when
    // there is one (scope_of a tunnel's holder: another client taking the name later never gets
    // what this one's site answered).
    static std::string key_of(bool https, std::string_view host, std::string_view target,
                              std::string_view scope = {});
    // The scope of a tunnel's holder: 128 bits of SHA-256 in hex, so that keys (which reach disk
    // and admin pages) never hold the holder's identity. Remembered per holder: a request
    // through a cached tunnel pays a hash lookup, not a digest.
    std::string scope_of(const std::string& holder);

    found lookup(const std::string& key, const http::message_head& request, std::int64_t now);

    // Request collapsing. begin_fetch: true when this request is to fetch `key`, false when
    // another (on any loop) is fetching it already; then wait_for(key) returns once that one is
    // done (or after `limit`). end_fetch: the fetch is over, its waiters go on.
    bool fetching(const std::string& key) const;
    bool begin_fetch(const std::string& key);
    boost::asio::awaitable<void> wait_for(const std::string& key,
                                          std::chrono::steady_clock::duration limit);
    void end_fetch(const std::string& key);

    void store(const std::string& key, entry e);
    // RFC 9111 section 4.4: after an unsafe method's non-error response, the target and the
    // same-host URIs in its Location and Content-Location fields.
    void invalidate(bool https, std::string_view host, std::string_view target,
                    std::string_view scope, std::string_view response_head);
    // By URL ("https://host/path" or "host/path"), or every key it starts when `prefix`.
    std::size_t purge(std::string_view url, bool prefix);

    const cache_settings& settings() const { return settings_; }
    counters& counts() { return counts_; }
    const counters& counts() const { return counts_; }
    std::size_t bytes() const;
    std::size_t entries() const;
    // The disk tier; null without one.
    const disk_store* disk() const { return disk_.get(); }

private:
    // A request waiting for another's fetch: its timer, cancelled on its own loop.
    struct waiter {
        boost::asio::any_io_executor loop;
        std::shared_ptr<boost::asio::steady_timer> timer;
    };

    const cache_settings settings_;
    const std::shared_ptr<disk_store> disk_;
    counters counts_;
    mutable std::mutex mutex_;  // over the three below
    std::unique_ptr<response_store> store_;
    std::unordered_map<std::string, std::vector<waiter>> pending_;  // fetches under way, by key
    std::unordered_map<std::string, std::string> scopes_;  // holder -> scope_of, bounded
};

// Records the final response of one forwarded GET for the cache (as the forwarding core's
// observer): decides from its head whether it may be stored, keeps its decoded body while it goes
// to the visitor, and stores it once complete. Validating a stored response, it takes the 304
// away from the visitor and renews the stored one instead; with a stale response that may stand
// in for errors, it takes a 5xx away too. Either way the edge then answers from `stored`.
class response_recorder final : public http::response_observer {
public:
    response_recorder(http_cache& cache, std::string key, const http::message_head& request,
                      entry validating, bool stale_on_error, std::string_view miss);

    void final_head(http::framer<false>& response, std::string_view head) override;
    http::body_capture* body_sink() override { return storing_ ? &body_ : nullptr; }
    bool swallow() const override { return swallowed_; }
    std::string_view extra_fields() const override { return cache_status_; }

    // For an unsafe method: a non-error response invalidates the target and the same-host URIs
    // its Location and Content-Location name.
    void invalidate_after(bool https, std::string_view host, std::string_view target,
                          std::string_view scope);

    // Marks what it stores as servable while a tunnel's client is away (the owner's --cache).
    void serve_offline(bool yes) { serve_offline_ = yes; }

    // After the exchange: stores the response when it came whole.
    void finish(bool complete);
    // What the edge answers with when the response was swallowed (renewed or stale).
    const entry& stored() const { return validating_; }
    bool renewed() const { return renewed_; }

private:
    http_cache& cache_;
    std::string key_;
    const http::message_head& request_;
    request_facts request_facts_;
    entry validating_;
    bool stale_on_error_;
    std::string_view miss_;
    std::int64_t request_time_;
    bool storing_ = false;
    bool swallowed_ = false;
    bool renewed_ = false;
    bool serve_offline_ = false;
    struct invalidation {
        bool https;
        std::string host, target, scope;
    };
    std::optional<invalidation> invalidating_;
    std::unique_ptr<stored_response> pending_;
    http::body_capture body_;
    std::string cache_status_;  // "Cache-Status: ...\r\n" for the forwarded response
};

}  // namespace porthole::cache
