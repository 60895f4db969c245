#pragma once
// rewrite: the path sent upstream, changed by prefix and by an RE2 expression (linear time, so a
// pattern cannot blow up); the query stays as the visitor sent it.
#include "config/policy_config.hpp"
#include "policy/policy.hpp"

#include <re2/re2.h>

#include <memory>
#include <string>

namespace porthole::policy {

class path_rewrite final : public policy {
public:
    explicit path_rewrite(const config::rewrite_settings& s);
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "rewrite"; }

    // `path` (no query) as this step sends it on.
    std::string apply(std::string_view path) const;

private:
    config::rewrite_settings s_;
    std::unique_ptr<RE2> from_;  // null: no expression
};

}  // namespace porthole::policy
