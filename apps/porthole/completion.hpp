#pragma once
// Shell completion scripts made from the command line itself, so they offer exactly the
// subcommands, flags and values this build accepts.
#include <array>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace porthole::cli {

inline constexpr std::array<std::string_view, 2> completion_shells{"bash", "zsh"};

// `porthole completion SHELL`: a bash or zsh script for every visible subcommand of `app` (hidden
// ones, in the group "", are left out), their flags and the values those take. Empty for any
// other shell.
std::string completion_script(const CLI::App& app, std::string_view shell);

}  // namespace porthole::cli
