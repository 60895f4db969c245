#pragma once
// The byte pump between a visitor and a tunnel stream.
#include "net/stream.hpp"

namespace porthole::net {

// Copies both ways until both directions reach end of stream; the end of one side becomes
// shutdown(send) on the other (half-close), an error on either side closes both. Between plain
// sockets an idle pipe holds no buffer: one is borrowed from a per-thread pool only while bytes
// are in flight. Over TLS a buffer is held per direction.
asio::awaitable<void> pump(tcp::socket& a, tcp::socket& b);
asio::awaitable<void> pump(stream& a, stream& b);

}  // namespace porthole::net
