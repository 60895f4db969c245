#pragma once
// What one event loop counts of the HTTP requests it handles, the relay's and the client's alike:
// status classes, request durations in fixed buckets. Plain integers; pure.
#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace porthole::observe {

// Status classes: "none" (no response was sent), then 1xx to 5xx.
inline constexpr std::array<std::string_view, 6> code_classes{"none", "1xx", "2xx",
                                                              "3xx",  "4xx", "5xx"};
inline std::size_t code_class(unsigned status) {
    return status >= 100 && status < 600 ? status / 100 : 0;
}

// Request duration buckets, seconds: a loopback hop lands in the first, a WAN round trip in the
// middle, uploads and long polls at the top.
inline constexpr std::array<double, 14> duration_bounds{0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05,  0.1,    0.25,  0.5,  1,
                                                        2.5,   5,      10,    30};

struct duration_histogram {
    std::array<std::uint64_t, duration_bounds.size() + 1> counts{};
    std::uint64_t sum_us = 0;  // the sum in whole microseconds, printed as seconds

    void add(std::chrono::microseconds d) {
        const double seconds = static_cast<double>(d.count()) / 1e6;
        std::size_t i = 0;
        while (i < duration_bounds.size() && seconds > duration_bounds[i]) ++i;
        ++counts[i];
        sum_us += static_cast<std::uint64_t>(d.count());
    }
    std::uint64_t count() const {
        std::uint64_t n = 0;
        for (auto c : counts) n += c;
        return n;
    }
};

struct request_counts {
    std::array<std::uint64_t, code_classes.size()> by_class{};
    duration_histogram duration;

    void add(unsigned status, std::chrono::microseconds d) {
        ++by_class[code_class(status)];
        duration.add(d);
    }
    void add(const request_counts& o) {
        for (std::size_t i = 0; i < by_class.size(); ++i) by_class[i] += o.by_class[i];
        for (std::size_t i = 0; i < duration.counts.size(); ++i)
            duration.counts[i] += o.duration.counts[i];
        duration.sum_us += o.duration.sum_us;
    }
};

}  // namespace porthole::observe
