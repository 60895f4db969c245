#include "acme/acme_messages.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

namespace porthole::acme {

using json = nlohmann::json;

namespace {

constexpr std::string_view error_prefix = "urn:ietf:params:acme:error:";
constexpr std::size_t max_list = 100;  // authorizations of an order, challenges of one

tl::expected<json, std::string> parse_object(std::string_view text) {
    json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
        return tl::unexpected(std::string("not a JSON object"));
    return doc;
}

// The string member `name`, "" when absent; an error when present with another
// type.
tl::expected<std::string, std::string> text_of(const json& doc, const char* name) {
    const auto it = doc.find(name);
    if (it == doc.end() || it->is_null()) return std::string();
    if (!it->is_string()) return tl::unexpected(fmt::format("\"{}\" is not a string", name));
    return it->get<std::string>();
}

tl::expected<std::string, std::string> url_of(const json& doc, const char* name, bool required) {
    auto url = text_of(doc, name);
    if (!url) return url;
    if (url->empty()) {
        if (required) return tl::unexpected(fmt::format("no \"{}\"", name));
        return url;
    }
    if (!url->starts_with("https://"))
        return tl::unexpected(fmt::format("\"{}\" is not an https URL", name));
    return url;
}

bool one_of(const std::string& status, std::initializer_list<std::string_view> known) {
    return std::find(known.begin(), known.end(), status) != known.end();
}

std::optional<problem> problem_of(const json& doc) {
    if (!doc.is_object()) return std::nullopt;
    const auto type = text_of(doc, "type");
    const auto detail = text_of(doc, "detail");
    if (!type || !detail || (type->empty() && detail->empty())) return std::nullopt;
    problem p;
    p.type = type->starts_with(error_prefix) ? type->substr(error_prefix.size()) : *type;
    p.detail = *detail;
    if (const auto sub = doc.find("subproblems"); sub != doc.end() && sub->is_array())
        for (const auto& s : *sub) {
            if (p.subproblems.size() == max_list) break;
            const auto d = s.is_object() ? text_of(s, "detail") : std::string();
            std::string who;
            if (s.is_object())
                if (const auto id = s.find("identifier"); id != s.end() && id->is_object())
                    if (auto v = text_of(*id, "value"); v) who = *v;
            p.subproblems.push_back(who.empty() ? d.value_or("") : who + ": " + d.value_or(""));
        }
    return p;
}

tl::expected<std::optional<problem>, std::string> error_member(const json& doc) {
    const auto it = doc.find("error");
    if (it == doc.end() || it->is_null()) return std::optional<problem>();
    if (!it->is_object()) return tl::unexpected(std::string("\"error\" is not an object"));
    return problem_of(*it);
}

}  // namespace

std::string problem::text() const {
    std::string out = type.empty() ? detail : (detail.empty() ? type : type + ": " + detail);
    for (const auto& s : subproblems) out += "; " + s;
    return out;
}

tl::expected<directory, std::string> parse_directory(std::string_view text) {
    auto doc = parse_object(text);
    if (!doc) return tl::unexpected("the directory is " + doc.error());
    directory d;
    for (auto [field, name, required] : {std::tuple{&d.new_nonce, "newNonce", true},
                                         std::tuple{&d.new_account, "newAccount", true},
                                         std::tuple{&d.new_order, "newOrder", true},
                                         std::tuple{&d.renewal_info, "renewalInfo", false}}) {
        auto url = url_of(*doc, name, required);
        if (!url) return tl::unexpected("the directory: " + url.error());
        *field = std::move(*url);
    }
    if (const auto meta = doc->find("meta"); meta != doc->end() && meta->is_object()) {
        if (auto tos = text_of(*meta, "termsOfService"); tos) d.terms_of_service = *tos;
        if (const auto eab = meta->find("externalAccountRequired");
            eab != meta->end() && eab->is_boolean())
            d.external_account_required = eab->get<bool>();
    }
    return d;
}

tl::expected<order, std::string> parse_order(std::string_view text) {
    auto doc = parse_object(text);
    if (!doc) return tl::unexpected("the order is " + doc.error());
    order o;
    auto status = text_of(*doc, "status");
    if (!status || !one_of(*status, {"pending", "ready", "processing", "valid", "invalid"}))
        return tl::unexpected(std::string("the order has no valid \"status\""));
    o.status = std::move(*status);
    const auto authz = doc->find("authorizations");
    if (authz == doc->end() || !authz->is_array() || authz->size() > max_list)
        return tl::unexpected(std::string("the order has no \"authorizations\" list"));
    for (const auto& a : *authz) {
        if (!a.is_string() || !a.get<std::string>().starts_with("https://"))
            return tl::unexpected(std::string("an authorization of the order is not an https URL"));
        o.authorizations.push_back(a.get<std::string>());
    }
    auto finalize = url_of(*doc, "finalize", true);
    if (!finalize) return tl::unexpected("the order: " + finalize.error());
    o.finalize = std::move(*finalize);
    auto certificate = url_of(*doc, "certificate", o.status == "valid");
    if (!certificate) return tl::unexpected("the order: " + certificate.error());
    o.certificate = std::move(*certificate);
    auto error = error_member(*doc);
    if (!error) return tl::unexpected("the order: " + error.error());
    o.error = std::move(*error);
    return o;
}

tl::expected<authorization, std::string> parse_authorization(std::string_view text) {
    auto doc = parse_object(text);
    if (!doc) return tl::unexpected("the authorization is " + doc.error());
    authorization a;
    auto status = text_of(*doc, "status");
    if (!status ||
        !one_of(*status, {"pending", "valid", "invalid", "deactivated", "expired", "revoked"}))
        return tl::unexpected(std::string("the authorization has no valid \"status\""));
    a.status = std::move(*status);
    const auto id = doc->find("identifier");
    if (id == doc->end() || !id->is_object())
        return tl::unexpected(std::string("the authorization has no \"identifier\""));
    auto type = text_of(*id, "type");
    auto value = text_of(*id, "value");
    if (!type || *type != "dns" || !value || value->empty())
        return tl::unexpected(std::string("the authorization is not for a DNS name"));
    a.identifier = std::move(*value);
    if (const auto w = doc->find("wildcard"); w != doc->end() && w->is_boolean())
        a.wildcard = w->get<bool>();
    const auto list = doc->find("challenges");
    if (list == doc->end() || !list->is_array() || list->size() > max_list)
        return tl::unexpected(std::string("the authorization has no \"challenges\" list"));
    for (const auto& c : *list) {
        if (!c.is_object()) return tl::unexpected(std::string("a challenge is not an object"));
        challenge ch;
        auto ctype = text_of(c, "type");
        auto url = url_of(c, "url", true);
        auto token = text_of(c, "token");
        auto cstatus = text_of(c, "status");
        if (!ctype || !url || !token || !cstatus)
            return tl::unexpected(std::string("a challenge has a field of the wrong type"));
        // RFC 8555 section 8.3: the token is base64url; anything else must not
        // reach a response.
        if (!std::all_of(token->begin(), token->end(), [](char ch) {
                return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
            }))
            return tl::unexpected(std::string("a challenge's token is not base64url"));
        ch.type = std::move(*ctype);
        ch.url = std::move(*url);
        ch.token = std::move(*token);
        ch.status = std::move(*cstatus);
        auto error = error_member(c);
        if (!error) return tl::unexpected("a challenge: " + error.error());
        ch.error = std::move(*error);
        a.challenges.push_back(std::move(ch));
    }
    return a;
}

std::optional<problem> parse_problem(std::string_view text) {
    const json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded()) return std::nullopt;
    return problem_of(doc);
}

std::string new_order_payload(const std::vector<std::string>& names) {
    json ids = json::array();
    for (const auto& n : names) ids.push_back({{"type", "dns"}, {"value", n}});
    return json{{"identifiers", ids}}.dump();
}

}  // namespace porthole::acme
