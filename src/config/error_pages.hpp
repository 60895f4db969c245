#pragma once
// `error_pages = { 404 = "errors/404.html", 502 = "errors/502.html" }` in a [[sites]] table or in
// [tunnel_policy]: the bodies the relay sends, instead of its own short text, whenever it answers
// a request of that site (or of a tunnel) itself with one of those statuses. Read at load.
#include <tl/expected.hpp>
#include "config/toml.hpp"

#include <map>
#include <string>

namespace porthole::config {

struct error_page {
    std::string body;
    std::string content_type;  // from the file's extension
};

using error_pages = std::map<unsigned, error_page>;

// The largest page read: it is held in memory and sent whole.
inline constexpr std::size_t error_page_limit = 1 << 20;

// `n` is the `error_pages` table; `path` is the config file (pages are relative to its folder).
tl::expected<error_pages, std::string> load_error_pages(const toml::node& n,
                                                        const std::string& path);

}  // namespace porthole::config
