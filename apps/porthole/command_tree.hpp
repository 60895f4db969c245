#pragma once
// The command line as data: each visible subcommand of the CLI11 tree with its flags, positional
// arguments and the values they take. Shell completion and the man pages are both made from it,
// so they describe exactly what this build accepts.
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace porthole::cli {

enum class value_kind { text, file, directory, words, tunnel_names, help_topics };

struct choice {
    std::string word;
    std::string description;  // may be empty
};

// An option ("--config", "-h") or a positional argument ("TARGET").
struct argument {
    std::vector<std::string> names;
    std::string description;       // on one line
    std::string type_name;         // CLI11's: "TEXT", "INT", or what ->type_name() set
    std::string default_value;     // when the option captured one, else empty
    bool takes_value = true;
    bool repeatable = false;
    bool required = false;
    bool is_help = false;
    value_kind kind = value_kind::text;
    std::vector<choice> choices;  // value_kind::words
};

struct command {
    std::vector<std::string> path;  // empty for porthole itself; {"config", "check"}
    std::string description;        // on one line
    std::string full_description;   // as written, line breaks kept
    std::vector<argument> options;
    std::vector<argument> positionals;
    std::vector<command> subcommands;
};

// `app` and its visible subcommands (hidden ones are in the group ""), recursively.
command describe(const CLI::App& app);

// `root` and every command under it, depth first, parents before their subcommands.
std::vector<const command*> flatten(const command& root);

std::string join(const std::vector<std::string>& parts, std::string_view separator);

std::string lowercase(std::string text);

}  // namespace porthole::cli
