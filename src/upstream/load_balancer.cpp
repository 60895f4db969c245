#include "upstream/load_balancer.hpp"

#include "net/address_group.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <random>
#include <utility>

namespace porthole::upstream {

std::string_view address_key(std::string_view client_ip, std::string& storage) {
    if (client_ip.find(':') == std::string_view::npos) return client_ip;
    storage = net::address_group(std::string(client_ip));
    return storage;
}
namespace {

// Ring points per unit of weight (after dividing weights by their gcd), and the most one ring
// holds (12 bytes each), so skewed weights cannot make a pool's ring huge.
constexpr std::uint64_t points_per_weight = 160;
constexpr std::uint64_t max_ring_points = 16384;
constexpr std::uint64_t golden_gamma = 0x9E3779B97F4A7C15ULL;

std::uint64_t splitmix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// FNV-1a alone mixes short, similar strings (addresses, URLs) poorly in its high bits; the
// finalizer fixes that. Unlike std::hash it is the same in every process, so cookies survive
// a restart.
std::uint64_t stable_hash(std::string_view s) {
    std::uint64_t h = 0xCBF29CE484222325ULL;
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001B3ULL;
    }
    return splitmix64(h);
}

// Point j of a member is a function of its key alone, so its points stay put when others change.
std::uint64_t ring_point(std::uint64_t key_hash, std::uint64_t j) {
    return splitmix64(key_hash + (j + 1) * golden_gamma);
}

std::uint32_t weight_of(const member_state& m) { return std::clamp(m.weight, 1U, 1000U); }

// a carries less load than b: active/weight compared by cross-multiplication.
bool lighter(const member_state& a, const member_state& b) {
    return std::uint64_t{a.active} * weight_of(b) < std::uint64_t{b.active} * weight_of(a);
}

// The value cookie_value() formats, or nullopt when `s` is not 16 hex digits.
std::optional<std::uint64_t> parse_cookie(std::string_view s) {
    std::uint64_t v = 0;
    const auto end = s.data() + s.size();
    if (s.size() != 16 || std::from_chars(s.data(), end, v, 16).ptr != end) return std::nullopt;
    return v;
}

}  // namespace

struct load_balancer::eligible {
    std::span<const member_state> members;  // trimmed to the list the balancer was built for
    std::span<const std::size_t> exclude;

    bool usable(std::size_t i) const {
        return i < members.size() && members[i].available &&
               std::find(exclude.begin(), exclude.end(), i) == exclude.end();
    }
    bool any() const {
        for (std::size_t i = 0; i < members.size(); ++i)
            if (usable(i)) return true;
        return false;
    }
};

load_balancer::load_balancer(policy p, std::span<const member_state> members, std::uint64_t seed)
    : policy_(p), random_state_(seed) {
    rebuild(members);
}

std::uint64_t load_balancer::random_seed() {
    std::random_device device;
    return std::uint64_t{device()} << 32 | device();
}

void load_balancer::rebuild(std::span<const member_state> members) {
    key_hashes_.clear();
    for (const auto& m : members) key_hashes_.push_back(stable_hash(m.key));
    current_.assign(members.size(), 0);
    next_ = 0;
    ring_points_.clear();
    ring_owners_.clear();
    if (policy_ != policy::ip_hash && policy_ != policy::cookie) return;

    // Divided by their gcd, equal weights of any size cost 160 points each.
    std::uint32_t divisor = 0;
    for (const auto& m : members) divisor = std::gcd(divisor, weight_of(m));
    std::uint64_t total = 0;
    for (const auto& m : members) total += points_per_weight * weight_of(m) / divisor;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> ring;
    ring.reserve(std::min(total, max_ring_points) + members.size());
    for (std::size_t i = 0; i < members.size(); ++i) {
        std::uint64_t points = points_per_weight * weight_of(members[i]) / divisor;
        if (total > max_ring_points)
            points = std::max<std::uint64_t>(1, points * max_ring_points / total);
        for (std::uint64_t j = 0; j < points; ++j)
            ring.emplace_back(ring_point(key_hashes_[i], j), static_cast<std::uint32_t>(i));
    }
    std::sort(ring.begin(), ring.end());
    ring_points_.reserve(ring.size());
    ring_owners_.reserve(ring.size());
    for (const auto& [point, owner] : ring) {
        ring_points_.push_back(point);
        ring_owners_.push_back(owner);
    }
}

