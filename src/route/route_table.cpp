#include "route/route_table.hpp"

#include "http/path_route.hpp"

#include <algorithm>

namespace porthole::route {

std::string normalize_host(std::string_view host) {
    if (host.starts_with('[')) {
        const auto end = host.find(']');
        host = end == std::string_view::npos ? host.substr(1) : host.substr(1, end - 1);
    } else if (const auto colon = host.rfind(':');
               colon != std::string_view::npos && host.find(':') == colon) {
        host = host.substr(0, colon);
    }
    if (host.ends_with('.')) host.remove_suffix(1);
    std::string out(host);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

void route_table::add(site s) {
    sites_.push_back(std::make_unique<site>(std::move(s)));
    const site* added = sites_.back().get();
    for (const auto& h : added->hosts) {
        if (h == "*")
            any_ = added;
        else if (h.starts_with("*."))
            wildcards_.emplace_back(h.substr(1), added);
        else
            exact_.emplace(h, added);
    }
    std::stable_sort(wildcards_.begin(), wildcards_.end(), [](const auto& a, const auto& b) {
        return a.first.size() > b.first.size();
    });
}

const site* route_table::find_site(std::string_view host) const {
    if (sites_.empty()) return nullptr;
    const std::string name = normalize_host(host);
    if (auto it = exact_.find(name); it != exact_.end()) return it->second;
    for (const auto& [suffix, s] : wildcards_)
        if (name.size() > suffix.size() && name.ends_with(suffix)) return s;
    return any_;
}

const route* route_for(const site& s, std::string_view target) {
    for (const auto& r : s.routes)
        if (r->path.empty() || http::path_matches(r->path, target)) return r.get();
    return nullptr;
}

const route* route_table::match(std::string_view host, std::string_view target,
                                bool* site_found) const {
    const site* s = find_site(host);
    if (site_found) *site_found = s != nullptr;
    return s ? route_for(*s, target) : nullptr;
}

}  // namespace porthole::route
