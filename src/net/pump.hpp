#pragma once
// The byte pump between a visitor and a tunnel stream.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace porthole::net {

// Copies both ways until both directions reach EOF; EOF on one side becomes shutdown(send) on the
// other (half-close), an error on either side closes both. Idle pipes hold no buffer: one is
// borrowed from a per-thread pool only while bytes are in flight.
boost::asio::awaitable<void> pump(boost::asio::ip::tcp::socket& a,
                                  boost::asio::ip::tcp::socket& b);

}  // namespace porthole::net
