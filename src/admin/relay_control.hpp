#pragma once
// What the admin API asks of the relay, as plain values: the relay implements it
// (relay/relay_admin), so src/admin/ includes nothing from src/relay/.
#include <chrono>
#include "observe/recent_events.hpp"
#include "observe/relay_counters.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace porthole::admin {

// Times are Unix seconds (UTC); what the API prints as RFC 3339.
using unix_seconds = std::int64_t;

struct client_info {
    std::string id{};  // 32 hex digits
    std::string address{};  // "203.0.113.7:51234"
    std::string agent{};  // "porthole/0.2.0"
    unsigned protocol = 0;
    std::string token{};  // the first 16 hex digits of the verifier; "" on a relay without tokens
    unix_seconds connected_since = 0;
    std::optional<double> rtt_ms{};  // the relay's own PING -> PONG, once one came back
    std::vector<std::string> tunnels{};  // "http:d7f2a", "tcp:20417", "tls:shop"
    std::size_t pool_idle = 0;
    std::size_t pool_waiting = 0;
};

struct tunnel_member_info {
    std::string client{};  // its session id's first 8 hex digits
    unix_seconds since = 0;
};

struct tunnel_info {
    std::string name{};  // "d7f2a", or the port for tcp
    std::string kind{};  // http, tcp, tls
    std::string url{};
    std::string state{};  // "serving" or "leased"
    std::string group{};  // empty: not a group
    std::vector<tunnel_member_info> members{};
    std::uint32_t open_connections = 0;
    std::optional<unix_seconds> lease_until{};
};

struct member_info {
    std::string url{};
    std::uint32_t weight = 1;
    std::string health{};  // healthy, failing, ejected, unchecked, no_client
    std::uint32_t active = 0;
    unsigned fails = 0;
    std::optional<unix_seconds> ejected_until{};
};

struct route_info {
    std::string path{};
    std::string lb_policy{};
    std::vector<member_info> members{};
};

struct site_info {
    std::vector<std::string> hosts{};
    std::vector<route_info> routes{};
};

struct tcp_site_info {
    std::string listen{};
    std::vector<member_info> members{};
};

struct sites_info {
    std::vector<site_info> sites{};
    std::vector<tcp_site_info> tcp_sites{};
};

// One cache: a site's (its first host, and the route's path when the route has its own) or
// the tunnels' ("tunnels").
struct cache_info {
    std::string name{};
    std::size_t bytes = 0;
    std::size_t entries = 0;
    std::size_t memory = 0;  // its budget
    std::uint64_t hits = 0, misses = 0, stale = 0, revalidated = 0, stores = 0, collapsed = 0;
    // The disk tier, when there is one (disk_size 0: none).
    std::size_t disk_bytes = 0, disk_entries = 0, disk_size = 0;
    std::uint64_t disk_reads = 0, disk_corrupt = 0, disk_failed = 0;
    bool disk_writing = true;  // false while a failed write keeps it off
};

struct cluster_info {
    std::string node{};  // this relay's node_id
    std::string redis{};  // where Redis is, without a password
    bool degraded = false;  // Redis unreachable: claims are taken locally
    struct peer {
        std::string node{};
        std::string link{};  // its advertise address
        std::string ports{};  // its TCP tunnels' ports, "20001,20002"
        bool same_config = true;  // tokens, sites, domain and per-token limits as this relay's
    };
    std::vector<peer> relays{};  // alive at the last heartbeat, this one included
    std::uint64_t lookups = 0;  // questions to Redis about names other relays may hold
    std::uint64_t events = 0;  // changes heard on the channel porthole:events
    std::uint64_t carried_out = 0;  // visitors carried over the link to the holding relay
    std::uint64_t carried_in = 0;  // ... and from other relays
    std::uint64_t link_refused = 0;  // link connections without the secret
};

