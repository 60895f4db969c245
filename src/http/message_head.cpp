#include "http/message_head.hpp"

#include "http/header_edits.hpp"
#include "http/token_char.hpp"

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

// RFC 3986 reg-name / IP-literal characters, and an optional :port.
bool valid_host_value(std::string_view host) {
    if (host.empty() || host.size() > 255) return false;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("-._~:[]!$&'()*+,;=%").find(c) != std::string_view::npos;
    });
}

// Calls f(token) for each non-empty element of a comma-separated list.
template <class F>
void for_each_token(std::string_view list, F&& f) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        if (const auto t = trim_ows(list.substr(0, comma)); !t.empty()) f(t);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

// "http://" or "https://" (any case) at the start of an absolute-form target: its length, or 0.
std::size_t scheme_length(std::string_view target) {
    if (target.size() >= 7 && iequals(target.substr(0, 7), "http://")) return 7;
    if (target.size() >= 8 && iequals(target.substr(0, 8), "https://")) return 8;
    return 0;
}

// host[:port] without a port the scheme implies, for comparing authorities.
std::string_view without_default_port(std::string_view authority, bool https) {
    const auto colon = authority.rfind(':');
    if (colon == std::string_view::npos || authority.back() == ']') return authority;
    const auto port = authority.substr(colon + 1);
    if (port.empty() || port == (https ? "443" : "80")) return authority.substr(0, colon);
    return authority;
}

// Field names a Connection header lists: they are hop-by-hop too.
bool listed_in(std::string_view name, const std::vector<std::string_view>& listed) {
    return std::any_of(listed.begin(), listed.end(), [&](auto l) { return iequals(name, l); });
}

std::vector<std::string_view> connection_tokens(const message_head& head) {
    std::vector<std::string_view> tokens;
    for (const auto& f : head.fields)
        if (iequals(f.name, "connection"))
            for_each_token(f.value, [&](std::string_view t) { tokens.push_back(t); });
    return tokens;
}

}  // namespace

