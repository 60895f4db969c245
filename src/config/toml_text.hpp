#pragma once
// A config file's UTF-8 text rewritten as pure ASCII TOML of the same meaning before toml++ sees
// it. toml++ 3.3 reaches __builtin_unreachable when it asks whether some characters beyond ASCII
// (U+00A1..U+0499) are whitespace, which it does wherever it scans a bare value, even across the
// quotes of malformed input; so it must never see such a character. Strings carry them as \uXXXX
// escapes (a literal string becomes the equal basic string), comments as '?'; elsewhere TOML
// forbids them and they are refused, as is invalid UTF-8. Lines are kept, so toml++'s FILE:LINE
// errors stay right. Whatever the input, the output is ASCII. Pure, fuzzed with the config loaders.
#include <tl/expected.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace porthole::config {

struct toml_text_problem {
    std::size_t line;
    std::string message;
};

// The text unchanged when it is ASCII (a leading UTF-8 byte order mark dropped, as toml++ does).
tl::expected<std::string, toml_text_problem> to_ascii_toml(std::string_view text);

}  // namespace porthole::config
