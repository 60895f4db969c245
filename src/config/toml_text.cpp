#include "config/toml_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>

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
    constexpr std::array<char32_t, 5> least{0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

bool is_ascii(char c) { return static_cast<unsigned char>(c) < 0x80; }

std::string escape(char32_t cp) {
    const auto value = static_cast<std::uint32_t>(cp);
    return cp <= 0xffff ? fmt::format("\\u{:04X}", value) : fmt::format("\\U{:08X}", value);
}

enum class context { outside, comment, basic, multi_basic, literal, multi_literal };

// How many `quote` characters start at `i`, at most 5: a multi-line string's closing delimiter
// may carry one or two more quotes, which belong to the string.
std::size_t quote_run(std::string_view text, std::size_t i, char quote) {
    std::size_t run = 0;
    while (i + run < text.size() && text[i + run] == quote && run < 5) ++run;
    return run;
}

// One ASCII character of a literal string, as it reads in a basic string.
void append_as_basic(std::string& out, char c) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
}

}  // namespace

tl::expected<std::string, toml_text_problem> to_ascii_toml(std::string_view text) {
    if (text.starts_with("\xef\xbb\xbf")) text.remove_prefix(3);
    if (std::all_of(text.begin(), text.end(), is_ascii)) return std::string(text);

    std::string out;
    out.reserve(text.size() + text.size() / 2);
    std::size_t line = 1;
    context in = context::outside;
    const auto problem = [&](std::string message) {
        return tl::unexpected(toml_text_problem{line, std::move(message)});
    };
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (!is_ascii(c)) {
            char32_t cp = 0;
            const std::size_t n = decode(text.substr(i), cp);
            if (n == 0)
                return problem(fmt::format("invalid UTF-8 (byte 0x{:02x}); save the file as UTF-8",
                                           static_cast<unsigned char>(c)));
            if (in == context::outside)
                return problem(fmt::format(
                    "U+{:04X} outside quotes; TOML takes text beyond ASCII only in quoted strings, "
                    "quoted keys (\"name\" = ...) and comments",
                    static_cast<std::uint32_t>(cp)));
            out += in == context::comment ? "?" : escape(cp);
            i += n;
            continue;
        }
        if (c == '\n') ++line;
        switch (in) {
        case context::outside:
            if (c == '#') {
                in = context::comment;
            } else if (c == '"' || c == '\'') {
                const bool multi = quote_run(text, i, c) >= 3;
                // A string right after a string is an error; a space keeps a rewritten quote from
                // joining the closing quotes before it (''' then " would read as """").
                if (!out.empty() && out.back() == '"') out += ' ';
                if (c == '"')
                    in = multi ? context::multi_basic : context::basic;
                else
                    in = multi ? context::multi_literal : context::literal;
                out += multi ? R"(""")" : R"(")";
                i += multi ? 3 : 1;
                continue;
            }
            out += c;
            break;
        case context::comment:
            if (c == '\n') in = context::outside;
            out += c;
            break;
        case context::basic:
        case context::multi_basic:
            if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
                // An escape: the next character is taken with the backslash, so \" does not close.
                const char next = text[i + 1];
                if (!is_ascii(next))
                    return problem("a backslash before a character beyond ASCII is not an escape "
                                   "sequence; write \\\\ for a backslash");
                out += c;
                out += next;
                i += 2;
                continue;
            }
            if (in == context::basic) {
                // A newline ends an unterminated string; toml++ reports it.
                if (c == '"' || c == '\n') in = context::outside;
            } else if (c == '"') {
                const std::size_t run = quote_run(text, i, '"');
                if (run >= 3) in = context::outside;
                out.append(run, '"');
                i += run;
                continue;
            }
            out += c;
            break;
        case context::literal:
            if (c == '\'' || c == '\n') {
                in = context::outside;
                out += c == '\'' ? '"' : c;
            } else {
                append_as_basic(out, c);
            }
            break;
        case context::multi_literal:
            if (c == '\'') {
                const std::size_t run = quote_run(text, i, '\'');
                if (run >= 3) {
                    in = context::outside;
                    out.append(run - 3, '\'');
                    out += R"(""")";
                } else {
                    out.append(run, '\'');
                }
                i += run;
                continue;
            }
            append_as_basic(out, c);
            break;
        }
        ++i;
    }
    return out;
}

}  // namespace porthole::config
