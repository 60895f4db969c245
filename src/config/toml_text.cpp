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

}  // namespace

std::optional<toml_text_problem> check_toml_text(std::string_view text) {
    std::size_t line = 1;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') ++line;
        if (static_cast<unsigned char>(c) < 0x80) continue;
        char32_t cp = 0;
        if (decode(text.substr(i), cp) == 0)
            return toml_text_problem{
                line, fmt::format("invalid UTF-8 (byte 0x{:02x}); save the file as UTF-8",
                                  static_cast<unsigned char>(c))};
        return toml_text_problem{
            line, fmt::format("U+{:04X}: porthole reads config files as ASCII (its TOML library "
                              "misbehaves on some text beyond it); in a string, write the "
                              "character as \\u{:04X}",
                              static_cast<std::uint32_t>(cp), static_cast<std::uint32_t>(cp))};
    }
    return std::nullopt;
}

}  // namespace porthole::config
