#pragma once
// Prometheus text exposition format 0.0.4, written by hand (no packaged C++ client library):
// HELP and TYPE once per family with its samples together, escaped label values, cumulative
// histogram buckets whose +Inf equals _count, no timestamps. What `promtool check metrics` lints.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace porthole::observe {

struct label {
    std::string_view name;
    std::string_view value;
};

class prom_text {
public:
    // Starts a family: `type` is "counter", "gauge" or "histogram".
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, std::initializer_list<label> labels, std::uint64_t value);
    void sample(std::string_view name, std::initializer_list<label> labels, double value);
    // `counts[i]` are the observations in bucket i alone (<= bounds[i]); counts has one more
    // entry than bounds: those above the last bound. `sum` in the family's unit.
    void histogram(std::string_view name, std::initializer_list<label> labels,
                   std::span<const double> bounds, std::span<const std::uint64_t> counts,
                   double sum);

    const std::string& text() const { return out_; }
    std::string take() { return std::move(out_); }

private:
    void series(std::string_view name, std::string_view suffix,
                std::initializer_list<label> labels, std::string_view extra_name = {},
                std::string_view extra_value = {});
    std::string out_;
};

// The Content-Type of a scrape.
inline constexpr std::string_view prom_content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace porthole::observe
