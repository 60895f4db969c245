#pragma once
// A data connection of a tunnel's client, told which tunnel and visitor it carries and answered
// with STREAM_READY: from then on it is the visitor's byte stream to the client's local service.
#include "net/stream.hpp"
#include "relay/relay_context.hpp"
#include "relay/session.hpp"

#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

#include <string>

namespace porthole::relay {

using stream_result = tl::expected<net::stream, std::string>;

// Takes a pooled data connection (or asks the client for one and waits), then STREAM_START.
// Errors are fit for the visitor's page: they never carry the client's local address.
boost::asio::awaitable<stream_result> open_tunnel_stream(relay_context& ctx, const tunnel& t,
                                                         std::string visitor);

}  // namespace porthole::relay
