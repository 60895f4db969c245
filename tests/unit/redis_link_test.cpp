// The Redis connection the cluster registry stands on, against a real redis-server on a unix
// socket of its own: replies of each kind, an atomic Lua claim, many commands at once, a server
// that goes away and comes back, addresses and their errors.
#include "cluster/cluster_registry.hpp"
#include "cluster/redis_link.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

namespace porthole::cluster {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

TEST(RedisAddress, FormsAndTheirErrors) {
    auto a = parse_redis_url("redis://127.0.0.1:6380/2");
    ASSERT_TRUE(a) << a.error();
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 6380);
    EXPECT_EQ(a->db, 2u);
    a = parse_redis_url("redis://:s3cret@[::1]");
    ASSERT_TRUE(a) << a.error();
    EXPECT_EQ(a->host, "::1");
    EXPECT_EQ(a->port, 6379);
    EXPECT_EQ(a->password, "s3cret");
    EXPECT_EQ(a->describe(), "[::1]:6379/0");  // never the password
    a = parse_redis_url("unix:///run/redis/redis.sock?db=3");
    ASSERT_TRUE(a) << a.error();
    EXPECT_EQ(a->unix_path, "/run/redis/redis.sock");
    EXPECT_EQ(a->db, 3u);
    for (const char* bad : {"http://h", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x",
                            "unix://run.sock", "unix:///s?database=1", "redis://pw@h"}) {
        const auto r = parse_redis_url(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_NE(r.error().find("redis://HOST:PORT/DB"), std::string::npos) << r.error();
        }
    }
    const auto r = parse_redis_url("redis://user@h:1");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().find("user"), std::string::npos);  // what was given is not echoed
}

// A redis-server of the test's own, on a unix socket in a directory of its own.
class RedisServer : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "redis-server is not installed";
        // hiredis writes with write(2): a server gone raises SIGPIPE, which porthole's main
        // ignores for the whole process.
        std::signal(SIGPIPE, SIG_IGN);
        std::string pattern = (fs::temp_directory_path() / "porthole-redis-XXXXXX").string();
        dir_ = ::mkdtemp(pattern.data());
        socket_ = (dir_ / "redis.sock").string();
        start();
    }
    void TearDown() override {
        stop();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    void start() {
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl("/usr/bin/redis-server", "redis-server", "--port", "0", "--unixsocket",
                    socket_.c_str(), "--save", "", "--appendonly", "no", "--dir", dir_.c_str(), "--logfile",
                    (dir_ / "redis.log").c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        // The socket file appears at bind(), before listen(): wait until a connection is taken.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!accepts_connections() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ASSERT_TRUE(accepts_connections()) << "redis-server did not start";
    }
    bool accepts_connections() const {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        if (socket_.size() >= sizeof sa.sun_path) return false;
        socket_.copy(sa.sun_path, socket_.size());
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
        ::close(fd);
        return ok;
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        std::error_code ec;
        fs::remove(socket_, ec);
    }
    redis_address address() const {
        redis_address a;
        a.unix_path = socket_;
        return a;
    }
    // Runs `body` as a coroutine on a fresh loop until it ends.
    template <class F>
    void run(F body) {
        asio::io_context io;
        bool finished = false;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            co_await body(io);
            finished = true;
        }, asio::detached);
        io.run_for(std::chrono::seconds(30));
        EXPECT_TRUE(finished);
    }

    fs::path dir_;
    std::string socket_;
    pid_t pid_ = -1;
};

