#include "policy/header_rules.hpp"

#include <algorithm>

namespace porthole::policy {

namespace {

// The request target in origin form, split at its query.
std::pair<std::string_view, std::string_view> path_and_query(const http::message_head& head) {
    std::string_view uri = http::origin_form(head.target);
    const auto q = uri.find('?');
    if (q == std::string_view::npos) return {uri, {}};
    return {uri.substr(0, q), uri.substr(q)};
}

}  // namespace

value_template::value_template(std::string_view text) {
    static constexpr std::pair<std::string_view, part> names[] = {
        {"remote_addr", part::remote_addr}, {"host", part::host},     {"request_id", part::request_id},
        {"tunnel", part::tunnel},           {"scheme", part::scheme}, {"path", part::path},
        {"query", part::query},             {"uri", part::uri}};
    std::string literal;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '{') {
            const auto close = text.find('}', i);
            const std::string_view name =
                close == std::string_view::npos ? std::string_view() : text.substr(i + 1, close - i - 1);
            const auto* known = std::find_if(std::begin(names), std::end(names),
                                             [&](const auto& n) { return n.first == name; });
            if (known != std::end(names)) {  // the config checked the names; others stay text
                if (!literal.empty()) parts_.emplace_back(part::text, std::move(literal));
                literal.clear();
                parts_.emplace_back(known->second, std::string());
                i = close;
                continue;
            }
        }
        literal.push_back(text[i]);
    }
    if (!literal.empty()) parts_.emplace_back(part::text, std::move(literal));
}

std::string value_template::expand(request_context& r) const {
    std::string out;
    const auto [path, query] = path_and_query(r.head);
    for (const auto& [p, text] : parts_) {
        switch (p) {
        case part::text: out.append(text); break;
        case part::remote_addr: out.append(r.client_ip); break;
        case part::host: out.append(r.host); break;
        case part::request_id: out.append(request_id(r)); break;
        case part::tunnel: out.append(r.tunnel); break;
        case part::scheme: out.append(r.https ? "https" : "http"); break;
        case part::path: out.append(path); break;
        case part::query: out.append(query); break;
        case part::uri: out.append(path).append(query); break;
        }
    }
    return out;
}

std::string value_template::expand_location(const request_context& r) const {
    std::string out;
    const auto [path, query] = path_and_query(r.head);
    for (const auto& [p, text] : parts_) {
        switch (p) {
        case part::text: out.append(text); break;
        case part::host: {
            // Without its port, which belongs to this listener, not to where the redirect goes.
            std::string_view host = r.host;
            const auto colon = host.rfind(':');
            if (colon != std::string_view::npos && !host.ends_with(']')) host = host.substr(0, colon);
            out.append(host);
            break;
        }
        case part::path: out.append(path.empty() ? "/" : path); break;
        case part::query: out.append(query); break;
        case part::uri: out.append(path.empty() ? "/" : path).append(query); break;
        default: break;
        }
    }
    return out;
}

header_rules::header_rules(const config::header_settings& s)
    : request_remove_(s.request_remove), response_remove_(s.response_remove),
      request_id_(s.request_id) {
    const auto rules = [](const auto& pairs) {
        std::vector<field_rule> out;
        for (const auto& [name, value] : pairs) out.push_back({name, value_template(value)});
        return out;
    };
    request_set_ = rules(s.request_set);
    request_add_ = rules(s.request_add);
    response_set_ = rules(s.response_set);
    response_add_ = rules(s.response_add);
}

std::optional<answer> header_rules::on_request(request_context& r) {
    for (const auto& name : request_remove_) r.request.remove.push_back(name);
    for (const auto& rule : request_set_) set_field(r.request, rule.name, rule.value.expand(r));
    for (const auto& rule : request_add_) r.request.add.push_back({rule.name, rule.value.expand(r)});
    for (const auto& name : response_remove_) r.response.remove.push_back(name);
    for (const auto& rule : response_set_) set_field(r.response, rule.name, rule.value.expand(r));
    for (const auto& rule : response_add_)
        r.response.add.push_back({rule.name, rule.value.expand(r)});
    if (request_id_ && !r.head.find("x-request-id"))
        r.request.add.push_back({"X-Request-Id", request_id(r)});
    return std::nullopt;
}

}  // namespace porthole::policy
