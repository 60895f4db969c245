#include "policy/fixed_answers.hpp"

#include <fmt/format.h>

#include <charconv>

namespace porthole::policy {

namespace {

answer redirect_to(unsigned status, std::string location) {
    answer a{status, fmt::format("Location: {}\r\n", location), {}};
    a.no_store = false;
    a.content_type.clear();
    return a;
}

}  // namespace

std::optional<answer> redirect::on_request(request_context& r) {
    return redirect_to(status_, to_.expand_location(r));
}

std::optional<answer> https_only::on_request(request_context& r) {
    if (r.https) return std::nullopt;
    std::string_view host = r.host;
    const auto colon = host.rfind(':');
    if (colon != std::string_view::npos && !host.ends_with(']')) host = host.substr(0, colon);
    std::string_view uri = http::origin_form(r.head.target);
    const std::string_view slash = uri.starts_with('/') ? "" : "/";
    return redirect_to(status_, r.https_port == 443 || r.https_port == 0
                                    ? fmt::format("https://{}{}{}", host, slash, uri)
                                    : fmt::format("https://{}:{}{}{}", host, r.https_port, slash,
                                                  uri));
}

std::optional<answer> respond::on_request(request_context&) {
    answer a{s_.status, {}, s_.body, s_.content_type};
    a.no_store = false;
    return a;
}

std::optional<answer> max_body::on_request(request_context& r) {
    if (const std::string* length = r.head.find("content-length")) {
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
        if (ec == std::errc{} && n > size_)
            return answer{413, {},
                          fmt::format("porthole: the request body is over this site's limit of "
                                      "{} bytes\n",
                                      size_)};
    }
    r.body_limit = std::min(r.body_limit, size_);
    return std::nullopt;
}

}  // namespace porthole::policy
