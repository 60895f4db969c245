#pragma once
// The checks a config file's bytes pass before the TOML parser sees them: valid UTF-8, and
// non-ASCII characters only where TOML allows them (quoted strings and keys, comments). toml++ 3.3
// reaches __builtin_unreachable when it asks whether some non-ASCII characters (U+00A1..U+0499)
// are whitespace, which it does outside strings and after a multi-line string's backslash; text
// that passes these checks never makes it ask. Pure, fuzzed with the config loaders.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace porthole::config {

struct toml_text_problem {
    std::size_t line;
    std::string message;
};

std::optional<toml_text_problem> check_toml_text(std::string_view text);

}  // namespace porthole::config
