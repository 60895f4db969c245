#include "manpage.hpp"

#include "command_tree.hpp"
#include "help_topics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace porthole::cli {
namespace {

std::string page_name(const std::vector<std::string>& path) {
    std::string name = "porthole";
    for (const auto& part : path) name += "-" + part;
    return name;
}

std::string command_line(const command& cmd) {
    std::string line = "porthole";
    for (const auto& part : cmd.path) line += " " + part;
    return line;
}

std::string uppercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return text;
}

// "--config FILE", "-h, --help", "--token TEXT ...": short names first, as --help lists them.
std::string option_heading(const argument& option) {
    std::vector<std::string> names;
    for (const auto& name : option.names)
        if (!name.starts_with("--")) names.push_back("\\fB" + roff_escaped(name) + "\\fR");
    for (const auto& name : option.names)
        if (name.starts_with("--")) names.push_back("\\fB" + roff_escaped(name) + "\\fR");
    std::string out = join(names, ", ");
    if (option.takes_value) {
        std::string value = option.kind == value_kind::file        ? "FILE"
                            : option.kind == value_kind::directory ? "DIR"
                            : option.type_name.empty()             ? "VALUE"
                                                                   : option.type_name;
        out += " \\fI" + roff_escaped(value) + "\\fR";
        if (option.repeatable) out += " ...";
    }
    return out;
}

// " " after a sentence that ended, ". " after one that did not, nothing at the start.
std::string sentence_break(const std::string& text) {
    if (text.empty()) return {};
    return text.back() == '.' ? " " : ". ";
}

std::string argument_text(const argument& arg) {
    std::string text = arg.description;
    if (arg.kind == value_kind::words && !arg.choices.empty()) {
        std::vector<std::string> words;
        for (const auto& c : arg.choices) words.push_back(c.word);
        text += sentence_break(text) + "One of: " + join(words, ", ") + ".";
    }
    if (!arg.default_value.empty() && arg.takes_value)
        text += sentence_break(text) + "Default: " + arg.default_value + ".";
    return roff_escaped(text);
}

std::string synopsis(const command& cmd) {
    std::string out = ".SH SYNOPSIS\n.B " + roff_escaped(command_line(cmd)) + "\n";
    if (!cmd.options.empty()) out += "[\\fIOPTIONS\\fR]\n";
    if (!cmd.subcommands.empty()) {
        out += "\\fICOMMAND\\fR\n";
        return out;
    }
    for (const auto& p : cmd.positionals) {
        const std::string word = "\\fI" + roff_escaped(p.names.front()) + "\\fR" +
                                 (p.repeatable ? " ..." : "");
        out += (p.required ? word : "[" + word + "]") + "\n";
    }
    return out;
}

// The description as written: paragraphs at blank lines, lines indented by two spaces (examples)
// kept as they are.
std::string description(const command& cmd) {
    std::string out = ".SH DESCRIPTION\n";
    std::string_view text = cmd.full_description;
    if (cmd.path.empty() && text.starts_with("porthole: ")) text.remove_prefix(10);
    bool in_example = false;
    bool paragraph_open = false;
    while (!text.empty()) {
        const auto end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (line.empty()) {
            if (in_example) out += ".fi\n";
            in_example = false;
            paragraph_open = false;
            continue;
        }
        const bool example = line.starts_with("  ");
        if (example && !in_example) {
            out += ".PP\n.nf\n";
            in_example = true;
        } else if (!example && in_example) {
            out += ".fi\n";
            in_example = false;
            paragraph_open = false;
        }
        if (!example && !paragraph_open) {
            out += ".PP\n";
            paragraph_open = true;
        }
        out += roff_escaped(line) + "\n";
    }
    if (in_example) out += ".fi\n";
    return out;
}

std::string arguments_section(std::string_view title, const std::vector<argument>& args) {
    if (args.empty()) return {};
    std::string out = fmt::format(".SH {}\n", title);
    for (const auto& arg : args) {
        out += ".TP\n";
        if (arg.names.front().starts_with("-"))
            out += option_heading(arg) + "\n";
        else
            out += "\\fI" + roff_escaped(arg.names.front()) + "\\fR" +
                   (arg.repeatable ? " ..." : "") + "\n";
        out += argument_text(arg) + "\n";
    }
    return out;
}

std::string commands_section(const command& cmd) {
    if (cmd.subcommands.empty()) return {};
    std::string out = ".SH COMMANDS\n";
    for (const auto& sub : cmd.subcommands) {
        out += ".TP\n.B " + roff_escaped(command_line(sub)) + "\n";
        out += roff_escaped(sub.description) + "; see\n";
        out += ".BR \\%" + page_name(sub.path) + " (1).\n";
    }
    return out;
}

// Where each `porthole help TOPIC` page is printed in full: the page of the command it is about,
// under a section of its own. A topic not listed here goes into porthole(1) under its name.
struct topic_place {
    std::string_view topic;
    std::string_view command;  // a command path, "" for porthole itself
    std::string_view section;
};
constexpr topic_place topic_places[] = {
    {"server-config", "server", "CONFIGURATION FILE"},
    {"config", "start", "CONFIGURATION FILE"},
};

topic_place place_of(std::string_view topic) {
    for (const auto& place : topic_places)
        if (place.topic == topic) return place;
    return {topic, "", ""};
}

