#include "relay/loop_pumps.hpp"

#include "net/pump.hpp"
#include "relay/held_on_first.hpp"

namespace porthole::relay {

namespace asio = boost::asio;

bool loop_pumps::hand(relay_context& ctx, net::stream& visitor, net::stream& upstream,
                      const std::string& ip, std::shared_ptr<void> hold) {
    if (others_.empty() || ctx.draining) return false;
    const std::size_t turn = next_++ % (others_.size() + 1);
    if (turn == 0) return false;
    auto held = std::make_shared<held_on_first>(ctx.io.get_executor(), std::move(hold));
    ++ctx.counters.pumps_handed;
    others_[turn - 1](handed_pump{visitor.release(), upstream.release(), ip, std::move(held)});
    return true;
}

namespace {

asio::awaitable<void> pump_handed(relay_context& ctx, handed_pump p) {
    const visit_guard guard(ctx, std::move(p.ip), true);  // the first loop let it in
    auto visitor = net::stream::adopt(std::move(p.visitor), ctx.io.get_executor());
    auto upstream = net::stream::adopt(std::move(p.upstream), ctx.io.get_executor());
    co_await net::pump(visitor, upstream, ctx.counters.carried);
}

}  // namespace

void run_handed_pump(relay_context& ctx, handed_pump p) { ctx.spawn(pump_handed(ctx, std::move(p))); }

}  // namespace porthole::relay
