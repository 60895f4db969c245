// Any Accept-Encoding fields (the input's lines) against the compress policy: the coding chosen
// is one the route offers, one field holding them all joined by commas chooses the same, and a
// request and a response head built around them are judged without fault.
#include "policy/compress.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace {
using porthole::http::content_coding;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<std::string_view> fields;
    std::string joined;
    for (std::string_view rest = input; !rest.empty();) {
        const auto eol = rest.find('\n');
        fields.push_back(rest.substr(0, eol));
        joined.append(joined.empty() ? "" : ",").append(fields.back());
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    }
    const std::vector<std::vector<content_coding>> orders = {
        {content_coding::zstd, content_coding::br, content_coding::gzip},
        {content_coding::gzip},
        {content_coding::br, content_coding::gzip},
    };
    for (const auto& offered : orders) {
        const auto chosen = porthole::http::negotiate(fields, offered);
        if (chosen && std::find(offered.begin(), offered.end(), *chosen) == offered.end())
            std::abort();
        const std::string_view one = joined;
        if (!fields.empty() && porthole::http::negotiate({&one, 1}, offered) != chosen)
            std::abort();
    }

    static const porthole::policy::compression policy{porthole::config::compress_settings{}};
    porthole::http::message_head request;
    request.method = "GET";
    request.target = "/";
    for (auto f : fields) request.fields.push_back({"Accept-Encoding", std::string(f)});
    const auto judged = porthole::policy::read_request(policy, request, false);
    // The same text as a response's fields: whatever they say, the plan's edits are well formed.
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n";
    for (auto f : fields) {
        if (f.find_first_of("\r\0", 0, 2) != std::string_view::npos) continue;
        head.append(f.find(':') == std::string_view::npos ? "ETag: " : "").append(f).append("\r\n");
    }
    head.append("\r\n");
    const auto plan = porthole::policy::plan_response(policy, judged, 200, head, std::nullopt);
    porthole::http::header_edits edits;
    porthole::policy::edit_for(plan, head, edits);
    for (const auto& f : edits.add)
        if (f.value.find_first_of("\r\n") != std::string::npos) std::abort();
    return 0;
}
