// net::stream::release and adopt: a connection begun on one event loop (its TLS handshake and
// first bytes read there) is served on from another loop's thread, as a relay's threads hand a
// visitor over.
#include "net/stream.hpp"
#include "net/tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <future>
#include <optional>
#include <string>
#include <thread>

namespace porthole::net::handover_test {

using namespace std::chrono_literals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<std::string> read_exactly(stream& s, std::size_t n) {
    std::string got(n, '\0');
    std::size_t have = 0;
    while (have < n) {
        auto [ec, m] = co_await s.read_some(asio::buffer(got.data() + have, n - have));
        if (ec) break;
        have += m;
    }
    got.resize(have);
    co_return got;
}

// One event loop on a thread of its own, like a relay's.
struct loop {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread{[this] { io.run(); }};
    ~loop() {
        work.reset();
        thread.join();
    }
};

void hand_over(bool tls) {
    std::optional<server_tls> server_ctx;
    std::optional<asio::ssl::context> client_ctx;
    client_trust trust;
    if (tls) {
        auto made = make_server_tls("", "", {"127.0.0.1"});
        ASSERT_TRUE(made) << made.error();
        server_ctx.emplace(std::move(*made));
        trust.fingerprint = server_ctx->fingerprint.substr(7);
        auto client = make_client_tls(trust);
        ASSERT_TRUE(client) << client.error();
        client_ctx.emplace(std::move(*client));
    }
    loop b, a;  // a posts to b: b goes last
    tcp::acceptor acceptor(a.io, {asio::ip::make_address("127.0.0.1"), 0});
    const auto at = acceptor.local_endpoint();
    std::promise<std::string> served;  // what loop b read and from which thread it answered
    // Loop a: accept, handshake, read the first part, then hand the connection to loop b.
    asio::co_spawn(
        a.io,
        [&]() -> asio::awaitable<void> {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec) co_return served.set_value("accept failed");
            stream s = tls ? stream(tls_socket(std::move(socket), server_ctx->context))
                           : stream(std::move(socket));
            if (tls) {
                const auto hs = co_await s.tls().handshake(tls_socket::role::server);
                if (hs) co_return served.set_value("handshake failed: " + hs.message());
            }
            std::string first = co_await read_exactly(s, 6);
            released_stream r = s.release();
            asio::post(b.io, [&, r = std::move(r), first]() mutable {
                asio::co_spawn(
                    b.io,
                    [&, r = std::move(r), first]() mutable -> asio::awaitable<void> {
                        stream moved = stream::adopt(std::move(r), b.io.get_executor());
                        std::string rest = co_await read_exactly(moved, 6);
                        const bool on_b = std::this_thread::get_id() == b.thread.get_id();
                        std::string answer = on_b ? "pong from b" : "pong from elsewhere";
                        co_await moved.write(asio::buffer(answer));
                        served.set_value(first + rest);
                    },
                    asio::detached);
            });
        },
        asio::detached);
    // The visitor, on this thread.
    asio::io_context client_io;
    std::string answer;
    asio::co_spawn(
        client_io,
        [&]() -> asio::awaitable<void> {
            tcp::socket socket(client_io);
            co_await socket.async_connect(at, asio::use_awaitable);
            stream s = tls ? stream(tls_socket(std::move(socket), *client_ctx))
                           : stream(std::move(socket));
            if (tls) {
                configure_client_stream(s.tls().native_handle(), trust, "127.0.0.1");
                if (co_await s.tls().handshake(tls_socket::role::client)) co_return;
            }
            co_await s.write(asio::buffer(std::string_view("hello ")));
            asio::steady_timer t(client_io, 50ms);  // loop a has handed over by now, or not
            co_await t.async_wait(use_tuple);
            co_await s.write(asio::buffer(std::string_view("world!")));
            answer = co_await read_exactly(s, 11);
        },
        asio::detached);
    client_io.run_for(10s);
    auto got = served.get_future();
    ASSERT_EQ(got.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(got.get(), "hello world!");
    EXPECT_EQ(answer, "pong from b");
}

TEST(StreamHandover, APlainConnectionIsServedOnByAnotherLoop) { hand_over(false); }

TEST(StreamHandover, ATlsConnectionKeepsItsSessionOnAnotherLoop) { hand_over(true); }

TEST(StreamHandover, AReleasedConnectionNobodyAdoptsIsClosed) {
    asio::io_context io;
    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    tcp::socket out(io);
    out.connect(acceptor.local_endpoint());
    tcp::socket in = acceptor.accept();
    {
        stream s(std::move(in));
        released_stream r = s.release();
        EXPECT_GE(r.fd, 0);
    }
    char c = 0;
    error_code ec;
    out.read_some(asio::buffer(&c, 1), ec);
    EXPECT_EQ(ec, asio::error::eof);
}

}  // namespace porthole::net::handover_test
