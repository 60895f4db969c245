#include "observe/prom_text.hpp"

#include <fmt/format.h>

#include <cmath>

namespace porthole::observe {
namespace {

void append_escaped(std::string& out, std::string_view text, bool quotes) {
    for (const char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '"' && quotes)
            out += "\\\"";
        else
            out += c;
    }
}

void append_value(std::string& out, double v) {
    if (std::isnan(v))
        out += "NaN";
    else if (std::isinf(v))
        out += v > 0 ? "+Inf" : "-Inf";
    else
        fmt::format_to(std::back_inserter(out), "{}", v);  // shortest form that reads back
}

}  // namespace

void prom_text::family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    append_escaped(out_, help, false);
    fmt::format_to(std::back_inserter(out_), "\n# TYPE {} {}\n", name, type);
}

void prom_text::series(std::string_view name, std::string_view suffix,
                       std::initializer_list<label> labels, std::string_view extra_name,
                       std::string_view extra_value) {
    out_ += name;
    out_ += suffix;
    if (labels.size() == 0 && extra_name.empty()) {
        out_ += ' ';
        return;
    }
    char sep = '{';
    for (const auto& l : labels) {
        out_ += sep;
        out_ += l.name;
        out_ += "=\"";
        append_escaped(out_, l.value, true);
        out_ += '"';
        sep = ',';
    }
    if (!extra_name.empty()) {
        out_ += sep;
        out_ += extra_name;
        out_ += "=\"";
        out_ += extra_value;
        out_ += '"';
    }
    out_ += "} ";
}

void prom_text::sample(std::string_view name, std::initializer_list<label> labels,
                       std::uint64_t value) {
    series(name, "", labels);
    fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

void prom_text::sample(std::string_view name, std::initializer_list<label> labels, double value) {
    series(name, "", labels);
    append_value(out_, value);
    out_ += '\n';
}

void prom_text::histogram(std::string_view name, std::initializer_list<label> labels,
                          std::span<const double> bounds, std::span<const std::uint64_t> counts,
                          double sum) {
    std::uint64_t cumulative = 0;
    std::string le;
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += counts[i];
        le.clear();
        append_value(le, bounds[i]);
        series(name, "_bucket", labels, "le", le);
        fmt::format_to(std::back_inserter(out_), "{}\n", cumulative);
    }
    if (counts.size() > bounds.size()) cumulative += counts[bounds.size()];
    series(name, "_bucket", labels, "le", "+Inf");
    fmt::format_to(std::back_inserter(out_), "{}\n", cumulative);
    series(name, "_sum", labels);
    append_value(out_, sum);
    out_ += '\n';
    series(name, "_count", labels);
    fmt::format_to(std::back_inserter(out_), "{}\n", cumulative);
}

}  // namespace porthole::observe
