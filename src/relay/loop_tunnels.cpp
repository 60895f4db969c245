#include "relay/loop_tunnels.hpp"

#include "http/host_route.hpp"
#include "relay/held_on_first.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace porthole::relay {

namespace asio = boost::asio;
using failure = upstream::open_failure;

namespace {

// A tunnel connection off the first loop: its descriptor (and TLS state), and its slot.
struct handed_tunnel {
    net::released_stream conn;
    std::string host_header;
    std::string target;
    std::shared_ptr<void> hold;
};

// Runs on the first loop.
asio::awaitable<tl::expected<handed_tunnel, failure>> open_on_first(first_loop_tunnels first,
                                                                    std::string name,
                                                                    std::string visitor) {
    auto opened = co_await first.members->open(name, visitor);
    if (!opened) co_return tl::unexpected(std::move(opened.error()));
    auto hold = std::make_shared<held_on_first>(first.executor, std::move(opened->hold));
    co_return handed_tunnel{opened->stream.release(), std::move(opened->host_header),
                            std::move(opened->target), std::move(hold)};
}

asio::awaitable<tl::expected<handed_tunnel, std::string>> open_tls_on_first(
    first_loop_tunnels first, std::string name, std::string visitor) {
    auto opened = co_await first.members->open_local_tls(name, visitor);
    if (!opened) co_return tl::unexpected(std::move(opened.error()));
    auto hold = std::make_shared<held_on_first>(first.executor, std::move(opened->hold));
    co_return handed_tunnel{opened->stream.release(), {}, {}, std::move(hold)};
}

}  // namespace

asio::awaitable<tl::expected<upstream::tunnel_connection, failure>> loop_tunnels::open(
    const std::string& name, const std::string& visitor) {
    auto on_first = open_on_first(first_, name, visitor);
    auto handed =
        co_await asio::co_spawn(first_.executor, std::move(on_first), asio::use_awaitable);
    if (!handed) co_return tl::unexpected(std::move(handed.error()));
    ++handed_;
    co_return upstream::tunnel_connection{net::stream::adopt(std::move(handed->conn), here_),
                                          std::move(handed->host_header),
                                          std::move(handed->target), std::move(handed->hold)};
}

std::optional<std::string> loop_tunnels::carried_tls_name(std::string_view server_name,
                                                          std::string_view domain) const {
    auto name = http::tunnel_name_for_host(server_name, domain);
    if (name && directory_->carries_tls(*name)) return name;
    // A TLS tunnel may also be named by a whole host name of its own.
    if (directory_->carries_tls(std::string(server_name))) return std::string(server_name);
    return std::nullopt;
}

asio::awaitable<tl::expected<upstream::tunnel_connection, std::string>> loop_tunnels::open_tls(
    const std::string& name, const std::string& visitor) {
    auto on_first = open_tls_on_first(first_, name, visitor);
    auto handed =
        co_await asio::co_spawn(first_.executor, std::move(on_first), asio::use_awaitable);
    if (!handed) co_return tl::unexpected(std::move(handed.error()));
    ++handed_;
    co_return upstream::tunnel_connection{net::stream::adopt(std::move(handed->conn), here_), {},
                                          {}, std::move(handed->hold)};
}

}  // namespace porthole::relay