std::optional<std::size_t> load_balancer::pick(std::span<const member_state> members,
                                               std::string_view affinity,
                                               std::span<const std::size_t> exclude) {
    const eligible e{members.first(std::min(members.size(), key_hashes_.size())), exclude};
    switch (policy_) {
    case policy::round_robin: return pick_round_robin(e);
    case policy::least_conn: return pick_least_conn(e);
    case policy::random_two: return pick_random_two(e);
    case policy::cookie:
        if (const auto named = parse_cookie(affinity)) {
            for (std::size_t i = 0; i < e.members.size(); ++i)
                if (key_hashes_[i] == *named && e.usable(i)) return i;
        }
        [[fallthrough]];
    case policy::ip_hash:
        if (affinity.empty()) return pick_round_robin(e);
        return pick_ring(e, stable_hash(affinity));
    }
    return std::nullopt;
}

void load_balancer::skip(std::span<const member_state> members, std::size_t picks) {
    std::vector<member_state> all(members.begin(), members.end());
    for (auto& m : all) m.available = true;
    for (std::size_t p = 0; p < picks; ++p) pick_round_robin(eligible{all, {}});
    next_ = all.empty() ? 0 : picks % all.size();
}

// nginx's smooth weighted round robin: weights 5:1:1 give a a b a c a a, not a a a a a b c.
std::optional<std::size_t> load_balancer::pick_round_robin(const eligible& e) {
    std::int64_t total = 0;
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < e.members.size(); ++i) {
        if (!e.usable(i)) continue;
        const std::int64_t weight = weight_of(e.members[i]);
        current_[i] += weight;
        total += weight;
        if (!best || current_[i] > current_[*best]) best = i;
    }
    if (best) current_[*best] -= total;
    return best;
}

// The scan starts after the last pick, so equally loaded members take turns.
std::optional<std::size_t> load_balancer::pick_least_conn(const eligible& e) {
    const std::size_t n = e.members.size();
    std::optional<std::size_t> best;
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = (next_ + k) % n;
        if (e.usable(i) && (!best || lighter(e.members[i], e.members[*best]))) best = i;
    }
    if (best) next_ = *best + 1;
    return best;
}

// Two distinct members drawn by weight, the lighter one taken: near least_conn's balance without
// every relay thread herding onto the same idle member.
std::optional<std::size_t> load_balancer::pick_random_two(const eligible& e) {
    std::uint64_t total = 0;
    std::size_t count = 0;
    for (std::size_t i = 0; i < e.members.size(); ++i) {
        if (!e.usable(i)) continue;
        total += weight_of(e.members[i]);
        ++count;
    }
    if (count == 0) return std::nullopt;
    const auto first = weighted_draw(e, total, e.members.size());
    if (count == 1) return first;
    const auto second = weighted_draw(e, total - weight_of(e.members[*first]), *first);
    return lighter(e.members[*second], e.members[*first]) ? second : first;
}

// A usable member other than `skip`, drawn with probability weight/total; `total` is the sum of
// their weights.
std::optional<std::size_t> load_balancer::weighted_draw(const eligible& e, std::uint64_t total,
                                                        std::size_t skip) {
    // The modulo bias is below total/2^64: irrelevant for at most ~10^9 total weight.
    std::uint64_t r = next_random() % total;
    std::optional<std::size_t> last;
    for (std::size_t i = 0; i < e.members.size(); ++i) {
        if (i == skip || !e.usable(i)) continue;
        const std::uint32_t weight = weight_of(e.members[i]);
        if (r < weight) return i;
        r -= weight;
        last = i;
    }
    return last;
}

// The first point at or after `hash`, walking on past members that are unusable for this pick,
// so only the visitors of a removed member move, each to its ring neighbour.
std::optional<std::size_t> load_balancer::pick_ring(const eligible& e, std::uint64_t hash) const {
    if (ring_points_.empty() || !e.any()) return std::nullopt;
    const std::size_t size = ring_points_.size();
    const std::size_t start = static_cast<std::size_t>(
        std::lower_bound(ring_points_.begin(), ring_points_.end(), hash) - ring_points_.begin());
    for (std::size_t k = 0; k < size; ++k) {
        const std::size_t owner = ring_owners_[(start + k) % size];
        if (e.usable(owner)) return owner;
    }
    return std::nullopt;
}

std::uint64_t load_balancer::next_random() {
    random_state_ += golden_gamma;
    return splitmix64(random_state_);
}

std::string load_balancer::cookie_value(std::size_t i) const {
    if (i >= key_hashes_.size()) return {};
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string value(16, '0');
    for (std::size_t k = 0; k < 16; ++k) value[k] = digits[(key_hashes_[i] >> (60 - 4 * k)) & 0xF];
    return value;
}

}  // namespace porthole::upstream