TEST_F(RedisServer, RepliesOfEachKindAndAnAtomicClaim) {
    run([&](asio::io_context& io) -> asio::awaitable<void> {
        redis_link link(io.get_executor(), address());
        const auto up = co_await link.connect();
        EXPECT_TRUE(up) << up.error();
        EXPECT_TRUE(link.connected());
        std::vector<std::string> args1{"SET", "k", std::string("a\0b", 3)};
        auto r = co_await link.command(args1);
        EXPECT_TRUE(r && r->kind == redis_reply::type::status && r->text == "OK");
        std::vector<std::string> args2{"GET", "k"};
        r = co_await link.command(args2);
        EXPECT_TRUE(r && r->kind == redis_reply::type::string && r->text == std::string("a\0b", 3));
        std::vector<std::string> args3{"GET", "missing"};
        r = co_await link.command(args3);
        EXPECT_TRUE(r && r->kind == redis_reply::type::nil);
        std::vector<std::string> args4{"INCRBY", "n", "41"};
        r = co_await link.command(args4);
        EXPECT_TRUE(r && r->kind == redis_reply::type::integer && r->integer == 41);
        std::vector<std::string> args5{"RPUSH", "l", "x", "y"};
        r = co_await link.command(args5);
        std::vector<std::string> args6{"LRANGE", "l", "0", "-1"};
        r = co_await link.command(args6);
        EXPECT_TRUE(r && r->kind == redis_reply::type::array && r->elements.size() == 2 &&
                    r->elements[1].text == "y");
        std::vector<std::string> args7{"INCR", "l"};
        r = co_await link.command(args7);  // an error reply is an error
        EXPECT_FALSE(r);
        if (!r) {
            EXPECT_NE(r.error().find("WRONGTYPE"), std::string::npos) << r.error();
        }
        // A claim as the registry makes it: taken when free or already the claimant's.
        const std::string claim =
            "local v = redis.call('GET', KEYS[1]) "
            "if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
            "return 1 end return 0";
        std::vector<std::string> args8{"EVAL", claim, "1", "name:blog", "node-a", "3000"};
        r = co_await link.command(args8);
        EXPECT_TRUE(r && r->integer == 1);
        std::vector<std::string> args9{"EVAL", claim, "1", "name:blog", "node-b", "3000"};
        r = co_await link.command(args9);
        EXPECT_TRUE(r && r->integer == 0);
        std::vector<std::string> args10{"EVAL", claim, "1", "name:blog", "node-a", "3000"};
        r = co_await link.command(args10);
        EXPECT_TRUE(r && r->integer == 1);
    });
}

TEST_F(RedisServer, ManyCommandsAtOnceAreAnsweredInOrder) {
    run([&](asio::io_context& io) -> asio::awaitable<void> {
        redis_link link(io.get_executor(), address());
        const auto up = co_await link.connect();
        EXPECT_TRUE(up);
        int answered = 0;
        for (int i = 0; i < 1000; ++i)
            asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
                std::vector<std::string> args11{"INCR", "c"};
                const auto r = co_await link.command(args11);
                if (r && r->kind == redis_reply::type::integer) ++answered;
                (void)i;
            }, asio::detached);
        std::vector<std::string> args12{"INCR", "c"};
        auto r = co_await link.command(args12);
        // Queued after the thousand, so answered after them: they all counted first.
        EXPECT_TRUE(r && r->integer == 1001);
        EXPECT_EQ(answered, 1000);
    });
}

TEST_F(RedisServer, AServerThatGoesAwayFailsCommandsAndAReconnectWorks) {
    run([&](asio::io_context& io) -> asio::awaitable<void> {
        redis_link link(io.get_executor(), address(), std::chrono::milliseconds(2000));
        auto up = co_await link.connect();
        EXPECT_TRUE(up);
        stop();
        std::vector<std::string> args13{"PING"};
        auto r = co_await link.command(args13);
        EXPECT_FALSE(r);
        EXPECT_FALSE(link.connected());
        std::vector<std::string> args14{"PING"};
        r = co_await link.command(args14);
        EXPECT_FALSE(r);
        if (!r) {
            EXPECT_NE(r.error().find("not connected"), std::string::npos) << r.error();
        }
        up = co_await link.connect();
        EXPECT_FALSE(up);  // nothing listens
        if (!up) {
            EXPECT_NE(up.error().find(socket_), std::string::npos) << up.error();
        }
        start();
        up = co_await link.connect();
        EXPECT_TRUE(up) << (up ? "" : up.error());
        std::vector<std::string> args15{"PING"};
        r = co_await link.command(args15);
        EXPECT_TRUE(r && r->text == "PONG");
    });
}

