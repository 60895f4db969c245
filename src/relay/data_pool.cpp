#include "relay/data_pool.hpp"

#include "net/socket_state.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace porthole::relay {

void data_pool::add(net::stream conn) {
    if (!waiters_.empty()) {
        auto w = std::move(waiters_.front());
        waiters_.pop_front();
        w->conn.emplace(std::move(conn));
        w->wake.cancel();
    } else if (idle_.size() < max_idle_) {
        idle_.push_back(std::move(conn));
    }
}

std::optional<net::stream> data_pool::take_idle() {
    while (!idle_.empty()) {
        net::stream c = std::move(idle_.front());
        idle_.pop_front();
        if (net::idle_and_open(c.socket())) return c;
    }
    return std::nullopt;
}

boost::asio::awaitable<std::optional<net::stream>> data_pool::wait(
    std::chrono::steady_clock::duration timeout) {
    const auto ex = co_await boost::asio::this_coro::executor;
    auto w = std::make_shared<waiter>(ex);
    waiters_.push_back(w);
    w->wake.expires_after(timeout);
    co_await w->wake.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    std::erase(waiters_, w);
    co_return std::move(w->conn);
}

void data_pool::drop_closed() {
    std::erase_if(idle_, [](net::stream& c) { return !net::idle_and_open(c.socket()); });
}

void data_pool::close() {
    idle_.clear();
    for (auto& w : waiters_) w->wake.cancel();
    waiters_.clear();
}

}  // namespace porthole::relay
