#include "relay/loop_tunnels.hpp"

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

// Whatever the first loop's tunnel connection held (its slot among the tunnel's connections)
// is let go on the first loop's thread, which alone counts them.
struct held_on_first {
    held_on_first(asio::any_io_executor first, std::shared_ptr<void> hold)
        : first(std::move(first)), hold(std::move(hold)) {}
    held_on_first(const held_on_first&) = delete;
    held_on_first& operator=(const held_on_first&) = delete;
    asio::any_io_executor first;
    std::shared_ptr<void> hold;
    ~held_on_first() {
        if (hold) asio::post(first, [h = std::move(hold)] {});
    }
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

}  // namespace porthole::relay
