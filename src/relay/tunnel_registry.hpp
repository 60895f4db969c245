#pragma once
// Who serves which tunnel name and TCP port, and where, with the leases that keep a name or port
// for a client that reconnects. An interface: the in-memory registry (local_registry) serves one
// relay; a registry several relays share answers the same questions for another process, which
// is why `locate` returns values (a session id and the relay's node name), not pointers.
#include "protocol/frame.hpp"
#include "relay/lease_table.hpp"
#include "relay/session.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace porthole::relay {

// Where one tunnel serving a name lives.
struct tunnel_location {
    std::string session_id;  // hex
    std::string node;  // the relay that holds the session
    std::uint32_t tunnel_id = 0;
};

// The tunnels of this relay that serve one name: one, or the members of a group.
struct tunnel_group {
    std::vector<std::shared_ptr<tunnel>> members;
    std::uint32_t next = 0;  // rotation over the members

    // The next member whose client is connected, in turn; nullptr when none is.
    std::shared_ptr<tunnel> pick();
};

// Where another relay of a cluster serves a name, as this relay last learnt it.
struct remote_tunnel {
    std::string node;  // the relay that holds it
    std::string link;  // HOST:PORT of that relay's link; empty when that relay is gone
    // The links of every live relay serving it: that one's, then, for a tunnel group whose
    // clients are spread over relays, the others' (not this relay's).
    std::vector<std::string> links;
    bool serving = false;  // false: held by a lease (its client is away, or its relay is)
    protocol::tunnel_kind kind = protocol::tunnel_kind::http;  // http, or tls (passthrough)
    std::shared_ptr<const policy::chain> policies;  // the owner's; null when none
    std::string holder;  // the digest of its holder, as Redis keeps it (a cache's scope)
    bool owner_cache = false;  // its owner asked for the cache (--cache)
};

class tunnel_registry {
public:
    virtual ~tunnel_registry() = default;

    // Names (http and tls tunnels share them) and ports are claimed by a holder: the client, or
    // the group it joins. A claim succeeds when free, expired, or already the holder's. A name
    // is claimed for the tunnel `t` is to be (its kind, name, holder and owner's policies); a
    // registry several relays share asks its store, hence the wait.
    virtual boost::asio::awaitable<bool> claim_name(const tunnel& t, clock::time_point now) = 0;
    virtual bool name_held(const std::string& name, clock::time_point now) const = 0;
    // Who holds NAME now (a client or its group), by a session or a lease; empty when free.
    virtual owner_key name_holder(const std::string& name, clock::time_point now) const = 0;
    virtual boost::asio::awaitable<bool> claim_port(std::uint16_t port, const owner_key& holder,
                                                    clock::time_point now) = 0;
    virtual bool port_held(std::uint16_t port, clock::time_point now) const = 0;
    virtual bool port_held_by(std::uint16_t port, const owner_key& holder,
                              clock::time_point now) const = 0;
    // Give up a claim that came to nothing (the port could not be bound, the client left).
    virtual void drop_port(std::uint16_t port, const owner_key& holder) = 0;
    virtual void drop_name(const std::string& name, const owner_key& holder) = 0;

    // An opened tunnel serves its name or port from now on.
    virtual void add(const std::shared_ptr<tunnel>& t) = 0;
    // It stops; the last of a name's tunnels to go leaves a lease of lease_grace behind, unless
    // `leaving` (its client stopped cleanly): then the name or port is free at once.
    virtual void remove(const tunnel& t, bool leaving, clock::time_point now) = 0;

    // Who serves NAME, and where.
    virtual std::vector<tunnel_location> locate(protocol::tunnel_kind kind,
                                                const std::string& name) const = 0;
    // The tunnels of this relay serving NAME; nullptr when none.
    virtual tunnel_group* local(protocol::tunnel_kind kind, const std::string& name) = 0;
    virtual std::shared_ptr<tunnel> local_port(std::uint16_t port) const = 0;
    // Where another relay serves NAME (http or tls), as last learnt; null on a relay of its own.
    // Valid until the next learn(): copy what must outlive a wait.
    virtual const remote_tunnel* remote(const std::string& name) const = 0;
    // Brings what remote() knows of NAME up to date when it is not fresh: one question to the
    // shared store at most. `stale`: the last answer proved wrong (its relay did not serve it).
    virtual boost::asio::awaitable<void> learn(const std::string& name, bool stale = false) = 0;
    virtual void for_each_port(const std::function<void(tunnel&)>& f) = 0;

    // Leases past their grace end.
    virtual void expire(clock::time_point now) = 0;

    // For the admin API: every tunnel of this relay, and the leases no session holds.
    virtual void for_each_tunnel(const std::function<void(const tunnel&)>& f) const = 0;
    struct lease {
        std::string name{};  // a name, or empty for a port
        std::uint16_t port = 0;
        clock::time_point until{};
    };
    virtual std::vector<lease> leases(clock::time_point now) const = 0;
    // Ends the lease of a name or port early; one a session holds stays.
    virtual lease_table<std::string>::end_result end_name_lease(const std::string& name,
                                                                clock::time_point now) = 0;
    virtual lease_table<std::string>::end_result end_port_lease(std::uint16_t port,
                                                                clock::time_point now) = 0;

    // The per-token limits (max_tunnels_per_token, max_sessions_per_token) across every relay
    // sharing the registry. The relay checks its own count first; then this says whether one
    // more, `local_after` being this relay's count with it, stays within `limit` with what the
    // other relays hold: nullopt when it does, else their count. On a relay of its own there are
    // no others.
    enum class token_count { tunnels, sessions };
    virtual boost::asio::awaitable<std::optional<std::uint32_t>> admit_token(
        const std::string& token_hex, token_count what, std::uint32_t local_after,
        std::uint32_t limit) = 0;
};

}  // namespace porthole::relay