std::optional<field_rejection> field_problem(boost::beast::http::field name,
                                             std::string_view value, bool request) {
    using boost::beast::http::field;
    value = trim_ows(value);
    if (name == field::content_length) {
        if (value.empty() || value.size() > 18 ||
            !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return field_rejection{400, "Content-Length must be one decimal number of at most 18 digits"};
    } else if (name == field::transfer_encoding) {
        unsigned chunked = 0, others = 0;
        bool chunked_last = false;
        for_each_token(value, [&](std::string_view t) {
            chunked_last = iequals(t, "chunked");
            chunked_last ? ++chunked : ++others;
        });
        if (chunked > 1) return field_rejection{400, "Transfer-Encoding names chunked more than once"};
        if (request && (others > 0 || chunked == 0))
            return field_rejection{501, "only Transfer-Encoding: chunked is supported in requests"};
        if (!chunked_last) return field_rejection{400, "Transfer-Encoding must end in chunked"};
    } else if (name == field::connection) {
        bool names_framing = false;
        for_each_token(value, [&](std::string_view t) {
            names_framing |= is_one_of(t, {"content-length", "transfer-encoding", "host"});
        });
        if (names_framing)
            return field_rejection{400, "Connection must not name Content-Length, Transfer-Encoding "
                                  "or Host"};
    }
    return std::nullopt;
}

std::string_view origin_form(std::string_view target) {
    const std::size_t scheme = scheme_length(target);
    if (scheme == 0) return target;
    target.remove_prefix(scheme);
    const auto end = target.find_first_of("/?");
    return end == std::string_view::npos ? std::string_view() : target.substr(end);
}

std::optional<rejection> check_raw_head(std::string_view head) {
    for (std::size_t i = 0; i < head.size(); ++i) {
        const char c = head[i];
        if (c == '\r' && (i + 1 >= head.size() || head[i + 1] != '\n'))
            return rejection{400, "bare CR in the request head"};
        if (c == '\n') {
            if (i == 0 || head[i - 1] != '\r') return rejection{400, "bare LF in the request head"};
            if (i + 1 < head.size() && (head[i + 1] == ' ' || head[i + 1] == '\t'))
                return rejection{400, "obsolete line folding in a header field"};
        }
    }
    return std::nullopt;
}

const std::string* message_head::find(std::string_view name) const {
    for (const auto& f : fields)
        if (iequals(f.name, name)) return &f.value;
    return nullptr;
}

std::vector<field> fields_of(std::string_view raw_head) {
    std::vector<field> out;
    auto line_end = raw_head.find("\r\n");
    while (line_end != std::string_view::npos) {
        raw_head.remove_prefix(line_end + 2);
        line_end = raw_head.find("\r\n");
        const auto line = raw_head.substr(0, line_end);
        const auto colon = line.find(':');
        if (line.empty()) break;  // the end of the head
        if (colon == std::string_view::npos) continue;
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        out.push_back({std::string(line.substr(0, colon)), std::string(value)});
    }
    return out;
}

std::optional<rejection> check_request(const framer<true>& request) {
    const message_head& head = request.head();
    int hosts = 0;
    const std::string* host = nullptr;
    bool transfer_encoding = false;
    for (const auto& f : head.fields) {
        if (iequals(f.name, "host")) {
            ++hosts;
            host = &f.value;
            if (!valid_host_value(f.value)) return rejection{400, "invalid Host header"};
        }
        if (iequals(f.name, "transfer-encoding")) transfer_encoding = true;
    }
    if (transfer_encoding && head.version < 11)
        return rejection{400, "Transfer-Encoding is not allowed in HTTP/1.0"};
    if (hosts > 1) return rejection{400, "more than one Host header"};
    if (hosts == 0 && head.version >= 11) return rejection{400, "missing Host header"};
    if (head.method == "CONNECT") return rejection{501, "CONNECT is not supported"};
    const std::string_view target = head.target;
    if (target.find('#') != std::string_view::npos)
        return rejection{400, "a request target has no fragment (#)"};
    if (target.starts_with('/')) return std::nullopt;
    if (target == "*") {
        if (head.method == "OPTIONS") return std::nullopt;
        return rejection{400, "the target * is only for OPTIONS"};
    }
    // Absolute form: an origin may route by its authority (RFC 9112 section 3.2.2), so it must
    // be the Host the relay routed by.
    const std::size_t scheme = scheme_length(target);
    if (scheme == 0) return rejection{400, "the request target must be a path or an http(s) URL"};
    const std::string_view rest = target.substr(scheme);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
    const bool https = scheme == 8;
    if (!host || authority.find('@') != std::string_view::npos ||
        !iequals(without_default_port(authority, https), without_default_port(*host, https)))
        return rejection{400, "the authority of an absolute-form target must be the Host"};
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
    // Plain appends of known lengths: this runs once per request on the relay's hot path.
    using namespace std::string_view_literals;
    std::string out;
    out.reserve(256 + head.target.size() + head.fields.size() * 48);
    auto line = [&](std::string_view name, std::string_view a, std::string_view b = {}) {
        out.append(name).append(": "sv).append(a).append(b).append("\r\n"sv);
    };
    std::string_view target = how.target_override;
    if (target.empty()) {
        target = origin_form(head.target);
        target.remove_prefix(std::min(how.strip, target.size()));
    }
    out.append(head.method).append(" "sv);
    if (target.empty() || target.front() == '?') out.push_back('/');
    out.append(target).append(" HTTP/1."sv);
    out.push_back(static_cast<char>('0' + head.version % 10));
    out.append("\r\n"sv);
    const std::string* host = head.find("host");
    const std::string* upgrade = how.upgrade ? head.find("upgrade") : nullptr;
    const auto listed = connection_tokens(head);
    std::string chain;  // every X-Forwarded-For line, in order, then the visitor
    std::string via;
    const std::string* forwarded_host = how.from_trusted_proxy ? head.find("x-forwarded-host")
                                                               : nullptr;
    for (const auto& f : head.fields) {
        if (iequals(f.name, "x-forwarded-for")) {
            chain.append(f.value).append(", "sv);
            continue;
        }
        if (iequals(f.name, "via")) {
            via.append(f.value).append(", "sv);
            continue;
        }
        if (is_one_of(f.name, {"host", "x-forwarded-proto", "x-forwarded-host", "connection",
                               "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}) ||
            listed_in(f.name, listed) || (how.edits && how.edits->removes(f.name)))
            continue;
        line(f.name, f.value);
    }
    if (how.edits)
        for (const auto& f : how.edits->add) line(f.name, f.value);
    if (upgrade) {
        line("Connection"sv, "Upgrade"sv);
        line("Upgrade", *upgrade);
    }
    via.append(head.version % 10 == 0 ? "1.0 porthole" : "1.1 porthole");
    line("Via", via);
    if (how.host_header == "preserve") {
        if (host) line("Host", *host);
    } else {
        line("Host", how.host_header == "rewrite" ? how.target : how.host_header);
    }
    line("X-Forwarded-For", chain, how.visitor_ip);
    line("X-Forwarded-Proto", how.proto);
    if (forwarded_host)
        line("X-Forwarded-Host", *forwarded_host);
    else if (host)
        line("X-Forwarded-Host", *host);
    out.append("\r\n"sv);
    return out;
}

std::string_view reason_phrase(unsigned status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 304: return "Not Modified";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 413: return "Content Too Large";
    case 408: return "Request Timeout";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

std::string redirect_response(std::string_view location) {
    return fmt::format(
        "HTTP/1.1 308 Permanent Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n"
        "Connection: close\r\nServer: porthole\r\n\r\n",
        location);
}

std::string relay_response(unsigned status, std::string_view reason, std::string_view text,
                           std::string_view content_type) {
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
        "Connection: close\r\nServer: porthole\r\nCache-Control: no-store\r\n\r\n{}",
        status, reason, content_type, text.size(), text);
}

}  // namespace porthole::http