bool is_heading(std::string_view line) {
    return !line.empty() && line.front() != ' ' &&
           std::any_of(line.begin(), line.end(), [](unsigned char c) { return std::isupper(c); }) &&
           std::none_of(line.begin(), line.end(), [](unsigned char c) { return std::islower(c); });
}

// A topic's text as it prints, lines and columns kept (it is laid out for 100 columns), its
// all-capitals lines as subsection headings.
std::string topic_section(std::string_view title, std::string_view text) {
    std::string out = fmt::format(".SH {}\n.nf\n", title);
    while (!text.empty()) {
        const auto end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (is_heading(line))
            out += ".fi\n.SS " + roff_escaped(line) + "\n.nf\n";
        else
            out += roff_escaped(line) + "\n";
    }
    return out + ".fi\n";
}

std::string topic_sections(const command& cmd) {
    const std::string path = join(cmd.path, " ");
    std::string out;
    for (const auto& topic : help_topics()) {
        const auto place = place_of(topic.name);
        if (place.command != path) continue;
        out += topic_section(
            place.section.empty() ? uppercase(std::string(topic.name)) : place.section,
            topic.text);
    }
    return out;
}

std::string topics_section() {
    std::string out =
        ".SH REFERENCE PAGES\n"
        "\\fBporthole help\\fR \\fITOPIC\\fR prints one of these (also in man pages):\n";
    for (const auto& topic : help_topics()) {
        out += ".TP\n.B " + roff_escaped(topic.name) + "\n";
        const auto place = place_of(topic.name);
        if (place.command.empty()) {
            out += roff_escaped(topic.summary) + "; below.\n";
        } else {
            std::vector<std::string> path{std::string(place.command)};
            out += roff_escaped(topic.summary) + "; in\n.BR \\%" + page_name(path) + " (1).\n";
        }
    }
    return out;
}

std::string see_also(const command& cmd, const command& root) {
    std::vector<std::string> pages;
    if (!cmd.path.empty()) {
        auto parent = cmd.path;
        parent.pop_back();
        pages.push_back(page_name(parent));
    }
    for (const auto* other : flatten(root))
        if (other != &cmd && other->path.size() == 1 && cmd.path.empty())
            pages.push_back(page_name(other->path));
    for (const auto& sub : cmd.subcommands)
        if (!cmd.path.empty()) pages.push_back(page_name(sub.path));
    if (pages.empty()) return {};
    std::string out = ".SH SEE ALSO\n";
    for (std::size_t i = 0; i < pages.size(); ++i)
        out += ".BR \\%" + pages[i] + " (1)" + (i + 1 < pages.size() ? "," : "") + "\n";
    return out;
}

man_page page(const command& cmd, const command& root, std::string_view version) {
    const std::string name = page_name(cmd.path);
    std::string summary = cmd.description;
    if (cmd.path.empty() && summary.starts_with("porthole: ")) summary.erase(0, 10);
    if (cmd.path.empty()) summary = summary.substr(0, summary.find('.'));
    std::string text = fmt::format(
        ".\\\" Made by porthole manpage from the command line of porthole {0}.\n"
        ".TH {1} 1 \"\" \"porthole {0}\" \"porthole manual\"\n"
        ".SH NAME\n{2} \\- {3}\n",
        version, uppercase(name), roff_escaped(name), roff_escaped(summary));
    text += synopsis(cmd);
    text += description(cmd);
    text += commands_section(cmd);
    text += arguments_section("ARGUMENTS", cmd.positionals);
    text += arguments_section("OPTIONS", cmd.options);
    if (cmd.path.empty()) text += topics_section();
    text += topic_sections(cmd);
    text += see_also(cmd, root);
    return {name + ".1", std::move(text)};
}

// The code point of the UTF-8 sequence at `at`, which it steps past; U+FFFD for a broken one.
char32_t next_code_point(std::string_view text, std::size_t& at) {
    const auto lead = static_cast<unsigned char>(text[at++]);
    const int extra = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : -1;
    if (extra < 0) return 0xFFFD;
    char32_t cp = lead & (0x3F >> extra);
    for (int i = 0; i < extra; ++i) {
        if (at >= text.size() || (static_cast<unsigned char>(text[at]) & 0xC0) != 0x80)
            return 0xFFFD;
        cp = (cp << 6) | (static_cast<unsigned char>(text[at++]) & 0x3F);
    }
    return cp;
}

}  // namespace

std::string roff_escaped(std::string_view text) {
    std::string out;
    if (!text.empty() && (text.front() == '.' || text.front() == '\'')) out += "\\&";
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (static_cast<unsigned char>(c) >= 0x80) {
            out += fmt::format("\\[u{:04X}]", static_cast<std::uint32_t>(next_code_point(text, i)));
            continue;
        }
        ++i;
        if (c == '\\') {
            out += "\\e";
        } else if (c == '-' && (i == 1 || text[i - 2] == ' ' || text[i - 2] == '-' ||
                                text[i - 2] == '(' || text[i - 2] == '/' || text[i - 2] == '[')) {
            out += "\\-";  // an option's dashes: a minus sign, not a hyphen, so it can be copied
        } else {
            out += c;
        }
    }
    return out;
}

std::vector<man_page> man_pages(const CLI::App& app, std::string_view version) {
    const command root = describe(app);
    std::vector<man_page> pages;
    for (const command* cmd : flatten(root)) pages.push_back(page(*cmd, root, version));
    return pages;
}

}  // namespace porthole::cli
