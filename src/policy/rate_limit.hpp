#pragma once
// rate_limit: GCRA per key (the visitor's address or network, a header's value, or the whole
// route). `burst` requests pass at once, then one every period/count; over that, 429 with
// Retry-After and RateLimit-* fields. A key's state is its theoretical arrival time; keys whose
// bucket is full again are dropped first when the table reaches max_keys. One table for the
// relay: every event loop's route uses the first loop's object, each request taking its lock for
// a lookup and a comparison (as nginx's limit_req takes its zone's).
#include "config/policy_config.hpp"
#include "policy/policy.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace porthole::policy {

class rate_limit final : public policy {
public:
    using clock = std::chrono::steady_clock;
    explicit rate_limit(const config::rate_limit_settings& s,
                        std::function<clock::time_point()> now = clock::now);
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "rate_limit"; }
    bool keeps_state() const override { return true; }
    bool shared_by_loops() const override { return true; }

    // What one request under `key` gets at `now`: nullopt when it passes, else the 429. Any
    // thread.
    std::optional<answer> take(const std::string& key, clock::time_point now);
    std::size_t keys() const;

private:
    std::string key_of(const request_context& r) const;
    void make_room(clock::time_point now);

    config::rate_limit_settings s_;
    clock::duration interval_;  // period / count
    clock::duration tolerance_;  // interval * burst
    std::function<clock::time_point()> now_;
    mutable std::mutex mutex_;  // over tat_
    std::unordered_map<std::string, clock::time_point> tat_;
};

}  // namespace porthole::policy
