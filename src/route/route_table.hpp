#pragma once
// The configured sites: (host, path) -> route. Exact host names first, then the longest
// matching "*." wildcard, then a site for "*" (every host); within a site the first route whose whole-segment path prefix
// matches. Pure: no I/O; tunnel names under the relay's domain are the HTTP edge's fallback.
#include "config/error_pages.hpp"
#include "route/route.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace porthole::route {

struct site {
    std::vector<std::string> hosts;
    std::vector<std::shared_ptr<route>> routes;
    config::error_pages pages{};  // bodies for the relay's own answers on this site, by status
    std::uint32_t metric_slot = 0;  // its index in the config, where its requests are counted
};

// "Shop.Example.com:8443" -> "shop.example.com"; "[::1]:80" -> "::1"; a trailing dot goes.
std::string normalize_host(std::string_view host);

// The first route of `s` that takes `target`; nullptr when none does.
const route* route_for(const site& s, std::string_view target);

class route_table {
public:
    void add(site s);
    bool empty() const { return sites_.empty(); }

    // The site serving `host` (as the Host header has it); nullptr when none.
    const site* find_site(std::string_view host) const;
    // The route for the request; nullptr when no site serves the host, or none of its routes
    // takes the path. `site_found` tells the two apart.
    const route* match(std::string_view host, std::string_view target,
                       bool* site_found = nullptr) const;

    const std::vector<std::unique_ptr<site>>& sites() const { return sites_; }

private:
    std::vector<std::unique_ptr<site>> sites_;
    std::unordered_map<std::string, const site*> exact_;
    std::vector<std::pair<std::string, const site*>> wildcards_;  // ".example.com", longest first
    const site* any_ = nullptr;  // hosts = ["*"]: every host no other site serves
};

}  // namespace porthole::route
