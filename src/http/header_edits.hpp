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

// The raw head `head` (start line, fields, blank line) with `edits` applied and `extra` (whole
// lines ending in CRLF) added last; every other byte as it was.
std::string edit_head(std::string_view head, const header_edits& edits, std::string_view extra);

}  // namespace porthole::http
