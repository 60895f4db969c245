#pragma once
// headers: set, add and remove fields of the request sent upstream and of the response sent
// back, with {variables} filled per request; an X-Request-Id added when the visitor sent none.
#include "config/policy_config.hpp"
#include "policy/policy.hpp"

#include <string>
#include <vector>

namespace porthole::policy {

// A value with {variables}, split once into literal text and variable references.
class value_template {
public:
    explicit value_template(std::string_view text);
    std::string expand(request_context& r) const;
    // The same for a redirect's Location: {host} without port, {path}, {query}, {uri}.
    std::string expand_location(const request_context& r) const;

private:
    enum class part { text, remote_addr, host, request_id, tunnel, scheme, path, query, uri };
    std::vector<std::pair<part, std::string>> parts_;
};

class header_rules final : public policy {
public:
    explicit header_rules(const config::header_settings& s);
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "headers"; }

private:
    struct field_rule {
        std::string name;
        value_template value;
    };
    std::vector<field_rule> request_set_, request_add_, response_set_, response_add_;
    std::vector<std::string> request_remove_, response_remove_;
    bool request_id_;
};

}  // namespace porthole::policy
