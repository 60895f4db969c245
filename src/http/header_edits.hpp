#pragma once
// Edits a route's policies make to the request head sent upstream and to the final response head
// sent to the visitor: fields removed by name, then fields added. Pure.
#include "http/message_head.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace porthole::http {

struct header_edits {
    std::vector<std::string> remove;  // names in lowercase: every field of each is dropped
    std::vector<field> add;           // appended after the head's own fields, in order

    bool empty() const { return remove.empty() && add.empty(); }
    bool removes(std::string_view name) const;
};

// Calls `f(name, value)` for each field of a raw head a framer accepted, in order; the value
// without the whitespace around it. Allocates nothing.
template <class F>
void for_each_field(std::string_view head, F&& f) {
    std::size_t pos = head.find("\r\n");
    if (pos == std::string_view::npos) return;
    pos += 2;
    while (pos < head.size()) {
        const std::size_t end = head.find("\r\n", pos);
        if (end == std::string_view::npos || end == pos) return;  // the blank line
        const std::string_view line = head.substr(pos, end - pos);
        const std::size_t colon = line.find(':');
        pos = end + 2;
        if (colon == std::string_view::npos) continue;
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
            value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        f(line.substr(0, colon), value);
    }
}

// Whether the comma-separated list `value` (Connection, Cache-Control, Vary, ...) has `token`,
// compared case-insensitively; an element's parameters ("max-age=0") are not part of its token.
bool has_token(std::string_view value, std::string_view token);

// The raw head `head` (start line, fields, blank line) with `edits` applied and `extra` (whole
// lines ending in CRLF) added last; every other byte as it was.
std::string edit_head(std::string_view head, const header_edits& edits, std::string_view extra);

}  // namespace porthole::http
