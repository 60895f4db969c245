#pragma once
// Picks the member of an upstream pool that serves a request: smooth weighted round robin, least
// connections, power of two random choices, or a consistent-hash ring keyed by the client address
// or a sticky cookie. Pure: no I/O and no clock. The pool owns the member list and its counters;
// this owns only the rotation and random state and the ring.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::upstream {

enum class policy { round_robin, least_conn, random_two, ip_hash, cookie };

// What the picker reads about one member; the pool owns these and keeps active/available current.
struct member_state {
    std::uint32_t weight = 1;  // 1..1000; values outside are clamped
    std::uint32_t active = 0;  // requests or connections in flight now
    bool available = true;     // healthy and not ejected
    std::string key;           // stable identity (the member's URL): ring points, cookie value
};

// The ip_hash key of a client address: an IPv4 address itself, an IPv6 address its /64 (one
// host's privacy addresses keep one member), written to `storage` when it differs.
std::string_view address_key(std::string_view client_ip, std::string& storage);

class load_balancer {
public:
    load_balancer(policy p, std::span<const member_state> members,
                  std::uint64_t seed = random_seed());

    // Members were added, removed or reordered, or a key or weight changed; the rotation restarts.
    // Not needed when only active or available change.
    void rebuild(std::span<const member_state> members);

    // Starts the rotation `picks` places on, as if that many requests had been served with
    // every member available: a relay's event loops begin their rotations at different members.
    void skip(std::span<const member_state> members, std::size_t picks);

    // The index of the member to use, or nullopt when every member is unavailable or in `exclude`
    // (the members already tried for this request). `members` is the list last given to the
    // constructor or rebuild(), with current active/available; indexes past it are ignored.
    //
    // `affinity` is read only by the hashing policies:
    //  - ip_hash: the client address without port, as address_key() gives it. Same address,
    //    same member while it is available.
    //  - cookie: the request's sticky cookie value when it has one, else the client address.
    //    A value equal to cookie_value(i) goes to member i when usable; any other value, or one
    //    naming an unusable member, is hashed onto the ring like an address. The caller sets the
    //    cookie to cookie_value(result) when it differs from what the request sent.
    //  - empty for either: no identity to stick to, so weighted round robin.
    // Allocates nothing.
    std::optional<std::size_t> pick(std::span<const member_state> members,
                                    std::string_view affinity = {},
                                    std::span<const std::size_t> exclude = {});

    // The cookie value that names member i: 16 hex digits of a hash of its key, so the address
    // is not shown (though a guessable key can be found by trying candidates). Empty past the end.
    std::string cookie_value(std::size_t i) const;

    policy kind() const { return policy_; }

    // A seed from std::random_device, for the one-time seeding of random_two's generator.
    static std::uint64_t random_seed();

private:
    struct eligible;  // which indexes a pick may return

    std::optional<std::size_t> pick_round_robin(const eligible& e);
    std::optional<std::size_t> pick_least_conn(const eligible& e);
    std::optional<std::size_t> pick_random_two(const eligible& e);
    std::optional<std::size_t> pick_ring(const eligible& e, std::uint64_t hash) const;
    std::optional<std::size_t> weighted_draw(const eligible& e, std::uint64_t total,
                                             std::size_t skip);
    std::uint64_t next_random();

    policy policy_;
    std::vector<std::uint64_t> key_hashes_;  // per member: ring seed and cookie value
    std::vector<std::int64_t> current_;      // per member: smooth weighted round robin state
    std::size_t next_ = 0;                   // least_conn: where the tie-breaking scan starts
    std::uint64_t random_state_;
    // The ring, sorted by point hash: ring_owners_[k] is the member owning ring_points_[k].
    std::vector<std::uint64_t> ring_points_;
    std::vector<std::uint32_t> ring_owners_;
};

}  // namespace porthole::upstream
