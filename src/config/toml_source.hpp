#pragma once
// Reading TOML with errors that name FILE:LINE, shared by the relay and client config loaders.
#include "config/toml_text.hpp"

#include <tl/expected.hpp>
#include "config/toml.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace porthole::config {

inline tl::expected<toml::table, std::string> parse_toml(std::string_view text,
                                                         const std::string& name) {
    auto ascii = to_ascii_toml(text);
    if (!ascii)
        return tl::unexpected(name + ":" + std::to_string(ascii.error().line) + ": " +
                              ascii.error().message);
    try {
        return toml::parse(*ascii, name);
    } catch (const toml::parse_error& e) {
        return tl::unexpected(std::string(name) + ":" + std::to_string(e.source().begin.line) +
                              ": " + std::string(e.description()));
    }
}

// A duration written as whole seconds or a string like "500ms", "30s", "5m" or "1h"; nothing
// when it is neither, negative, or longer than `longest`.
inline std::optional<std::chrono::milliseconds> duration_value(
    const toml::node& n, std::chrono::milliseconds longest = std::chrono::hours(24)) {
    const std::int64_t most = longest.count();
    if (const auto seconds = n.value_exact<std::int64_t>()) {
        if (*seconds < 0 || *seconds > most / 1000) return std::nullopt;
        return std::chrono::seconds(*seconds);
    }
    const auto text = n.value_exact<std::string>();
    if (!text) return std::nullopt;
    const std::string_view v = *text;
    std::int64_t count = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), count);
    const std::string_view unit(end, static_cast<std::size_t>(v.data() + v.size() - end));
    const std::int64_t scale = unit == "ms" ? 1
                               : unit == "s" ? 1000
                               : unit == "m" ? 60000
                               : unit == "h" ? 3600000
                                             : 0;
    if (ec != std::errc{} || end == v.data() || scale == 0 || count < 0 || count > most / scale)
        return std::nullopt;
    return std::chrono::milliseconds(count * scale);
}

// Edit distance, for "did you mean" hints on misspelt keys.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[b.size()];
}

// "WHERE: unknown key 'KEY'IN; did you mean 'K'?" when one known key is close, otherwise the list.
inline std::string unknown_key(std::string_view where, std::string_view key, std::string_view in,
                               std::initializer_list<std::string_view> known) {
    std::string_view best;
    std::size_t best_distance = 3;  // at most two edits, and fewer than a third of the word
    for (auto k : known) {
        const auto d = edit_distance(key, k);
        if (d < best_distance && d * 3 <= std::max(k.size(), key.size())) {
            best = k;
            best_distance = d;
        }
    }
    std::string message = std::string(where) + ": unknown key '" + std::string(key) + "'" +
                          std::string(in);
    if (!best.empty()) return message + "; did you mean '" + std::string(best) + "'?";
    message += " (known: ";
    bool first = true;
    for (auto k : known) {
        message += (first ? "" : ", ") + std::string(k);
        first = false;
    }
    return message + ")";
}

inline tl::expected<std::string, std::string> read_file(const std::string& path,
                                                        std::string_view what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return tl::unexpected(path + ": cannot open the " + std::string(what));
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace porthole::config
