#pragma once
// Bytes a connection's forwarding moved, added once per read or write system call (never per
// byte): `in` from the visitor's side, `out` to it. Plain integers of one event loop.
#include <cstdint>

namespace porthole::net {

struct traffic {
    std::uint64_t in = 0;
    std::uint64_t out = 0;
};

}  // namespace porthole::net
