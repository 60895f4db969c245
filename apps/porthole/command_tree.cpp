#include "command_tree.hpp"

#include "help_topics.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>

namespace porthole::cli {
namespace {

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

command describe_command(const CLI::App& root, const CLI::App& app, std::vector<std::string> path) {
    command cmd;
    cmd.path = std::move(path);
    cmd.description = one_line(app.get_description());
    cmd.full_description = app.get_description();
    const std::string key = join(cmd.path, " ");
    for (const CLI::Option* option : app.get_options()) {
        if (option->get_group().empty()) continue;  // hidden
        argument arg;
        arg.description = one_line(option->get_description());
        arg.repeatable = option->get_expected_max() > 1;
        arg.required = option->get_required();
        arg.default_value = option->get_default_str();
        if (const auto parts = split(option->get_type_name(), ':'); !parts.empty())
            arg.type_name = parts.front();
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
        cmd.subcommands.push_back(describe_command(root, *sub, std::move(sub_path)));
    }
    return cmd;
}

void flatten_into(const command& cmd, std::vector<const command*>& out) {
    out.push_back(&cmd);
    for (const auto& sub : cmd.subcommands) flatten_into(sub, out);
}

}  // namespace

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& part : parts) {
        if (!out.empty()) out += separator;
        out += part;
    }
    return out;
}

std::string lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

command describe(const CLI::App& app) { return describe_command(app, app, {}); }

std::vector<const command*> flatten(const command& root) {
    std::vector<const command*> out;
    flatten_into(root, out);
    return out;
}

}  // namespace porthole::cli