TEST_F(RedisServer, ASubscriberHearsEachMessageUntilTheServerGoesAway) {
    run([&](asio::io_context& io) -> asio::awaitable<void> {
        redis_link publisher(io.get_executor(), address());
        redis_link subscriber(io.get_executor(), address(), std::chrono::milliseconds(2000));
        EXPECT_TRUE(co_await publisher.connect());
        EXPECT_TRUE(co_await subscriber.connect());
        std::vector<std::string> heard;
        const auto on = co_await subscriber.subscribe(
            "porthole:events", [&](std::string_view m) { heard.emplace_back(m); });
        EXPECT_TRUE(on) << (on ? "" : on.error());
        const std::vector<std::string> sent{"claim porthole:name:a relay-a",
                                            std::string("bin\0ary", 7)};
        for (const auto& m : sent) {
            std::vector<std::string> publish{"PUBLISH", "porthole:events", m};
            const auto r = co_await publisher.command(publish);
            EXPECT_TRUE(r && r->integer == 1);  // one subscriber heard it
        }
        std::vector<std::string> other{"PUBLISH", "elsewhere", "not for us"};
        (void)co_await publisher.command(other);
        asio::steady_timer wait(io);
        for (int i = 0; i < 100 && heard.size() < 2; ++i) {
            wait.expires_after(std::chrono::milliseconds(10));
            co_await wait.async_wait(asio::use_awaitable);
        }
        EXPECT_EQ(heard, sent);  // in order, binary-safe, nothing from another channel
        stop();
        for (int i = 0; i < 200 && subscriber.connected(); ++i) {
            wait.expires_after(std::chrono::milliseconds(10));
            co_await wait.async_wait(asio::use_awaitable);
        }
        EXPECT_FALSE(subscriber.connected());
    });
}

TEST_F(RedisServer, APasswordAndADatabaseAreSentOnConnect) {
    run([&](asio::io_context& io) -> asio::awaitable<void> {
        {
            redis_link admin(io.get_executor(), address());
            const auto done1 = co_await admin.connect();
            EXPECT_TRUE(done1);
            std::vector<std::string> args16{"CONFIG", "SET", "requirepass", "pw-123"};
            const auto done2 = co_await admin.command(args16);
            EXPECT_TRUE(done2);
        }
        auto a = address();
        a.db = 5;
        redis_link wrong(io.get_executor(), a);
        a.password = "nope-456";
        redis_link refused(io.get_executor(), a);
        const auto no = co_await refused.connect();
        EXPECT_FALSE(no);
        if (!no) {
            EXPECT_NE(no.error().find("refused the password"), std::string::npos) << no.error();
            EXPECT_EQ(no.error().find("nope-456"), std::string::npos);
        }
        a.password = "pw-123";
        redis_link right(io.get_executor(), a);
        const auto yes = co_await right.connect();
        EXPECT_TRUE(yes) << (yes ? "" : yes.error());
        std::vector<std::string> args17{"SET", "in5", "1"};
        const auto done3 = co_await right.command(args17);
        EXPECT_TRUE(done3);
        a.db = 0;
        redis_link db0(io.get_executor(), a);
        const auto done4 = co_await db0.connect();
        EXPECT_TRUE(done4);
        std::vector<std::string> args18{"EXISTS", "in5"};
        const auto r = co_await db0.command(args18);
        EXPECT_TRUE(r && r->integer == 0);  // SELECT 5 put it elsewhere
        (void)wrong;
    });
}


