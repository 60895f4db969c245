#include "policy/chain.hpp"

#include "policy/bandwidth.hpp"
#include "policy/basic_auth.hpp"
#include "policy/compress.hpp"
#include "policy/fixed_answers.hpp"
#include "policy/header_rules.hpp"
#include "policy/ip_rules.hpp"
#include "policy/jwks_fetch.hpp"
#include "policy/jwt_auth.hpp"
#include "policy/path_rewrite.hpp"
#include "policy/rate_limit.hpp"
#include "policy/verify_webhook.hpp"

#include <algorithm>
#include <variant>

namespace porthole::policy {

namespace {

std::shared_ptr<const key_ring> keys_of(const config::jwt_settings& s, const jwks_sources* jwks) {
    if (!s.jwks_url.empty())
        return jwks ? jwks->ring(s.jwks_url) : std::make_shared<const key_ring>();
    key_ring::key_set keys;
    if (!s.jwks.empty())
        if (auto set = parse_jwks(s.jwks)) keys = std::move(set->keys);
    return std::make_shared<const key_ring>(s.secret, std::move(keys));
}

}  // namespace

chain build_chain(const std::vector<config::policy_config>& configs, const jwks_sources* jwks) {
    chain out;
    for (const auto& c : configs) {
        out.push_back(std::visit(
            [&](const auto& s) -> std::shared_ptr<policy> {
                using T = std::decay_t<decltype(s)>;
                if constexpr (std::is_same_v<T, config::ip_rule_settings>)
                    return std::make_shared<ip_rule>(s.allow, *net::network_list::parse(s.cidrs));
                else if constexpr (std::is_same_v<T, config::basic_auth_settings>)
                    return std::make_shared<basic_auth>(s);
                else if constexpr (std::is_same_v<T, config::rate_limit_settings>)
                    return std::make_shared<rate_limit>(s);
                else if constexpr (std::is_same_v<T, config::header_settings>)
                    return std::make_shared<header_rules>(s);
                else if constexpr (std::is_same_v<T, config::redirect_settings>)
                    return std::make_shared<redirect>(s);
                else if constexpr (std::is_same_v<T, config::https_only_settings>)
                    return std::make_shared<https_only>(s);
                else if constexpr (std::is_same_v<T, config::respond_settings>)
                    return std::make_shared<respond>(s);
                else if constexpr (std::is_same_v<T, config::bandwidth_settings>)
                    return std::make_shared<bandwidth>(s);
                else if constexpr (std::is_same_v<T, config::jwt_settings>)
                    return std::make_shared<jwt_auth>(s, keys_of(s, jwks));
                else if constexpr (std::is_same_v<T, config::max_body_settings>)
                    return std::make_shared<max_body>(s);
                else if constexpr (std::is_same_v<T, config::rewrite_settings>)
                    return std::make_shared<path_rewrite>(s);
                else if constexpr (std::is_same_v<T, config::compress_settings>)
                    return std::make_shared<compression>(s);
                else
                    return std::make_shared<verify_webhook>(s);
            },
            c.settings));
    }
    return out;
}

bool keeps_first_loop_state(const chain& c) {
    return std::any_of(c.begin(), c.end(),
                       [](const auto& p) { return p->keeps_state() && !p->shared_by_loops(); });
}

bool share_steps(chain& mine, const chain& first) {
    if (mine.size() != first.size()) return false;
    for (std::size_t i = 0; i < mine.size(); ++i)
        if (mine[i]->type() != first[i]->type()) return false;
    for (std::size_t i = 0; i < mine.size(); ++i)
        if (first[i]->shared_by_loops()) mine[i] = first[i];
    return true;
}

std::uint64_t body_needed(const chain& c) {
    std::uint64_t most = 0;
    for (const auto& p : c) most = std::max(most, p->body_needed());
    return most;
}

}  // namespace porthole::policy
