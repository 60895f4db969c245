#include "policy/policy.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

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

const std::string& request_id(request_context& r) {
    if (r.request_id.empty()) {
        const std::string* sent = r.head.find("x-request-id");
        r.request_id = sent ? *sent : fresh_request_id();
    }
    return r.request_id;
}

}  // namespace porthole::policy
