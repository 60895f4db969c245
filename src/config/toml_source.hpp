#pragma once
// Reading TOML with errors that name FILE:LINE, shared by the relay and client config loaders.
#include <tl/expected.hpp>
#include <toml++/toml.h>

#include <fstream>
#include <sstream>
#include <string>

namespace porthole::config {

inline tl::expected<toml::table, std::string> parse_toml(std::string_view text,
                                                         const std::string& name) {
    try {
        return toml::parse(text, name);
    } catch (const toml::parse_error& e) {
        return tl::unexpected(std::string(name) + ":" + std::to_string(e.source().begin.line) +
                              ": " + std::string(e.description()));
    }
}

inline tl::expected<std::string, std::string> read_file(const std::string& path,
                                                        std::string_view what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return tl::unexpected(path + ": cannot open the " + std::string(what));
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace porthole::config
