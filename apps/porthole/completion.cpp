#include "completion.hpp"

#include "help_topics.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace porthole::cli {
namespace {

enum class value_kind { text, file, directory, words, tunnel_names, help_topics };

struct choice {
    std::string word;
    std::string description;  // may be empty
};

// An option ("--config", "-h") or a positional argument ("TARGET").
struct argument {
    std::vector<std::string> names;
    std::string description;
    bool takes_value = true;
    bool repeatable = false;
    bool is_help = false;
    value_kind kind = value_kind::text;
    std::vector<choice> choices;  // value_kind::words
};

struct command {
    std::vector<std::string> path;  // empty for porthole itself; {"config", "check"}
    std::string description;
    std::vector<argument> options;
    std::vector<argument> positionals;
    std::vector<command> subcommands;
};

// What a value is where the option's validator does not say so (CLI::IsMember, CLI::ExistingFile
// and CLI::ExistingDirectory do). `command` is a command path such as "start", or "*" for any.
struct value_hint {
    std::string_view command;
    std::string_view name;
    value_kind kind;
    std::string_view words = {};  // value_kind::words, separated by spaces
};

constexpr value_hint value_hints[] = {
    {"*", "--config", value_kind::file},
    {"*", "--tls-cert", value_kind::file},
    {"*", "--tls-key", value_kind::file},
    {"*", "--token-file", value_kind::file},  // checked when read, so the error can name it
    {"*", "--tls-self-signed", value_kind::directory},
    {"server", "--admin-socket", value_kind::file},  // a socket, made when the relay starts
    {"admin", "--socket", value_kind::file},
    {"*", "--host-header", value_kind::words, "preserve rewrite"},  // or any literal Host
    {"start", "NAME", value_kind::tunnel_names},
    {"help", "TOPIC", value_kind::help_topics},
};

std::vector<std::string> split(std::string_view text, char separator) {
    std::vector<std::string> parts;
    while (!text.empty()) {
        const auto at = text.find(separator);
        if (at != 0) parts.emplace_back(text.substr(0, at));
        if (at == std::string_view::npos) break;
        text.remove_prefix(at + 1);
    }
    return parts;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& part : parts) {
        if (!out.empty()) out += separator;
        out += part;
    }
    return out;
}

std::string one_line(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const char d = c == '\n' || c == '\t' ? ' ' : c;
        if (d == ' ' && (out.empty() || out.back() == ' ')) continue;
        out += d;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

std::string lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// CLI11 appends each validator's description to the type name: "TEXT:{auto,on,off}", "TEXT:FILE".
void apply_validators(const CLI::Option& option, argument& arg) {
    const auto parts = split(option.get_type_name(), ':');
    for (std::size_t i = 1; i < parts.size(); ++i) {
        const std::string& part = parts[i];
        if (part == "FILE") {
            arg.kind = value_kind::file;
        } else if (part == "DIR") {
            arg.kind = value_kind::directory;
        } else if (part.size() > 2 && part.front() == '{' && part.back() == '}') {
            arg.kind = value_kind::words;
            arg.choices.clear();
            for (auto& word : split(std::string_view(part).substr(1, part.size() - 2), ','))
                arg.choices.push_back({std::move(word), {}});
        }
    }
}

bool visible(const CLI::App& app) { return !app.get_name().empty() && !app.get_group().empty(); }

void apply_hints(const CLI::App& root, std::string_view path, argument& arg) {
    for (const auto& hint : value_hints) {
        if (hint.command != "*" && hint.command != path) continue;
        if (std::find(arg.names.begin(), arg.names.end(), hint.name) == arg.names.end()) continue;
        arg.kind = hint.kind;
        arg.choices.clear();
        if (hint.kind == value_kind::words) {
            for (auto& word : split(hint.words, ' ')) arg.choices.push_back({std::move(word), {}});
        } else if (hint.kind == value_kind::help_topics) {
            arg.kind = value_kind::words;
            for (const auto& topic : help_topics())
                arg.choices.push_back({std::string(topic.name), std::string(topic.summary)});
            for (const CLI::App* sub :
                 root.get_subcommands([](const CLI::App* s) { return visible(*s); })) {
                const bool taken =
                    std::any_of(arg.choices.begin(), arg.choices.end(),
                                [&](const choice& c) { return c.word == sub->get_name(); });
                if (!taken)
                    arg.choices.push_back({sub->get_name(), one_line(sub->get_description())});
            }
        }
    }
}

command describe(const CLI::App& root, const CLI::App& app, std::vector<std::string> path) {
    command cmd;
    cmd.path = std::move(path);
    cmd.description = one_line(app.get_description());
    const std::string key = join(cmd.path, " ");
    for (const CLI::Option* option : app.get_options()) {
        if (option->get_group().empty()) continue;  // hidden
        argument arg;
        arg.description = one_line(option->get_description());
        arg.repeatable = option->get_expected_max() > 1;
        apply_validators(*option, arg);
        if (option->nonpositional()) {
            argument named = arg;
            for (const auto& name : option->get_lnames()) named.names.push_back("--" + name);
            for (const auto& name : option->get_snames()) named.names.push_back("-" + name);
            named.takes_value = option->get_expected_max() > 0;
            named.is_help = option == app.get_help_ptr() || option == app.get_help_all_ptr();
            apply_hints(root, key, named);
            cmd.options.push_back(std::move(named));
        }
        if (option->get_positional()) {
            arg.names = {option->get_name(true)};
            apply_hints(root, key, arg);
            cmd.positionals.push_back(std::move(arg));
        }
    }
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return visible(*s); })) {
        auto sub_path = cmd.path;
        sub_path.push_back(sub->get_name());
        cmd.subcommands.push_back(describe(root, *sub, std::move(sub_path)));
    }
    return cmd;
}

