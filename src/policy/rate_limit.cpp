#include "policy/rate_limit.hpp"

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

namespace porthole::policy {

namespace {

long long whole_seconds_up(std::chrono::steady_clock::duration d) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    return std::max<long long>(1, (ns + 999'999'999) / 1'000'000'000);
}

}  // namespace

rate_limit::rate_limit(const config::rate_limit_settings& s,
                       std::function<clock::time_point()> now)
    : s_(s),
      interval_(std::chrono::duration_cast<clock::duration>(s.period) / s.count),
      tolerance_(interval_ * s.burst), now_(std::move(now)) {}

std::string rate_limit::key_of(const request_context& r) const {
    using kind = config::rate_limit_settings::key_kind;
    if (s_.key == kind::route) return {};
    if (s_.key == kind::header) {
        const std::string* v = r.head.find(s_.header);
        return v ? *v : std::string();
    }
    auto a = r.client_address;
    if (a.is_unspecified()) return std::string(r.client_ip);
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        a = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
    if (a.is_v4()) {
        const auto b = a.to_v4().to_bytes();
        return std::string(b.begin(), b.end());
    }
    auto b = a.to_v6().to_bytes();
    for (unsigned bit = s_.ipv6_prefix; bit < 128; ++bit)
        b[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
    return std::string(b.begin(), b.end());
}

void rate_limit::make_room(clock::time_point now) {
    std::erase_if(tat_, [&](const auto& kv) { return kv.second <= now; });
    // Still full: every key is limited; the one that will be full again soonest goes.
    if (tat_.size() >= s_.max_keys) {
        auto oldest = tat_.begin();
        for (auto it = tat_.begin(); it != tat_.end(); ++it)
            if (it->second < oldest->second) oldest = it;
        tat_.erase(oldest);
    }
}

std::size_t rate_limit::keys() const {
    const std::lock_guard lock(mutex_);
    return tat_.size();
}

std::optional<answer> rate_limit::take(const std::string& key, clock::time_point now) {
    clock::time_point tat, next;
    {
        const std::lock_guard lock(mutex_);
        auto it = tat_.find(key);
        if (it == tat_.end()) {
            if (tat_.size() >= s_.max_keys) make_room(now);
            it = tat_.emplace(key, now).first;
        }
        tat = std::max(it->second, now);
        next = tat + interval_;
        if (next - now <= tolerance_) {
            it->second = next;
            return std::nullopt;
        }
    }
    // Allowed again once `next` - tolerance has come; full again at `tat`.
    const auto retry = whole_seconds_up(next - tolerance_ - now);
    const auto reset = whole_seconds_up(tat - now);
    return answer{429,
                  fmt::format("Retry-After: {}\r\nRateLimit-Limit: {}\r\nRateLimit-Remaining: "
                              "0\r\nRateLimit-Reset: {}\r\n",
                              retry, s_.burst, reset),
                  "porthole: too many requests; try again later\n"};
}

std::optional<answer> rate_limit::on_request(request_context& r) {
    return take(key_of(r), now_());
}

}  // namespace porthole::policy