struct token_info {
    std::string digest{};  // the verifier's first 16 hex digits
    std::string source{};  // "/var/lib/porthole/tokens:3", "relay.toml:9", "--token"
    std::string label{};
    std::size_t sessions = 0;
};

// What the relay counted since it started (requests by status class, bytes from and to
// visitors) and the sessions open now: the dashboard's rates are the differences of two.
struct traffic_totals {
    std::array<std::uint64_t, observe::code_classes.size()> by_class{};
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::size_t sessions = 0;
};

// What a change answered: done, or why not, as the API's status says.
enum class outcome { done, not_found, conflict, failed };

struct kick_result {
    outcome result = outcome::done;
    std::string message{};  // not done: why
    std::string closed{};  // the session id
    std::vector<std::string> tunnels{};
};

struct release_result {
    outcome result = outcome::done;
    std::string message{};
};

struct new_token {
    outcome result = outcome::done;
    std::string message{};
    std::string token{};  // shown once
    std::string digest{};
    std::string verifier{};  // "verifier:HEX", what the tokens file holds
};

struct revoke_result {
    outcome result = outcome::done;
    std::string message{};
    std::string revoked{};  // the digest
    std::size_t sessions_closed = 0;
};

struct reload_result {
    outcome result = outcome::done;  // failed: the new config was refused, the old one runs
    std::string message{};  // what changed, or why nothing did (FILE:LINE for a bad file)
    std::uint64_t generation = 0;  // of the running config, after
};

struct upgrade_result {
    outcome result = outcome::done;  // failed: the new process did not serve, this one still does
    std::string message{};  // why not, in the new process's words when it said
    std::int64_t pid = 0;  // the new process
    std::string binary{};
};
using upgrade_done = std::function<void(upgrade_result)>;

class relay_control {
public:
    virtual ~relay_control() = default;

    virtual std::vector<client_info> clients() const = 0;
    virtual std::vector<tunnel_info> tunnels() const = 0;  // serving ones, then leases
    virtual sites_info sites() const = 0;
    virtual std::vector<token_info> tokens() const = 0;
    // The effective config as a JSON document, every secret as "<redacted>".
    virtual std::string config_json() const = 0;
    virtual traffic_totals traffic() const = 0;
    // The last refusals and relay-made errors; its on_add hook tells of each new one.
    virtual observe::recent_events& recent() = 0;

    // `who` says who asked, for the log line.
    // A unique prefix of 8+ hex digits of a session id: that session ends as a dropped one does.
    virtual kick_result kick(const std::string& id_prefix, const std::string& who) = 0;
    // "NAME" or "tcp:PORT": a lease no session holds goes.
    virtual release_result release(const std::string& name, const std::string& who) = 0;
    virtual new_token add_token(const std::string& label, const std::string& who) = 0;
    // A prefix of 12+ hex digits of a verifier.
    virtual revoke_result revoke_token(const std::string& digest_prefix,
                                       const std::string& who) = 0;
    virtual std::vector<cache_info> caches() const = 0;
    // A relay of a cluster: itself, Redis, and the relays alive at its last heartbeat; nullopt
    // on a relay of its own.
    virtual std::optional<cluster_info> cluster() const { return std::nullopt; }
    // Drops stored responses from every cache: `url` ("https://host/path", or "host/path" for
    // both schemes), or every URL that starts with it when `prefix`. How many went.
    virtual std::size_t purge_cache(const std::string& url, bool prefix,
                                    const std::string& who) = 0;
    // Reads the config again and applies all of it or none (SIGHUP does the same).
    virtual reload_result reload(const std::string& who) = 0;
    // Starts `binary` ("": the relay's own program file) with the relay's arguments, hands it the
    // listening sockets, and drains once it serves; `done` is called once, when it serves or has
    // failed (within `wait`).
    virtual void upgrade(const std::string& binary, std::chrono::seconds wait,
                         const std::string& who, upgrade_done done) = 0;
};

}  // namespace porthole::admin
