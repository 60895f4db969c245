#pragma once
// How a worker loop reaches the tunnels it carries (tunnel_directory::carries): the first loop,
// which holds every session and its pool of data connections, takes a data connection of the
// tunnel's client (with the tunnel's limits, and STREAM_START answered), takes it off its own
// event loop and hands it to the worker, which serves the visitor's bytes over it from then on.
// One hand-over per visitor connection; the tunnel's connection slot goes back to the first loop
// when the worker closes the data connection. docs/architecture.md#threads
#include "relay/tunnel_directory.hpp"
#include "relay/tunnel_members.hpp"
#include "upstream/upstream_pool.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace porthole::relay {

// The first loop's side: its executor, its tunnel members and its registry.
struct first_loop_tunnels {
    boost::asio::any_io_executor executor;
    tunnel_members* members = nullptr;
    tunnel_registry* registry = nullptr;
};

class loop_tunnels final : public upstream::tunnel_source {
public:
    // `directory`: the worker's latest, replaced by posts from the first loop.
    // `handed`: counts the data connections it was given.
    loop_tunnels(boost::asio::any_io_executor here, first_loop_tunnels first,
                 const std::shared_ptr<const tunnel_directory>& directory, std::uint64_t& handed)
        : here_(std::move(here)), first_(std::move(first)), directory_(directory),
          handed_(handed) {}

    bool serving(const std::string& name) override { return directory_->carries(name); }
    boost::asio::awaitable<tl::expected<upstream::tunnel_connection, upstream::open_failure>>
    open(const std::string& name, const std::string& visitor) override;

    // The TLS tunnel a ClientHello's server name asks for, when this loop carries it.
    std::optional<std::string> carried_tls_name(std::string_view server_name,
                                                std::string_view domain) const;
    // A data connection of one of its clients, for the visitor's still-encrypted bytes; the
    // error is for the log.
    boost::asio::awaitable<tl::expected<upstream::tunnel_connection, std::string>> open_tls(
        const std::string& name, const std::string& visitor);

private:
    boost::asio::any_io_executor here_;
    first_loop_tunnels first_;
    const std::shared_ptr<const tunnel_directory>& directory_;
    std::uint64_t& handed_;
};

}  // namespace porthole::relay
