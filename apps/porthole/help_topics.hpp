#pragma once
// `porthole help [TOPIC]`: the reference pages (plain text, 100 columns at most) and the help
// command that prints them, the main help or a command's help.
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace porthole::cli {

struct help_topic {
    std::string_view name;
    std::string_view summary;  // one line, for the list of topics
    std::string_view text;
};

// config, server-config, inspector, routing.
std::span<const help_topic> help_topics();

// "config, server-config, inspector, routing".
std::string help_topic_names();

// `porthole help [WORD...]`: no words prints the main help and the list of topics; a topic prints
// its page; a command path ("http", "config check") prints that command's help exactly as
// `porthole COMMAND --help` does. A topic wins over a command of the same name. Returns the exit
// status: 2 when nothing matches, with the topics and commands named on `err`.
int run_help(const CLI::App& app, const std::vector<std::string>& words, std::ostream& out,
             std::ostream& err);

}  // namespace porthole::cli
