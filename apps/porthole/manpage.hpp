#pragma once
// `porthole manpage DIR`: roff man pages made from the command line itself, as completion.hpp's
// scripts are: porthole(1) and one porthole-COMMAND(1) for each visible subcommand.
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace porthole::cli {

struct man_page {
    std::string file_name;  // "porthole-config-check.1"
    std::string text;       // roff, man macros
};

std::vector<man_page> man_pages(const CLI::App& app, std::string_view version);

// Text as roff takes it on a line of its own: backslashes, hyphens that start an option, a leading
// dot or quote, and non-ASCII characters (as \[uXXXX], so groff needs no input encoding).
std::string roff_escaped(std::string_view text);

}  // namespace porthole::cli
