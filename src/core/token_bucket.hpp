#pragma once
// A token bucket refilled continuously: `rate` tokens a second, holding at most `burst`.
// Pure: time is passed in.
#include <algorithm>
#include <chrono>
#include <string>

namespace porthole::core {

class token_bucket {
public:
    using clock = std::chrono::steady_clock;

    token_bucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}

    // Takes one token when there is one.
    bool take(clock::time_point now) {
        if (refilled_ != clock::time_point{})
            tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(
                                                             now - refilled_).count());
        refilled_ = now;
        if (tokens_ < 1) return false;
        tokens_ -= 1;
        return true;
    }

private:
    double rate_;
    double burst_;
    double tokens_;
    clock::time_point refilled_{};
};

// Lets a repeated log line through a few times a minute and counts the rest, so a peer that
// provokes it in a loop cannot fill the disk; the next line let through says how many were not.
class log_limiter {
public:
    explicit log_limiter(double per_minute = 10) : bucket_(per_minute / 60, per_minute) {}

    bool allow(token_bucket::clock::time_point now) {
        if (bucket_.take(now)) return true;
        ++suppressed_;
        return false;
    }
    // " (N similar lines suppressed)" once after lines were held back, else "".
    std::string suppressed_note() {
        if (suppressed_ == 0) return {};
        std::string note = " (" + std::to_string(suppressed_) + " similar lines suppressed)";
        suppressed_ = 0;
        return note;
    }

private:
    token_bucket bucket_;
    unsigned long long suppressed_ = 0;
};

}  // namespace porthole::core
