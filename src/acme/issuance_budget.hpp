#pragma once
// How many orders the relay may still place without meeting the CA's rate
// limits, counted in sliding windows below Let's Encrypt's published ones: new
// orders per account, certificates per registered domain (the public suffix
// list decides what that is), failed authorizations per name. Pure: the caller
// says what happened and when.
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>

namespace porthole::acme {

struct budget_limits {
    std::size_t orders = 300;                  // per 3 hours
    std::size_t certificates_per_domain = 50;  // per 7 days
    std::size_t failures_per_name = 5;         // per hour
};

class issuance_budget {
public:
    using time_point = std::chrono::system_clock::time_point;

    explicit issuance_budget(budget_limits limits = {}) : limits_(limits) {}

    // Why an order for `name` must wait, or nullopt when it may go now.
    std::optional<std::string> refusal(const std::string& name, time_point now);
    void ordered(time_point now);
    void issued(const std::string& name, time_point when);
    void failed(const std::string& name, time_point now);

private:
    static std::size_t live(std::deque<time_point>& events, time_point since);

    budget_limits limits_;
    std::deque<time_point> orders_;
    std::map<std::string, std::deque<time_point>> issued_;  // by registered domain
    std::map<std::string, std::deque<time_point>> failed_;  // by name
};

// The registered domain of `name` ("a.b.example.co.uk" -> "example.co.uk"), by
// the public suffix list libpsl carries; `name` itself when it has none.
std::string registered_domain(const std::string& name);

}  // namespace porthole::acme
