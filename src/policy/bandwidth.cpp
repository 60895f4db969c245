#include "policy/bandwidth.hpp"

#include <algorithm>

namespace porthole::policy {
namespace {

// The smallest burst: below a few TCP segments a paced write costs more than it paces.
constexpr std::uint64_t least_burst = 16 * 1024;

std::shared_ptr<net::byte_shaper> shaper_for(std::uint64_t rate, std::uint64_t burst) {
    if (rate == 0) return nullptr;
    return std::make_shared<net::byte_shaper>(
        rate, burst ? burst : std::max<std::uint64_t>(rate / 10, least_burst));
}

}  // namespace

bandwidth::bandwidth(const config::bandwidth_settings& s)
    : up_(shaper_for(s.up, s.burst)), down_(shaper_for(s.down, s.burst)) {}

std::optional<answer> bandwidth::on_request(request_context& r) {
    r.shaping.add(up_, down_);
    return std::nullopt;
}

}  // namespace porthole::policy
