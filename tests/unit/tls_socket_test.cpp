// net::tls_socket over a real loopback connection: handshake, half-close, gathered and large
// writes, non-waiting reads, and a thread error queue left dirty by something else.
#include "net/stream.hpp"
#include "net/tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <optional>
#include <string>

namespace porthole::net {
namespace {

using namespace std::chrono_literals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

class TlsSocket : public ::testing::Test {
protected:
    void SetUp() override {
        auto server = make_server_tls("", "", {"127.0.0.1"});
        ASSERT_TRUE(server) << server.error();
        server_ctx_.emplace(std::move(*server));
        trust_.fingerprint = server_ctx_->fingerprint.substr(7);
        auto client = make_client_tls(trust_);
        ASSERT_TRUE(client) << client.error();
        client_ctx_.emplace(std::move(*client));
    }

    // Connects a client and a server tls_socket over loopback and runs `body` once both have
    // finished the handshake (or with the handshake errors). Fails the test after 10 s.
    template <typename Body>
    void run(Body body) {
        bool finished = false;
        asio::co_spawn(
            io_,
            [](TlsSocket& self, Body body, bool& finished) -> asio::awaitable<void> {
                tcp::acceptor acceptor(self.io_, {asio::ip::make_address("127.0.0.1"), 0});
                tcp::socket out(self.io_);
                co_await out.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
                tcp::socket in = co_await acceptor.async_accept(asio::use_awaitable);
                tls_socket client(std::move(out), *self.client_ctx_);
                configure_client_stream(client.native_handle(), self.trust_, "127.0.0.1");
                tls_socket server(std::move(in), self.server_ctx_->context);
                std::optional<error_code> server_ec;
                asio::co_spawn(
                    self.io_,
                    [](tls_socket& s, std::optional<error_code>& ec) -> asio::awaitable<void> {
                        ec = co_await s.handshake(tls_socket::role::server);
                    }(server, server_ec),
                    asio::detached);
                const error_code client_ec = co_await client.handshake(tls_socket::role::client);
                asio::steady_timer t(self.io_);
                while (!server_ec) {
                    t.expires_after(1ms);
                    co_await t.async_wait(use_tuple);
                }
                co_await body(client, server, client_ec, *server_ec);
                finished = true;
            }(*this, std::move(body), finished),
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
        io_.run_for(10s);
        EXPECT_TRUE(finished) << "timed out";
    }

    static asio::awaitable<std::string> read_n(tls_socket& s, std::size_t n) {
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

    asio::io_context io_;
    std::optional<server_tls> server_ctx_;
    std::optional<asio::ssl::context> client_ctx_;
    client_trust trust_;
};

TEST_F(TlsSocket, HandshakeAndBothDirections) {
    run([](tls_socket& c, tls_socket& s, error_code cec, error_code sec) -> asio::awaitable<void> {
        EXPECT_FALSE(cec) << cec.message();
        EXPECT_FALSE(sec) << sec.message();
        const std::string ping = "ping", pong = "pong!";
        const asio::const_buffer one[] = {asio::buffer(ping)};
        auto [wec, wn] = co_await c.write(one);
        EXPECT_FALSE(wec);
        EXPECT_EQ(wn, ping.size());
        EXPECT_EQ(co_await read_n(s, ping.size()), ping);
        const asio::const_buffer other[] = {asio::buffer(pong)};
        co_await s.write(other);
        EXPECT_EQ(co_await read_n(c, pong.size()), pong);
    });
}

TEST_F(TlsSocket, PinnedFingerprintMismatchFailsTheHandshake) {
    trust_.fingerprint = std::string(64, '0');
    run([](tls_socket& c, tls_socket&, error_code cec, error_code) -> asio::awaitable<void> {
        EXPECT_TRUE(cec);
        EXPECT_EQ(SSL_get_verify_result(c.native_handle()), X509_V_ERR_CERT_REJECTED);
        co_return;
    });
}

// A bare FIN ends the stream for the reader, and the other direction keeps working: the
// half-close a tunnel forwards.
TEST_F(TlsSocket, HalfCloseLeavesTheOtherDirectionOpen) {
    run([](tls_socket& c, tls_socket& s, error_code, error_code) -> asio::awaitable<void> {
        const std::string request = "all of the request";
        const asio::const_buffer one[] = {asio::buffer(request)};
        co_await c.write(one);
        error_code ignored;
        c.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
        EXPECT_EQ(co_await read_n(s, request.size()), request);
        char byte;
        auto [ec, n] = co_await s.read_some(asio::buffer(&byte, 1));
        EXPECT_TRUE(is_end_of_stream(ec)) << ec.message();
        EXPECT_EQ(n, 0u);
        const std::string reply = "the reply after EOF";
        const asio::const_buffer back[] = {asio::buffer(reply)};
        auto [wec, wn] = co_await s.write(back);
        EXPECT_FALSE(wec) << wec.message();
        EXPECT_EQ(co_await read_n(c, reply.size()), reply);
    });
}

// Several buffers arrive in order and whole, joined or not; a write far larger than the socket
// buffers waits for the reader and loses nothing.
TEST_F(TlsSocket, GatheredAndLargeWrites) {
    run([](tls_socket& c, tls_socket& s, error_code, error_code) -> asio::awaitable<void> {
        const std::string a = "head\r\n\r\n", b(3000, 'b'), big = [] {
            std::string x(4 << 20, '\0');
            for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<char>(i * 131 % 251);
            return x;
        }();
        const asio::const_buffer parts[] = {asio::buffer(a), asio::const_buffer(), asio::buffer(b),
                                            asio::buffer(big)};
        bool written = false;
        asio::co_spawn(
            co_await asio::this_coro::executor,
            [](tls_socket& c, std::span<const asio::const_buffer> parts,
               bool& written) -> asio::awaitable<void> {
                auto [ec, n] = co_await c.write(parts);
                EXPECT_FALSE(ec) << ec.message();
                written = n == asio::buffer_size(parts);
            }(c, parts, written),
            asio::detached);
        const std::string got = co_await read_n(s, a.size() + b.size() + big.size());
        EXPECT_TRUE(got == a + b + big);
        EXPECT_TRUE(written);
    });
}

TEST_F(TlsSocket, TryReadSomeNeverWaits) {
    run([](tls_socket& c, tls_socket& s, error_code, error_code) -> asio::awaitable<void> {
        char buf[64];
        auto [ec, n] = s.try_read_some(asio::buffer(buf));
        EXPECT_EQ(ec, asio::error::would_block);
        EXPECT_EQ(n, 0u);
        const std::string x = "x";
        const asio::const_buffer one[] = {asio::buffer(x)};
        co_await c.write(one);
        EXPECT_EQ(co_await read_n(s, 1), x);
    });
}

// An error some other OpenSSL call left in the thread's queue must not be taken for this
// connection's: the read waits for data instead of failing.
TEST_F(TlsSocket, StaleErrorInTheQueueIsNotThisConnections) {
    run([](tls_socket& c, tls_socket& s, error_code, error_code) -> asio::awaitable<void> {
        const std::string x = "late";
        asio::co_spawn(
            co_await asio::this_coro::executor,
            [](tls_socket& c, const std::string& x) -> asio::awaitable<void> {
                asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
                co_await t.async_wait(use_tuple);
                const asio::const_buffer one[] = {asio::buffer(x)};
                co_await c.write(one);
            }(c, x),
            asio::detached);
        ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET);
        EXPECT_EQ(co_await read_n(s, x.size()), x);
    });
}

// OpenSSL holds the descriptor's number: once the socket is closed and the number belongs to
// another connection, nothing written through the old TLS object may reach that connection.
TEST_F(TlsSocket, NothingReachesOpenSslAfterClose) {
    run([](tls_socket&, tls_socket& s, error_code, error_code) -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        const int old_fd = s.next_layer().native_handle();
        s.next_layer().close();
        tcp::socket fresh(ex);
        fresh.open(tcp::v4());  // takes the lowest free number: the one just closed
        tcp::acceptor acceptor(ex, {asio::ip::make_address("127.0.0.1"), 0});
        co_await fresh.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
        tcp::socket accepted = co_await acceptor.async_accept(asio::use_awaitable);
        EXPECT_EQ(fresh.native_handle(), old_fd) << "not reused; the test would prove nothing";
        const std::string x = "must not arrive";
        const asio::const_buffer one[] = {asio::buffer(x)};
        auto [wec, wn] = co_await s.write(one);
        EXPECT_EQ(wec, asio::error::bad_descriptor);
        EXPECT_EQ(wn, 0u);
        char buf[16];
        auto [rec, rn] = co_await s.read_some(asio::buffer(buf));
        EXPECT_EQ(rec, asio::error::bad_descriptor);
        for (tcp::socket* t : {&fresh, &accepted}) {
            const ssize_t n = ::recv(t->native_handle(), buf, sizeof buf, MSG_DONTWAIT);
            EXPECT_EQ(n, -1) << "bytes arrived on a connection the TLS object does not own";
        }
    });
}

}  // namespace
}  // namespace porthole::net
