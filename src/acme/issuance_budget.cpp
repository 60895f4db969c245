#include "acme/issuance_budget.hpp"

#include <fmt/format.h>
#include <libpsl.h>

#include <algorithm>

namespace porthole::acme {

using namespace std::chrono_literals;

namespace {
constexpr auto order_window = std::chrono::hours(3);
constexpr auto certificate_window = std::chrono::hours(7 * 24);
constexpr auto failure_window = std::chrono::hours(1);
constexpr std::size_t max_tracked = 10000;  // names with failures remembered, at most
}  // namespace

std::size_t issuance_budget::live(std::deque<time_point>& events, time_point since) {
    while (!events.empty() && events.front() < since) events.pop_front();
    return events.size();
}

std::optional<std::string> issuance_budget::refusal(const std::string& name, time_point now) {
    if (live(orders_, now - order_window) >= limits_.orders)
        return fmt::format("{} orders in the last 3 hours", orders_.size());
    const std::string domain = registered_domain(name);
    if (auto it = issued_.find(domain);
        it != issued_.end() &&
        live(it->second, now - certificate_window) >= limits_.certificates_per_domain)
        return fmt::format("{} certificates for {} in the last 7 days", it->second.size(), domain);
    if (auto it = failed_.find(name);
        it != failed_.end() && live(it->second, now - failure_window) >= limits_.failures_per_name)
        return fmt::format("{} failed authorizations for {} in the last hour", it->second.size(),
                           name);
    return std::nullopt;
}

void issuance_budget::ordered(time_point now) { orders_.push_back(now); }

void issuance_budget::issued(const std::string& name, time_point when) {
    auto& events = issued_[registered_domain(name)];
    events.insert(std::upper_bound(events.begin(), events.end(), when), when);
}

void issuance_budget::failed(const std::string& name, time_point now) {
    if (failed_.size() >= max_tracked && !failed_.contains(name)) {
        for (auto it = failed_.begin(); it != failed_.end();)
            it = live(it->second, now - failure_window) == 0 ? failed_.erase(it) : std::next(it);
        if (failed_.size() >= max_tracked) return;
    }
    failed_[name].push_back(now);
}

std::string registered_domain(const std::string& name) {
    // The system's list (the publicsuffix package) when there is one, else the
    // one built in.
    static const psl_ctx_t* list = [] {
        const psl_ctx_t* latest = psl_latest(nullptr);
        return latest ? latest : psl_builtin();
    }();
    const std::string bare = name.starts_with("*.") ? name.substr(2) : name;
    const char* domain = list ? psl_registrable_domain(list, bare.c_str()) : nullptr;
    return domain ? std::string(domain) : bare;
}

}  // namespace porthole::acme
