#include "policy/policy.hpp"

#include <boost/beast/core/string.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace porthole::policy {

namespace {

// 32 hex digits: a random prefix per thread and a counter, so an id costs no system call.
std::string fresh_request_id() {
    static thread_local const std::uint64_t prefix = [] {
        std::uint64_t v = 0;
        RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v);
        return v;
    }();
    static thread_local std::uint64_t counter = 0;
    static constexpr char hex[] = "0123456789abcdef";
    std::string id(32, '0');
    const std::array<std::uint64_t, 2> halves{prefix, ++counter};
    for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t i = 0; i < 16; ++i)
            id[h * 16 + i] = hex[(halves[h] >> (60 - 4 * i)) & 0xf];
    return id;
}

}  // namespace

std::string response_of(const answer& a, bool head_request, bool close) {
    std::string out = fmt::format("HTTP/1.1 {} {}\r\n", a.status, http::reason_phrase(a.status));
    out.append(a.fields);
    if (!a.content_type.empty()) out.append("Content-Type: ").append(a.content_type).append("\r\n");
    out.append(fmt::format("Content-Length: {}\r\n", a.body.size()));
    if (a.no_store) out.append("Cache-Control: no-store\r\n");
    out.append(close ? "Connection: close\r\n" : "").append("Server: porthole\r\n\r\n");
    if (!head_request) out.append(a.body);
    return out;
}

void set_field(http::header_edits& e, std::string_view name, std::optional<std::string> value) {
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
    e.remove.push_back(std::move(lower));
    std::erase_if(e.add, [&](const http::field& f) { return boost::beast::iequals(f.name, name); });
    if (value) e.add.push_back({std::string(name), std::move(*value)});
}

const std::string& request_id(request_context& r) {
    if (r.request_id.empty()) {
        const std::string* sent = r.head.find("x-request-id");
        r.request_id = sent ? *sent : fresh_request_id();
    }
    return r.request_id;
}

}  // namespace porthole::policy
