#pragma once
// Listening sockets as the relay opens them, with errors a user can act on.
#include "config/endpoint.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <tl/expected.hpp>

#include <string>
#include <string_view>

namespace porthole::net {

// Binds and listens on `at` ("localhost" is 127.0.0.1); `what` names the listener in errors:
// "cannot listen on 0.0.0.0:80 (http): address already in use".
// `shared`: SO_REUSEPORT, so that each of a relay's event loops listens on `at` with a socket
// of its own and the kernel spreads connections over them.
tl::expected<void, std::string> listen_on(boost::asio::ip::tcp::acceptor& a,
                                          const config::endpoint& at, std::string_view what,
                                          bool shared = false);

// After a failed accept (EMFILE and friends): a warning and a short pause instead of a spin;
// the listener recovers by itself.
boost::asio::awaitable<void> pause_after_accept_error(boost::system::error_code ec,
                                                      std::string_view what);

std::string peer_ip(const boost::asio::ip::tcp::socket& s);

}  // namespace porthole::net