void flatten(const command& cmd, std::vector<const command*>& out) {
    out.push_back(&cmd);
    for (const auto& sub : cmd.subcommands) flatten(sub, out);
}

std::vector<std::string> subcommand_names(const command& cmd) {
    std::vector<std::string> names;
    for (const auto& sub : cmd.subcommands) names.push_back(sub.path.back());
    return names;
}

std::string words_of(const argument& arg) {
    std::vector<std::string> words;
    for (const auto& c : arg.choices) words.push_back(c.word);
    return join(words, " ");
}

bool has_descriptions(const argument& arg) {
    return std::any_of(arg.choices.begin(), arg.choices.end(),
                       [](const choice& c) { return !c.description.empty(); });
}

// 'text' for sh, with ' written as '\''.
std::string sh_quoted(std::string_view text) {
    std::string out = "'";
    for (const char c : text) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

std::string identifier(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& part : parts) {
        out += '_';
        for (const char c : part) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// bash

std::string bash_action(const argument& arg) {
    switch (arg.kind) {
    case value_kind::file: return "_porthole_files";
    case value_kind::directory: return "_porthole_dirs";
    case value_kind::words: return "_porthole_words " + sh_quoted(words_of(arg));
    case value_kind::tunnel_names: return "_porthole_tunnel_names";
    case value_kind::text:
    case value_kind::help_topics: break;
    }
    return {};
}

constexpr std::string_view bash_head =
    R"SH(# bash completion for porthole: the subcommands, flags and values of this build.
# Load it into the running shell:  source <(porthole completion bash)
# or for every shell:              porthole completion bash > /etc/bash_completion.d/porthole

_porthole_words() {
    mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -W "$1" -- "$cur")
}

_porthole_files() {
    compopt -o filenames 2>/dev/null
    mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")
}

_porthole_dirs() {
    compopt -o filenames 2>/dev/null
    mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur")
}

# The tunnels of the config file given with --config (or the default one).
_porthole_tunnel_names() {
    local config='' bin=${COMP_WORDS[0]/#\~/$HOME} names
    local -a args=(config names)
    local -i i
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case ${COMP_WORDS[i]} in
            --config)
                config=${COMP_WORDS[i+1]}
                [[ $config == = ]] && config=${COMP_WORDS[i+2]} ;;
            --config=*) config=${COMP_WORDS[i]#--config=} ;;
        esac
    done
    [[ -n $config ]] && args+=(--config "${config/#\~/$HOME}")
    names=$("$bin" "${args[@]}" 2>/dev/null) || return 0
    _porthole_words "$names"
}
)SH";

