#include "config/toml_text.hpp"

#include <fmt/format.h>

namespace porthole::config {

namespace {

// The length of the UTF-8 sequence at the start of `s` and its code point; 0 when invalid
// (truncated, overlong, a surrogate or above U+10FFFF).
std::size_t decode(std::string_view s, char32_t& cp) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char b0 = byte(0);
    std::size_t n = 0;
    if (b0 < 0x80) {
        cp = b0;
        return 1;
    }
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        n = 2;
        cp = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        n = 3;
        cp = b0 & 0x0f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        n = 4;
        cp = b0 & 0x07;
    } else {
        return 0;
    }
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        if ((byte(i) & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (byte(i) & 0x3f);
    }
    const char32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Where a multi-line string that closes at `i` ends: its closing run of 3 quotes may carry one
// or two more of the same quote, which belong to the string.
std::size_t closing_run(std::string_view text, std::size_t i, char quote) {
    std::size_t run = 0;
    while (i + run < text.size() && text[i + run] == quote && run < 5) ++run;
    return i + run;
}

enum class state { outside, comment, basic, literal, multi_basic, multi_literal };

}  // namespace

std::optional<toml_text_problem> check_toml_text(std::string_view text) {
    std::size_t line = 1;
    state st = state::outside;
    const auto at = [&](std::size_t i, std::string_view what) {
        return text.substr(i).starts_with(what);
    };
    const auto problem = [&](std::string message) {
        return toml_text_problem{line, std::move(message)};
    };
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (static_cast<unsigned char>(c) >= 0x80) {
            char32_t cp = 0;
            const std::size_t n = decode(text.substr(i), cp);
            if (n == 0)
                return problem(fmt::format("invalid UTF-8 (byte 0x{:02x}); save the file as UTF-8",
                                           static_cast<unsigned char>(c)));
            if (st == state::outside)
                return problem(fmt::format(
                    "U+{:04X} outside quotes; TOML takes text beyond ASCII only in quoted strings, "
                    "quoted keys (\"name\" = ...) and comments",
                    static_cast<std::uint32_t>(cp)));
            i += n;
            continue;
        }
        if (c == '\n') ++line;
        switch (st) {
        case state::outside:
            if (c == '#') {
                st = state::comment;
            } else if (at(i, "\"\"\"")) {
                st = state::multi_basic;
                i += 3;
                continue;
            } else if (at(i, "'''")) {
                st = state::multi_literal;
                i += 3;
                continue;
            } else if (c == '"') {
                st = state::basic;
            } else if (c == '\'') {
                st = state::literal;
            }
            break;
        case state::comment:
            if (c == '\n') st = state::outside;
            break;
        case state::basic:
            if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n' &&
                static_cast<unsigned char>(text[i + 1]) < 0x80) {
                i += 2;
                continue;
            }
            if (c == '"' || c == '\n') st = state::outside;
            break;
        case state::literal:
            if (c == '\'' || c == '\n') st = state::outside;
            break;
        case state::multi_basic:
            if (c == '\\') {
                std::size_t j = i + 1;
                if (j < text.size() && !ascii_space(text[j])) {
                    if (static_cast<unsigned char>(text[j]) >= 0x80)
                        return problem("a backslash before a character beyond ASCII is not an "
                                       "escape sequence; write \\\\ for a backslash");
                    i = j + 1;  // an escape such as \" or \\: the next byte is taken with it
                    continue;
                }
                // A line-ending backslash: the whitespace and line breaks after it are trimmed.
                while (j < text.size() && ascii_space(text[j])) {
                    if (text[j] == '\n') ++line;
                    ++j;
                }
                if (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80)
                    return problem(
                        "a character beyond ASCII right after a multi-line string's line-ending "
                        "backslash; porthole's TOML reader cannot take it there: put an ASCII "
                        "character first or leave out the backslash");
                i = j;
                continue;
            }
            if (at(i, "\"\"\"")) {
                st = state::outside;
                i = closing_run(text, i, '"');
                continue;
            }
            break;
        case state::multi_literal:
            if (at(i, "'''")) {
                st = state::outside;
                i = closing_run(text, i, '\'');
                continue;
            }
            break;
        }
        ++i;
    }
    return std::nullopt;
}

}  // namespace porthole::config
