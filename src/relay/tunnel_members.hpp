#pragma once
// How upstream pools reach tunnel:NAME members on this relay: the registry says which clients
// serve NAME (one, or a group, taken in turn), and a data connection of the chosen one carries
// the visitor. The tunnel's limits (connections, new connections a second) apply here.
#include "relay/relay_context.hpp"
#include "relay/tunnel_registry.hpp"
#include "upstream/upstream_pool.hpp"

namespace porthole::cluster {
class relay_link;
}

namespace porthole::relay {

class tunnel_members final : public upstream::tunnel_source {
public:
    tunnel_members(relay_context& ctx, tunnel_registry& registry)
        : ctx_(ctx), registry_(registry) {}

    // In a cluster: a name another relay holds is reached over the link to it.
    void use_link(cluster::relay_link* link) { link_ = link; }

    // Served here, or by another relay of the cluster.
    bool serving(const std::string& name) override;
    boost::asio::awaitable<tl::expected<upstream::tunnel_connection, upstream::open_failure>>
    open(const std::string& name, const std::string& visitor) override;
    // A TLS passthrough tunnel another relay holds: the link connection to it, ready for the
    // visitor's still-encrypted bytes; nullopt (logged) when none could be had.
    boost::asio::awaitable<std::optional<net::stream>> open_remote_tls(const std::string& name,
                                                                       const std::string& visitor);
    // A TLS passthrough tunnel a client of this relay serves: a data connection of one of its
    // clients, for the visitor's still-encrypted bytes (its limits applied, refusals counted).
    // The error is for the log: nothing can be said to the visitor before TLS.
    boost::asio::awaitable<tl::expected<upstream::tunnel_connection, std::string>> open_local_tls(
        const std::string& name, const std::string& visitor);
    // Only by the clients of this relay: what a link connection from another relay asks for.
    boost::asio::awaitable<tl::expected<upstream::tunnel_connection, upstream::open_failure>>
    open_local(const std::string& name, const std::string& visitor);

private:
    bool serving_here(const std::string& name);
    std::string next_link(const remote_tunnel& remote);

    relay_context& ctx_;
    tunnel_registry& registry_;
    cluster::relay_link* link_ = nullptr;
    std::size_t spread_ = 0;  // the turn among a remote group's relays
};

}  // namespace porthole::relay