constexpr std::string_view bash_main = R"SH(
_porthole() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local command='' word flag='' prefix='' REPLY
    local -i i=1 positionals=0 after_dashes=0
    COMPREPLY=()
    while (( i < COMP_CWORD )); do
        word=${COMP_WORDS[i]}
        if (( after_dashes )); then
            positionals+=1
        elif [[ $word == -- ]]; then
            after_dashes=1
        elif [[ $word == -?* ]]; then
            if [[ $word != *=* ]] && _porthole_takes_value "$command" "$word"; then
                i+=1
                [[ ${COMP_WORDS[i]} == = ]] && i+=1
            fi
        elif [[ $word == = ]]; then
            i+=1  # the value of --flag=value, split at '=' by COMP_WORDBREAKS
        else
            _porthole_subcommands "$command"
            if (( positionals == 0 )) && [[ " $REPLY " == *" $word "* ]]; then
                command=${command:+$command }$word
            else
                positionals+=1
            fi
        fi
        i+=1
    done

    if (( ! after_dashes )); then
        if [[ $cur == = && $prev == -?* ]]; then
            flag=$prev cur=''
        elif [[ $prev == = && ${COMP_WORDS[COMP_CWORD-2]} == -?* ]]; then
            flag=${COMP_WORDS[COMP_CWORD-2]}
        elif [[ $cur == -?*=* ]]; then
            flag=${cur%%=*} prefix=${cur%%=*}= cur=${cur#*=}
        elif [[ $prev == -?* && $prev != *=* ]] && _porthole_takes_value "$command" "$prev"; then
            flag=$prev
        fi
    fi
    if [[ -n $flag ]]; then
        _porthole_value "$command" "$flag"
        [[ -n $prefix ]] && COMPREPLY=("${COMPREPLY[@]/#/$prefix}")
        return 0
    fi
    if [[ $cur == -* ]] && (( ! after_dashes )); then
        _porthole_flags "$command"
        _porthole_words "$REPLY"
        return 0
    fi
    if (( positionals == 0 && ! after_dashes )); then
        _porthole_subcommands "$command"
        _porthole_words "$REPLY"
    fi
    _porthole_positional "$command" "$positionals"
    return 0
}

complete -F _porthole porthole
)SH";

std::string bash_script(const command& root) {
    std::vector<const command*> commands;
    flatten(root, commands);
    std::string out(bash_head);

    out +=
        "\n# The subcommands of command $1 (\"\" for porthole itself, \"config\") in REPLY.\n"
        "_porthole_subcommands() {\n    case $1 in\n";
    for (const command* cmd : commands)
        if (!cmd->subcommands.empty())
            out += fmt::format("        {}) REPLY={} ;;\n", sh_quoted(join(cmd->path, " ")),
                               sh_quoted(join(subcommand_names(*cmd), " ")));
    out += "        *) REPLY='' ;;\n    esac\n}\n";

    out += "\n# The flags of command $1 in REPLY.\n_porthole_flags() {\n    case $1 in\n";
    for (const command* cmd : commands) {
        std::vector<std::string> names;
        for (const auto& option : cmd->options)
            names.insert(names.end(), option.names.begin(), option.names.end());
        out += fmt::format("        {}) REPLY={} ;;\n", sh_quoted(join(cmd->path, " ")),
                           sh_quoted(join(names, " ")));
    }
    out += "        *) REPLY='' ;;\n    esac\n}\n";

    std::string valued, values;
    for (const command* cmd : commands) {
        std::vector<std::string> patterns_of_command;
        for (const auto& option : cmd->options) {
            if (!option.takes_value) continue;
            std::vector<std::string> patterns;
            for (const auto& name : option.names)
                patterns.push_back(sh_quoted(join(cmd->path, " ") + " " + name));
            patterns_of_command.insert(patterns_of_command.end(), patterns.begin(), patterns.end());
            if (const auto action = bash_action(option); !action.empty())
                values += fmt::format("        {}) {} ;;\n", join(patterns, " | "), action);
        }
        if (!patterns_of_command.empty())
            valued += fmt::format("        {}) return 0 ;;\n", join(patterns_of_command, " | "));
    }
    out +=
        "\n# Succeeds when flag $2 of command $1 takes a value.\n"
        "_porthole_takes_value() {\n    case \"$1 $2\" in\n" +
        valued + "    esac\n    return 1\n}\n";
    out +=
        "\n# Completes the value of flag $2 of command $1.\n"
        "_porthole_value() {\n    case \"$1 $2\" in\n" +
        values + "    esac\n}\n";

    out +=
        "\n# Completes positional argument $2 (counted from 0) of command $1.\n"
        "_porthole_positional() {\n    case $1 in\n";
    for (const command* cmd : commands) {
        std::string tests;
        int index = 0;
        for (const auto& positional : cmd->positionals) {
            const auto action = bash_action(positional);
            if (!action.empty())
                tests += fmt::format("            if (( $2 {} {} )); then {}; fi\n",
                                     positional.repeatable ? ">=" : "==", index, action);
            if (positional.repeatable) break;
            ++index;
        }
        if (!tests.empty())
            out += fmt::format("        {})\n{}            ;;\n", sh_quoted(join(cmd->path, " ")),
                               tests);
    }
    out += "    esac\n}\n";
    out += bash_main;
    return out;
}

