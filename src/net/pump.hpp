#pragma once
// The byte pump between a visitor and a tunnel stream.
#include "net/byte_shaper.hpp"
#include "net/stream.hpp"
#include "net/traffic.hpp"

namespace porthole::net {

// Copies both ways until both directions reach end of stream; the end of one side becomes
// shutdown(send) on the other (half-close), an error on either side closes both. Between plain
// sockets an idle pipe holds no buffer: one is borrowed from a per-thread pool only while bytes
// are in flight. Over TLS a buffer is held per direction.
asio::awaitable<void> pump(tcp::socket& a, tcp::socket& b);
asio::awaitable<void> pump(stream& a, stream& b);
// The same, adding what each write moved to `counted`: bytes from `a` to `in`, to `a` to `out`.
asio::awaitable<void> pump(tcp::socket& a, tcp::socket& b, traffic& counted);
asio::awaitable<void> pump(stream& a, stream& b, traffic& counted);
// The same through `bandwidth` budgets, `a` being the visitor: bytes from `a` pay `s.up`, bytes
// to it `s.down`. A shaped pump moves bytes through a buffer of its own in chunks the budgets
// allow, never by splice() (the kernel would move them unpaced).
asio::awaitable<void> pump(stream& a, stream& b, const shaping& s);

}  // namespace porthole::net
