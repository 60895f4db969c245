#pragma once
// The byte pumps of TCP connections the first loop accepted and connected (a TCP tunnel's
// visitor and a data connection of its client; a [[tcp_sites]] visitor and its backend), spread
// over the event loops (threads > 1): the loops take new ones in turn, the first among them.
// Handed once per connection, when both ends are open; what the first loop holds for it (the
// tunnel's slot, the backend's place in its pool) is let go there when the pump ends.
// docs/architecture.md#threads
#include "net/stream.hpp"
#include "relay/relay_context.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace porthole::relay {

struct handed_pump {
    net::released_stream visitor;
    net::released_stream upstream;
    std::string ip;  // the visitor's address: it counts against its limit where it is pumped
    std::shared_ptr<void> hold;  // let go on the first loop
};
using pump_fn = std::function<void(handed_pump)>;

class loop_pumps {
public:
    // How to give a pump to each other loop.
    void spread_over(std::vector<pump_fn> others) { others_ = std::move(others); }
    // On the first loop: when it is another loop's turn, both ends go to it, with `hold`, and
    // this returns true; false: this loop pumps them. Draining, this loop keeps its own.
    bool hand(relay_context& ctx, net::stream& visitor, net::stream& upstream,
              const std::string& ip, std::shared_ptr<void> hold);

private:
    std::vector<pump_fn> others_;
    std::size_t next_ = 0;
};

// On the loop given a pump: runs it until either end closes.
void run_handed_pump(relay_context& ctx, handed_pump p);

}  // namespace porthole::relay