// ---------------------------------------------------------------------------------------------
// zsh

// Inside an _arguments [description]: \, [ and ] are escaped.
std::string zsh_bracketed(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '\\' || c == '[' || c == ']') out += '\\';
        out += c;
    }
    return out;
}

// An _arguments message or a _describe word: \ and : are escaped.
std::string zsh_colon_escaped(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '\\' || c == ':') out += '\\';
        out += c;
    }
    return out;
}

std::string zsh_values_function(const command& cmd, const argument& arg) {
    auto name = arg.names.front();
    name.erase(0, name.find_first_not_of('-'));
    return "_porthole_values" + identifier(cmd.path) + identifier({lowercase(name)});
}

std::string zsh_action(const command& cmd, const argument& arg) {
    switch (arg.kind) {
    case value_kind::file: return "_files";
    case value_kind::directory: return "_files -/";
    case value_kind::words:
        return has_descriptions(arg) ? zsh_values_function(cmd, arg) : "(" + words_of(arg) + ")";
    case value_kind::tunnel_names: return "_porthole_tunnel_names";
    case value_kind::text:
    case value_kind::help_topics: break;
    }
    return " ";
}

std::string zsh_option_spec(const command& cmd, const argument& option) {
    std::string exclusions;
    if (option.is_help)
        exclusions = "(- : *)";
    else if (option.names.size() > 1)
        exclusions = "(" + join(option.names, " ") + ")";
    if (option.repeatable) exclusions += "*";
    std::vector<std::string> names;
    for (const auto& name : option.names)
        names.push_back(name + (!option.takes_value ? "" : name.starts_with("--") ? "=" : "+"));
    std::string rest = "[" + zsh_bracketed(option.description) + "]";
    if (option.takes_value) {
        auto message = option.names.front();
        message.erase(0, message.find_first_not_of('-'));
        rest += ":" + zsh_colon_escaped(message) + ":" + zsh_action(cmd, option);
    }
    if (names.size() == 1) return sh_quoted(exclusions + names.front() + rest);
    return (exclusions.empty() ? "" : sh_quoted(exclusions)) + "{" + join(names, ",") + "}" +
           sh_quoted(rest);
}

std::string zsh_positional_spec(const command& cmd, const argument& positional, int index) {
    const std::string message = positional.description.empty() ? lowercase(positional.names.front())
                                                               : positional.description;
    return sh_quoted((positional.repeatable ? std::string("*") : std::to_string(index + 1)) + ":" +
                     zsh_colon_escaped(message) + ":" + zsh_action(cmd, positional));
}

std::string zsh_describe_function(std::string_view name, std::string_view tag,
                                  std::string_view description,
                                  const std::vector<std::pair<std::string, std::string>>& items) {
    std::string out = fmt::format("{}() {{\n    local -a items=(\n", name);
    for (const auto& [word, text] : items)
        out += fmt::format("        {}\n", sh_quoted(zsh_colon_escaped(word) + ":" + text));
    out += fmt::format("    )\n    _describe -t {} {} items\n}}\n\n", tag, sh_quoted(description));
    return out;
}

