#pragma once
// How upstream pools reach tunnel:NAME members on this relay: the registry says which clients
// serve NAME (one, or a group, taken in turn), and a data connection of the chosen one carries
// the visitor. The tunnel's limits (connections, new connections a second) apply here.
#include "relay/relay_context.hpp"
#include "relay/tunnel_registry.hpp"
#include "upstream/upstream_pool.hpp"

namespace porthole::relay {

class tunnel_members final : public upstream::tunnel_source {
public:
    tunnel_members(relay_context& ctx, tunnel_registry& registry)
        : ctx_(ctx), registry_(registry) {}

    bool serving(const std::string& name) override;
    boost::asio::awaitable<tl::expected<upstream::tunnel_connection, upstream::open_failure>>
    open(const std::string& name, const std::string& visitor) override;

private:
    relay_context& ctx_;
    tunnel_registry& registry_;
};

}  // namespace porthole::relay
