#pragma once
// What the relay's config reader says of one [[sites.policies]] table, for the policy tests.
#include "config/server_config.hpp"

#include <string>

namespace porthole::test {

// The error of a config whose one site has the table `policy_table` (its lines start at line
// 5 of "p.toml"); "" when the config loads.
inline std::string site_policy_error(const std::string& policy_table) {
    config::server_config cfg;
    const std::string text = "[[sites]]\nhosts = [\"a.example\"]\nupstream = [\"http://127.0.0.1:9\"]\n"
                             "[[sites.policies]]\n" + policy_table;
    auto r = config::load_server_text(text, "p.toml", cfg);
    return r ? std::string() : r.error();
}

}  // namespace porthole::test
