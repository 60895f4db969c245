#pragma once
// The check a config file's bytes pass before the TOML parser sees them: ASCII only, with invalid
// UTF-8 and other text told apart. toml++ 3.3 reaches __builtin_unreachable when it asks whether
// some characters beyond ASCII (U+00A1..U+0499) are whitespace, which it does wherever it scans a
// bare value, quotes or not; TOML's \uXXXX escapes carry such text in strings. Pure, fuzzed with
// the config loaders.
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
