#pragma once
// The TCP edge: the visitor listener of each TCP tunnel, a byte pump per visitor to a data
// connection of the tunnel's client; and the listeners of [[tcp_sites]], a pump per visitor to
// a member of the site's upstream pool. They run on the first loop, which opens both ends of
// each connection and may hand its pump to another loop (relay/loop_pumps.hpp).
#include "config/site_config.hpp"
#include "relay/loop_pumps.hpp"
#include "relay/relay_context.hpp"
#include "relay/session.hpp"
#include "upstream/upstream_pool.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <tl/expected.hpp>

#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace porthole::relay {

class tcp_edge {
public:
    explicit tcp_edge(relay_context& ctx) : ctx_(ctx) {}

    // threads > 1: the other loops, which take turns pumping the connections this one opens.
    void spread_pumps_over(std::vector<pump_fn> others) { pumps_.spread_over(std::move(others)); }

    // Accepts visitors on the tunnel's bound acceptor until it closes.
    void serve_tunnel(std::shared_ptr<tunnel> t);

    // Makes the pools of the tcp sites and binds their listeners.
    tl::expected<void, std::string> listen_sites(const std::vector<config::tcp_site_config>& sites);
    // Accepts on them and starts their health checks.
    void start_sites();
    // Closes their listeners and stops their checks; open connections run on.
    void stop_sites();
    // Where each tcp site listens, in config order.
    std::vector<boost::asio::ip::tcp::endpoint> site_endpoints() const;
    // Their listening sockets, for a relay that replaces this one: (where, fd).
    std::vector<std::pair<std::string, int>> site_listeners();
    // Their pools, in the same order.
    std::vector<std::shared_ptr<upstream::pool>> site_pools() const;

private:
    struct tcp_site {
        tcp_site(boost::asio::io_context& io, const config::tcp_site_config& c,
                 std::shared_ptr<upstream::pool> p)
            : cfg(c), acceptor(io), pool(std::move(p)) {}
        const config::tcp_site_config& cfg;
        boost::asio::ip::tcp::acceptor acceptor;
        std::shared_ptr<upstream::pool> pool;
    };

    boost::asio::awaitable<void> accept(std::shared_ptr<tunnel> t);
    boost::asio::awaitable<void> serve_visitor(boost::asio::ip::tcp::socket visitor,
                                               std::shared_ptr<tunnel> t);
    boost::asio::awaitable<void> accept_site(tcp_site& site);
    boost::asio::awaitable<void> serve_site_visitor(boost::asio::ip::tcp::socket visitor,
                                                    tcp_site& site);
    relay_context& ctx_;
    loop_pumps pumps_;
    std::deque<tcp_site> sites_;  // a deque: a site's address stays put while it serves
};

}  // namespace porthole::relay