// The cluster registry over this server: two relays claiming one name at the same moment, round
// after round, and exactly one wins each time; the winner's record names it.
TEST_F(RedisServer, TwoRelaysClaimingOneNameAtOnceNeverBothWin) {
    run([&](asio::io_context& io) -> asio::awaitable<void> {
        config::cluster_config a_cfg;
        a_cfg.redis = "unix://" + socket_;
        a_cfg.node_id = "relay-a";
        a_cfg.advertise = {"127.0.0.1", 1};
        config::cluster_config b_cfg = a_cfg;
        b_cfg.node_id = "relay-b";
        b_cfg.advertise = {"127.0.0.1", 2};
        relay::local_registry a_local(std::chrono::seconds(30), "relay-a");
        relay::local_registry b_local(std::chrono::seconds(30), "relay-b");
        std::uint64_t changed = 0;
        cluster_registry a(io, a_local, a_cfg, std::chrono::seconds(30), {}, changed);
        cluster_registry b(io, b_local, b_cfg, std::chrono::seconds(30), {}, changed);
        const auto a_up = co_await a.connect();
        const auto b_up = co_await b.connect();
        EXPECT_TRUE(a_up && b_up);
        redis_link check(io.get_executor(), address());
        const auto check_up = co_await check.connect();
        EXPECT_TRUE(check_up);
        int a_won = 0;
        int b_won = 0;
        std::string last_winner;
        for (int round = 0; round < 100; ++round) {
            relay::tunnel ta;
            ta.name = "race" + std::to_string(round);
            ta.holder = "holder-a";
            relay::tunnel tb;
            tb.name = ta.name;
            tb.holder = "holder-b";
            int done = 0;
            bool got_a = false;
            bool got_b = false;
            const auto now = relay::clock::now();
            asio::co_spawn(io, [&]() -> asio::awaitable<void> {
                got_a = co_await a.claim_name(ta, now);
                ++done;
            }, asio::detached);
            asio::co_spawn(io, [&]() -> asio::awaitable<void> {
                got_b = co_await b.claim_name(tb, now);
                ++done;
            }, asio::detached);
            asio::steady_timer wait(io);
            while (done < 2) {
                wait.expires_after(std::chrono::milliseconds(1));
                co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
            }
            EXPECT_NE(got_a, got_b) << "round " << round;
            (got_a ? a_won : b_won) += 1;
            last_winner = got_a ? ta.holder : tb.holder;
            std::vector<std::string> args{"HGET", "porthole:name:" + ta.name, "node"};
            const auto owner = co_await check.command(args);
            EXPECT_TRUE(owner && owner->text == (got_a ? "relay-a" : "relay-b"));
            // The loser keeps nothing of it locally.
            EXPECT_EQ((got_a ? b_local : a_local).name_held(ta.name, now), false);
        }
        EXPECT_EQ(a_won + b_won, 100);
        // The holder of race99 through a third relay takes it over (its client moving there);
        // another holder does not.
        relay::tunnel moved;
        moved.name = "race99";
        moved.holder = last_winner;
        relay::local_registry c_local(std::chrono::seconds(30), "relay-c");
        config::cluster_config c_cfg = a_cfg;
        c_cfg.node_id = "relay-c";
        cluster_registry c(io, c_local, c_cfg, std::chrono::seconds(30), {}, changed);
        const auto c_up = co_await c.connect();
        EXPECT_TRUE(c_up);
        const bool took = co_await c.claim_name(moved, relay::clock::now());
        EXPECT_TRUE(took);
        std::vector<std::string> node_of{"HGET", "porthole:name:race99", "node"};
        const auto now_at = co_await check.command(node_of);
        EXPECT_TRUE(now_at && now_at->text == "relay-c");
        relay::tunnel stranger;
        stranger.name = moved.name;
        stranger.holder = "holder-x";
        relay::local_registry d_local(std::chrono::seconds(30), "relay-d");
        config::cluster_config d_cfg = a_cfg;
        d_cfg.node_id = "relay-d";
        cluster_registry d(io, d_local, d_cfg, std::chrono::seconds(30), {}, changed);
        const auto d_up = co_await d.connect();
        EXPECT_TRUE(d_up);
        const bool refused = co_await d.claim_name(stranger, relay::clock::now());
        EXPECT_FALSE(refused);
    });
}

}  // namespace
}  // namespace porthole::cluster
