#include "http/message_head.hpp"

#include <boost/beast/http/error.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace porthole::http {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return (x | 0x20) == (y | 0x20);
    });
}

bool is_one_of(std::string_view name, std::initializer_list<std::string_view> names) {
    return std::any_of(names.begin(), names.end(), [&](auto n) { return iequals(name, n); });
}

std::string_view last_token(std::string_view list) {
    const auto comma = list.rfind(',');
    if (comma != std::string_view::npos) list.remove_prefix(comma + 1);
    while (!list.empty() && (list.front() == ' ' || list.front() == '\t')) list.remove_prefix(1);
    while (!list.empty() && (list.back() == ' ' || list.back() == '\t')) list.remove_suffix(1);
    return list;
}

}  // namespace

const std::string* message_head::find(std::string_view name) const {
    for (const auto& f : fields)
        if (iequals(f.name, name)) return &f.value;
    return nullptr;
}

std::optional<rejection> check_request(const framer<true>& request) {
    const message_head& head = request.head();
    int hosts = 0;
    bool transfer_encoding = false;
    for (const auto& f : head.fields) {
        if (iequals(f.name, "host")) ++hosts;
        if (iequals(f.name, "transfer-encoding")) {
            transfer_encoding = true;
            if (!iequals(last_token(f.value), "chunked"))
                return rejection{400, "Transfer-Encoding must end in chunked"};
        }
    }
    if (transfer_encoding && head.version < 11)
        return rejection{400, "Transfer-Encoding is not allowed in HTTP/1.0"};
    if (hosts > 1) return rejection{400, "more than one Host header"};
    if (hosts == 0 && head.version >= 11) return rejection{400, "missing Host header"};
    if (head.method == "CONNECT") return rejection{501, "CONNECT is not supported"};
    return std::nullopt;
}

rejection rejection_for(const boost::beast::error_code& ec) {
    namespace e = boost::beast::http;
    if (ec == e::error::header_limit) return {431, "request header section too large"};
    if (ec == e::error::bad_content_length || ec == e::error::multiple_content_length)
        return {400, "invalid Content-Length"};
    if (ec == e::error::bad_transfer_encoding) return {400, "invalid Transfer-Encoding"};
    return {400, fmt::format("malformed request ({})", ec.message())};
}

std::string forward_request_head(const message_head& head, const forwarding& how) {
    std::string out;
    out.reserve(512);
    fmt::format_to(std::back_inserter(out), "{} {} HTTP/1.{}\r\n", head.method, head.target,
                   head.version % 10);
    const std::string* host = head.find("host");
    std::string chain;  // every X-Forwarded-For line, in order, then the visitor
    for (const auto& f : head.fields) {
        if (iequals(f.name, "x-forwarded-for")) {
            chain += f.value;
            chain += ", ";
            continue;
        }
        if (is_one_of(f.name, {"host", "x-forwarded-proto", "x-forwarded-host"})) continue;
        fmt::format_to(std::back_inserter(out), "{}: {}\r\n", f.name, f.value);
    }
    if (how.host_header == "preserve") {
        if (host) fmt::format_to(std::back_inserter(out), "Host: {}\r\n", *host);
    } else {
        fmt::format_to(std::back_inserter(out), "Host: {}\r\n",
                       how.host_header == "rewrite" ? how.target : how.host_header);
    }
    fmt::format_to(std::back_inserter(out), "X-Forwarded-For: {}{}\r\n", chain, how.visitor_ip);
    fmt::format_to(std::back_inserter(out), "X-Forwarded-Proto: {}\r\n", how.proto);
    if (host) fmt::format_to(std::back_inserter(out), "X-Forwarded-Host: {}\r\n", *host);
    out += "\r\n";
    return out;
}

std::string relay_response(unsigned status, std::string_view reason, std::string_view text) {
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n"
        "Connection: close\r\nServer: porthole\r\nCache-Control: no-store\r\n\r\n{}",
        status, reason, text.size(), text);
}

}  // namespace porthole::http
