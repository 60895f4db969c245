#include "policy/path_rewrite.hpp"

namespace porthole::policy {

path_rewrite::path_rewrite(const config::rewrite_settings& s) : s_(s) {
    if (!s_.from.empty()) from_ = std::make_unique<RE2>(s_.from, RE2::Quiet);
}

std::string path_rewrite::apply(std::string_view path) const {
    std::string out(path);
    // A prefix on whole segments: "/api" takes /api and /api/x, not /apix.
    const std::string& strip = s_.strip_prefix;
    if (!strip.empty() && out.starts_with(strip) &&
        (out.size() == strip.size() || out[strip.size()] == '/'))
        out.erase(0, strip.size());
    if (out.empty()) out = "/";
    if (from_) RE2::Replace(&out, *from_, s_.to);
    if (!s_.add_prefix.empty()) out = s_.add_prefix + (out == "/" ? "" : out);
    if (out.empty() || out.front() != '/') out.insert(0, 1, '/');
    return out;
}

std::optional<answer> path_rewrite::on_request(request_context& r) {
    // What the path is now: an earlier rewrite's, or the visitor's after the route's strip_prefix.
    std::string_view target = r.target;
    if (target.empty()) {
        target = http::origin_form(r.head.target);
        target.remove_prefix(std::min(r.strip, target.size()));
    }
    const auto q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q);
    std::string rewritten = apply(path.empty() ? std::string_view("/") : path);
    rewritten.append(query);
    r.target = std::move(rewritten);
    return std::nullopt;
}

}  // namespace porthole::policy
