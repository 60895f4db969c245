#include "policy/ip_rules.hpp"

namespace porthole::policy {

std::optional<answer> ip_rule::on_request(request_context& r) {
    if (networks_.contains(r.client_address) == allow_) return std::nullopt;
    return answer{403, {}, "porthole: this site does not take requests from your address\n"};
}

}  // namespace porthole::policy
