// relay::data_pool over real loopback connections: idle ones kept up to the bound, closed ones
// skipped, a waiter handed the next arrival, close() waking waiters empty-handed.
#include "relay/data_pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

#include <vector>

namespace porthole::relay {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

class DataPool : public testing::Test {
protected:
    // A connected pair: the relay's end (in the pool) and the client's end (kept here).
    net::stream connection() {
        tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
        tcp::socket client(io_);
        client.connect(acceptor.local_endpoint());
        tcp::socket relay_end = acceptor.accept();
        clients_.push_back(std::move(client));
        return net::stream(std::move(relay_end));
    }
    void close_client(std::size_t i) { clients_.at(i).close(); }
    // A visitor waiting on `pool`: `got` is what it was handed, `done` once it was.
    void wait_on(data_pool& pool, std::optional<net::stream>& got, bool& done) {
        asio::co_spawn(
            io_,
            [](data_pool& p, std::optional<net::stream>& out, bool& finished)
                -> asio::awaitable<void> {
                out = co_await p.wait(10s);
                finished = true;
            }(pool, got, done),
            asio::detached);
    }

    asio::io_context io_;
    std::vector<tcp::socket> clients_;
};

TEST_F(DataPool, KeepsIdleConnectionsUpToItsBound) {
    data_pool pool(2);
    pool.add(connection());
    pool.add(connection());
    pool.add(connection());  // over the bound: closed
    EXPECT_TRUE(pool.take_idle());
    EXPECT_TRUE(pool.take_idle());
    EXPECT_FALSE(pool.take_idle());
}

TEST_F(DataPool, SkipsConnectionsTheClientClosed) {
    data_pool pool(4);
    pool.add(connection());
    pool.add(connection());
    close_client(0);
    io_.poll();
    auto conn = pool.take_idle();
    ASSERT_TRUE(conn);
    EXPECT_FALSE(pool.take_idle());
}

TEST_F(DataPool, AWaiterGetsTheNextArrival) {
    data_pool pool(4);
    std::optional<net::stream> got;
    bool done = false;
    wait_on(pool, got, done);
    io_.poll();
    EXPECT_EQ(pool.waiting(), 1u);
    pool.add(connection());
    io_.poll();
    EXPECT_TRUE(done);
    EXPECT_TRUE(got);
    EXPECT_EQ(pool.waiting(), 0u);
    EXPECT_FALSE(pool.take_idle());  // it went to the waiter, not into the pool
}

TEST_F(DataPool, CloseWakesWaitersEmptyHanded) {
    data_pool pool(4);
    pool.add(connection());
    std::optional<net::stream> got;
    bool done = false;
    wait_on(pool, got, done);
    io_.poll();
    pool.close();
    io_.poll();
    EXPECT_TRUE(done);
    EXPECT_FALSE(got);
    EXPECT_FALSE(pool.take_idle());
}

}  // namespace
}  // namespace porthole::relay
