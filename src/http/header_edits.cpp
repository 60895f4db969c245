#include "http/header_edits.hpp"

#include <boost/beast/core/string.hpp>

namespace porthole::http {

bool header_edits::removes(std::string_view name) const {
    for (const auto& r : remove)
        if (boost::beast::iequals(r, name)) return true;
    return false;
}

bool has_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        const std::size_t comma = value.find(',');
        std::string_view element = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        element = element.substr(0, element.find_first_of("=;"));
        while (!element.empty() && (element.front() == ' ' || element.front() == '\t'))
            element.remove_prefix(1);
        while (!element.empty() && (element.back() == ' ' || element.back() == '\t'))
            element.remove_suffix(1);
        if (boost::beast::iequals(element, token)) return true;
    }
    return false;
}

std::string edit_head(std::string_view head, const header_edits& edits, std::string_view extra) {
    using namespace std::string_view_literals;
    std::string out;
    out.reserve(head.size() + extra.size() + edits.add.size() * 48);
    std::size_t pos = head.find("\r\n"sv);
    if (pos == std::string_view::npos) return std::string(head);
    out.append(head.substr(0, pos + 2));  // the start line
    pos += 2;
    // The framer accepted this head: every line ends in CRLF, with no obs-fold.
    while (pos < head.size()) {
        const std::size_t end = head.find("\r\n"sv, pos);
        if (end == std::string_view::npos || end == pos) break;  // the blank line
        const std::string_view line = head.substr(pos, end + 2 - pos);
        const std::string_view name = line.substr(0, line.find(':'));
        if (!edits.removes(name)) out.append(line);
        pos = end + 2;
    }
    for (const auto& f : edits.add) out.append(f.name).append(": "sv).append(f.value).append("\r\n"sv);
    out.append(extra);
    out.append("\r\n"sv);
    return out;
}

}  // namespace porthole::http