std::string zsh_command_function(const command& cmd) {
    const bool is_root = cmd.path.empty();
    const std::string name = is_root ? "_porthole" : "_porthole_cmd" + identifier(cmd.path);
    std::vector<std::string> specs;
    for (const auto& option : cmd.options) specs.push_back(zsh_option_spec(cmd, option));
    std::string out = name + "() {\n";
    if (is_root) out += "    local _porthole_bin=$words[1]\n";
    if (cmd.subcommands.empty()) {
        int index = 0;
        for (const auto& positional : cmd.positionals)
            specs.push_back(zsh_positional_spec(cmd, positional, index++));
        out += "    _arguments -S";
        for (const auto& spec : specs) out += " \\\n        " + spec;
        return out + "\n}\n\n";
    }
    specs.push_back(sh_quoted("1: :_porthole_cmds" + identifier(cmd.path)));
    specs.push_back(sh_quoted("*:: :->subcommand"));
    out +=
        "    local curcontext=$curcontext state state_descr line ret=1\n"
        "    local -A opt_args\n"
        "    _arguments -C -S";
    for (const auto& spec : specs) out += " \\\n        " + spec;
    out +=
        " && ret=0\n"
        "    if [[ $state == subcommand ]]; then\n";
    std::string context = "porthole";
    for (const auto& part : cmd.path) context += "-" + part;
    out += fmt::format("        curcontext=${{curcontext%:*:*}}:{}-$words[1]:\n", context);
    out += "        case $words[1] in\n";
    for (const auto& sub : cmd.subcommands)
        out += fmt::format("            ({}) _porthole_cmd{} && ret=0 ;;\n", sub.path.back(),
                           identifier(sub.path));
    out += "        esac\n    fi\n    return ret\n}\n\n";
    return out;
}

constexpr std::string_view zsh_head = R"SH(#compdef porthole
# zsh completion for porthole: the subcommands, flags and values of this build.
# Install: porthole completion zsh > DIR/_porthole, with DIR on $fpath before compinit runs;
# or load it into a running shell (after compinit):  source <(porthole completion zsh)

# The tunnels of the config file given with --config (or the default one).
_porthole_tunnel_names() {
    local config=${(Q)opt_args[--config]} bin=${_porthole_bin:-porthole}
    local -a args=(config names) names expl
    bin=${bin/#\~/$HOME}
    config=${config/#\~/$HOME}
    [[ -n $config ]] && args+=(--config ${(q)config})
    names=(${(f)"$(_call_program tunnels ${(q)bin} $args 2>/dev/null)"})
    _wanted tunnels expl tunnel compadd -a names
}

)SH";

constexpr std::string_view zsh_tail = R"SH(if [[ $funcstack[1] == _porthole ]]; then
    _porthole "$@"
else
    compdef _porthole porthole
fi
)SH";

std::string zsh_script(const command& root) {
    std::vector<const command*> commands;
    flatten(root, commands);
    std::string out(zsh_head);
    for (const command* cmd : commands) {
        out += zsh_command_function(*cmd);
        if (!cmd->subcommands.empty()) {
            std::vector<std::pair<std::string, std::string>> items;
            for (const auto& sub : cmd->subcommands)
                items.emplace_back(sub.path.back(), sub.description);
            std::string title = "porthole";
            for (const auto& part : cmd->path) title += " " + part;
            out += zsh_describe_function("_porthole_cmds" + identifier(cmd->path), "commands",
                                         title + " command", items);
        }
        auto arguments = cmd->options;
        arguments.insert(arguments.end(), cmd->positionals.begin(), cmd->positionals.end());
        for (const auto& arg : arguments) {
            if (arg.kind != value_kind::words || !has_descriptions(arg)) continue;
            std::vector<std::pair<std::string, std::string>> items;
            for (const auto& c : arg.choices) items.emplace_back(c.word, c.description);
            out += zsh_describe_function(zsh_values_function(*cmd, arg), "values",
                                         lowercase(arg.names.front()), items);
        }
    }
    out += zsh_tail;
    return out;
}

}  // namespace

std::string completion_script(const CLI::App& app, std::string_view shell) {
    const command root = describe(app, app, {});
    if (shell == "bash") return bash_script(root);
    if (shell == "zsh") return zsh_script(root);
    return {};
}

}  // namespace porthole::cli
