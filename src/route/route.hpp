#pragma once
// A route: where a request that matched a site's host and path goes. An ordered policy chain
// runs first (each step may answer the request itself), then the upstream pool takes it.
#include "upstream/upstream_pool.hpp"

#include <memory>
#include <string>
#include <vector>

namespace porthole::route {

// What a policy step sees of a request, and what it may decide.
struct request_view {
    std::string_view method;
    std::string_view target;
    std::string_view host;
    std::string_view client_ip;
};
struct policy_answer {
    unsigned status = 0;  // 0: let the request through
    std::string text;
};
class policy {
public:
    virtual ~policy() = default;
    virtual policy_answer check(const request_view& r) = 0;
};

struct route {
    std::string path;  // whole-segment prefix; empty: every path
    bool strip_prefix = false;
    std::vector<std::unique_ptr<policy>> policies;
    std::shared_ptr<upstream::pool> pool;
};

}  // namespace porthole::route
