#pragma once
// The TCP edge: the visitor listener of each TCP tunnel, a byte pump per visitor to a data
// connection of the tunnel's client.
#include "relay/relay_context.hpp"
#include "relay/session.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>

namespace porthole::relay {

class tcp_edge {
public:
    explicit tcp_edge(relay_context& ctx) : ctx_(ctx) {}

    // Accepts visitors on the tunnel's bound acceptor until it closes.
    void serve_tunnel(std::shared_ptr<tunnel> t);

private:
    boost::asio::awaitable<void> accept(std::shared_ptr<tunnel> t);
    boost::asio::awaitable<void> serve_visitor(boost::asio::ip::tcp::socket visitor,
                                               std::shared_ptr<tunnel> t);
    relay_context& ctx_;
};

}  // namespace porthole::relay
