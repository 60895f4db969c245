#pragma once
// The registry of a relay that is one of several sharing Redis (docs/design-scale.md): this
// relay's own tunnels in a local_registry, and who holds which name and port across the cluster
// in Redis, claimed atomically by Lua scripts so that two relays never both own one. A claim is a
// round trip to Redis; every per-request question is answered from this relay's state and its
// cache of what the others hold. Redis unreachable: claims are taken locally (degraded, logged),
// and the heartbeat claims everything again when it returns.
#include "cluster/redis_link.hpp"
#include "config/cluster_config.hpp"
#include "relay/local_registry.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <unordered_map>

namespace porthole::cluster {

using relay::clock;
using relay::owner_key;

class cluster_registry final : public relay::tunnel_registry {
public:
    // `changed` is bumped when what this relay knows of another's tunnels changes (routes cached
    // on connections are looked up again). `forbid`: the owner policy types the relay refuses.
    cluster_registry(boost::asio::io_context& io, relay::local_registry& local,
                     const config::cluster_config& cfg, clock::duration lease_grace,
                     std::vector<std::string> forbid, std::uint64_t& changed);

    // Connects and heartbeats until stop(); a failed connection is retried each beat.
    boost::asio::awaitable<void> run();
    // The first connection, for start-up: an error when Redis cannot be reached at all.
    boost::asio::awaitable<tl::expected<void, std::string>> connect();
    void stop();
    bool degraded() const { return degraded_; }
    const std::string& node() const { return cfg_.node_id; }
    // Called when the heartbeat finds that a tunnel of this relay is held elsewhere now (its
    // client reconnected through another relay, or a claim made while Redis was away lost).
    std::function<void(const relay::tunnel&, const std::string& why)> on_lost;
    // Each heartbeat: the TCP tunnel ports other relays hold, and the link of each, so that this
    // relay listens on them too.
    std::function<void(const std::map<std::uint16_t, std::string>&)> on_ports;
    // A port this relay's client claimed: whatever listened on it for another relay must go.
    std::function<void(std::uint16_t)> on_port_claimed;
    // This relay's sessions and tunnels per token, written to Redis each heartbeat so that the
    // per-token limits count every relay's.
    struct token_tally {
        std::string token_hex;
        std::uint32_t tunnels = 0, sessions = 0;
    };
    std::function<std::vector<token_tally>()> token_counts;
    // What every relay must have alike (tokens, sites, limits), as text: its digest goes with
    // the heartbeat, and a relay whose digest differs is logged and shown.
    std::function<std::string()> shared_config;

    boost::asio::awaitable<bool> claim_name(const relay::tunnel& t, clock::time_point now) override;
    bool name_held(const std::string& name, clock::time_point now) const override;
    owner_key name_holder(const std::string& name, clock::time_point now) const override {
        return local_.name_holder(name, now);
    }
    boost::asio::awaitable<bool> claim_port(std::uint16_t port, const owner_key& holder,
                                            clock::time_point now) override;
    bool port_held(std::uint16_t port, clock::time_point now) const override {
        return local_.port_held(port, now);
    }
    bool port_held_by(std::uint16_t port, const owner_key& holder,
                      clock::time_point now) const override {
        return local_.port_held_by(port, holder, now);
    }
    void drop_port(std::uint16_t port, const owner_key& holder) override;
    void drop_name(const std::string& name, const owner_key& holder) override;

    void add(const std::shared_ptr<relay::tunnel>& t) override { local_.add(t); }
    void remove(const relay::tunnel& t, bool leaving, clock::time_point now) override;

    // This relay's tunnels (its local_registry carries the node_id).
    std::vector<relay::tunnel_location> locate(protocol::tunnel_kind kind,
                                               const std::string& name) const override {
        return local_.locate(kind, name);
    }
    relay::tunnel_group* local(protocol::tunnel_kind kind, const std::string& name) override {
        return local_.local(kind, name);
    }
    std::shared_ptr<relay::tunnel> local_port(std::uint16_t port) const override {
        return local_.local_port(port);
    }
    void for_each_port(const std::function<void(relay::tunnel&)>& f) override {
        local_.for_each_port(f);
    }
    const relay::remote_tunnel* remote(const std::string& name) const override;
    boost::asio::awaitable<void> learn(const std::string& name, bool stale) override;

    void expire(clock::time_point now) override;
    void for_each_tunnel(const std::function<void(const relay::tunnel&)>& f) const override {
        local_.for_each_tunnel(f);
    }
    std::vector<lease> leases(clock::time_point now) const override { return local_.leases(now); }
    relay::lease_table<std::string>::end_result end_name_lease(const std::string& name,
                                                               clock::time_point now) override;
    relay::lease_table<std::string>::end_result end_port_lease(std::uint16_t port,
                                                               clock::time_point now) override;
    boost::asio::awaitable<std::optional<std::uint32_t>> admit_token(
        const std::string& token_hex, token_count what, std::uint32_t local_after,
        std::uint32_t limit) override;

    // For the admin API and metrics.
    std::size_t remote_known() const { return remote_.size(); }
    std::uint64_t lookups() const { return lookups_; }
    std::uint64_t events() const { return events_seen_; }  // changes heard on the channel
    struct node_seen {
        std::string node, link, ports;  // ports: "20001,20002"
        bool same_config = true;  // its digest of the shared config is this relay's
    };
    // The relays alive at the last heartbeat, this one included.
    const std::vector<node_seen>& nodes() const { return nodes_; }
    std::string redis_address() const { return redis_.address().describe(); }

private:
    struct known {
        std::optional<relay::remote_tunnel> where;  // nullopt: no relay holds it
        std::string policy_text;  // what `where->policies` was built from
        clock::time_point fresh_until{};
    };
    // One claim (or refresh) of `key` in Redis: true when this relay holds it now; nullopt when
    // Redis did not answer.
    boost::asio::awaitable<std::optional<bool>> claim_key(std::string key, owner_key holder,
                                                          std::string policies, bool cache,
                                                          std::string since,
                                                          protocol::tunnel_kind kind, bool group);
    void release_key(std::string key, const owner_key& holder, bool leaving);
    boost::asio::awaitable<void> heartbeat();
    void set_degraded(bool on, std::string_view why);
    // The channel of changes: subscribed on a connection of its own (a subscriber takes no
    // other command); what was cached while it was down is forgotten.
    boost::asio::awaitable<void> subscribe();
    void on_event(std::string_view message);
    // The next heartbeat now: a TCP port moved, or a name of this relay was claimed elsewhere.
    void beat_now();

    boost::asio::io_context& io_;
    relay::local_registry& local_;
    config::cluster_config cfg_;
    clock::duration lease_grace_;
    std::vector<std::string> forbid_;
    std::uint64_t& changed_;
    redis_link redis_;
    redis_link events_;
    boost::asio::steady_timer beat_;
    bool beat_soon_ = false;
    bool events_down_ = false;  // the subscription failed, and that was logged
    clock::time_point next_connect_{};
    bool degraded_ = false;
    clock::time_point settled_at_{};  // Redis came back: other relays have claimed again by then
    bool stopped_ = false;
    std::uint64_t lookups_ = 0;
    std::uint64_t events_seen_ = 0;
    std::unordered_map<std::string, known> remote_;  // other relays' names, by name
    std::vector<node_seen> nodes_;
    std::map<std::string, std::string> differing_;  // node -> the digest last warned about
};

}  // namespace porthole::cluster
