// The upgrade's messages: descriptors passed over a socket pair, the handed-over state in
// messages of at most core::max_fds_per_message sockets, the new process's replies, and the
// store of inherited sockets.
#include "core/fd_channel.hpp"
#include "relay/handoff.hpp"
#include "relay/lease_table.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace porthole::relay::handoff {
namespace {

using namespace std::chrono_literals;

struct socket_pair {
    int a = -1, b = -1;
    socket_pair() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        a = fds[0];
        b = fds[1];
    }
    ~socket_pair() {
        ::close(a);
        ::close(b);
    }
};

// The inode behind a descriptor: a passed one names the same open file.
ino_t inode(int fd) {
    struct stat st{};
    EXPECT_EQ(::fstat(fd, &st), 0);
    return st.st_ino;
}

TEST(FdChannel, MessagesCarryDescriptorsThatNameTheSameFiles) {
    socket_pair p;
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    const int sent[] = {pipe_fds[0], pipe_fds[1]};
    ASSERT_TRUE(core::send_message(p.a, "first", sent));
    ASSERT_TRUE(core::send_message(p.a, std::string(100'000, 'x')));
    auto got = core::receive_message(p.b, 1s);
    ASSERT_TRUE(got) << got.error();
    EXPECT_EQ(got->text, "first");
    ASSERT_EQ(got->fds.size(), 2u);
    EXPECT_EQ(inode(got->fds[0]), inode(pipe_fds[0]));
    EXPECT_NE(got->fds[0], pipe_fds[0]);  // a copy of its own
    EXPECT_TRUE(::fcntl(got->fds[0], F_GETFD) & FD_CLOEXEC);
    // Written through the copy, read through the original.
    ASSERT_EQ(::write(got->fds[1], "z", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(pipe_fds[0], &c, 1), 1);
    EXPECT_EQ(c, 'z');
    for (int fd : got->fds) ::close(fd);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    auto big = core::receive_message(p.b, 1s);
    ASSERT_TRUE(big) << big.error();
    EXPECT_EQ(big->text.size(), 100'000u);
    EXPECT_TRUE(big->fds.empty());
}

TEST(FdChannel, ClosedTimedOutAndOversizedAreErrors) {
    {
        socket_pair p;
        auto waited = core::receive_message(p.b, 30ms);
        ASSERT_FALSE(waited);
        EXPECT_EQ(waited.error(), "timed out");
    }
    {
        socket_pair p;
        const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
        ASSERT_EQ(::write(p.a, huge, 4), 4);
        auto got = core::receive_message(p.b, 1s);
        ASSERT_FALSE(got);
        EXPECT_NE(got.error().find("too long"), std::string::npos);
    }
    {
        socket_pair p;
        ASSERT_EQ(::write(p.a, "\0\0\0\x09part", 8), 8);  // 9 bytes announced, 4 sent
        ::shutdown(p.a, SHUT_WR);
        auto got = core::receive_message(p.b, 1s);
        ASSERT_FALSE(got);
        EXPECT_EQ(got.error(), "closed mid-message");
    }
    {
        socket_pair p;
        ::shutdown(p.a, SHUT_WR);
        auto got = core::receive_message(p.b, 1s);
        ASSERT_FALSE(got);
        EXPECT_EQ(got.error(), "closed");
    }
    std::vector<int> too_many(core::max_fds_per_message + 1, 0);
    socket_pair p;
    EXPECT_FALSE(core::send_message(p.a, "x", too_many));
}

TEST(Handoff, StateArrivesWholeAcrossSeveralMessages) {
    socket_pair p;
    state s;
    // More listeners than one message may carry: every TCP tunnel port is one.
    std::vector<int> originals;
    for (int i = 0; i < 450; ++i) {
        const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        originals.push_back(fd);
        s.listeners.push_back({i == 0 ? "http" : "tcp tunnel",
                               "127.0.0.1:" + std::to_string(20000 + i), fd});
    }
    s.leases.push_back({false, "d7f2a", hex_of(std::string("\x01\xfftoken", 7)), 60000ms});
    s.leases.push_back({true, "20417", "00ab", 1500ms});
    s.control_cert_pem = "-----BEGIN CERTIFICATE-----\n...";
    s.control_key_pem = "-----BEGIN PRIVATE KEY-----\n...";
    ASSERT_TRUE(send_state(p.a, s));
    auto got = receive_state(p.b, 1s);
    ASSERT_TRUE(got) << got.error();
    ASSERT_EQ(got->listeners.size(), 450u);
    EXPECT_EQ(got->listeners[0].role, "http");
    EXPECT_EQ(got->listeners[449].where, "127.0.0.1:20449");
    EXPECT_EQ(inode(got->listeners[449].fd), inode(originals[449]));
    ASSERT_EQ(got->leases.size(), 2u);
    EXPECT_EQ(bytes_of_hex(got->leases[0].holder), std::string("\x01\xfftoken", 7));
    EXPECT_EQ(got->leases[1].remaining, 1500ms);
    EXPECT_TRUE(got->leases[1].port);
    EXPECT_EQ(got->control_key_pem, s.control_key_pem);

    inherited store(std::move(got->listeners));
    EXPECT_EQ(store.size(), 450u);
    const auto http = store.take("http", "127.0.0.1:20000");
    ASSERT_TRUE(http);
    EXPECT_FALSE(store.take("http", "127.0.0.1:20000"));  // taken once
    EXPECT_FALSE(store.take("https", "127.0.0.1:20001"));  // role and place both match
    store.close_unless("tcp tunnel", [](std::string_view where) {
        return where == "127.0.0.1:20001";
    });
    EXPECT_EQ(store.size(), 1u);
    store.close_all_but("tcp tunnel");
    EXPECT_EQ(store.size(), 1u);
    ::close(*http);
    for (int fd : originals) ::close(fd);
}

TEST(Handoff, ChildMessagesAndHex) {
    auto hello = parse_child_message(hello_message());
    ASSERT_TRUE(hello);
    EXPECT_EQ(hello->what, child_message::kind::hello);
    EXPECT_EQ(parse_child_message(ready_message())->what, child_message::kind::ready);
    auto failed = parse_child_message(failed_message("relay.toml:3: bad \xff"));
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->what, child_message::kind::failed);
    EXPECT_EQ(failed->error.substr(0, 17), "relay.toml:3: bad");
    EXPECT_FALSE(parse_child_message("[]"));
    EXPECT_FALSE(parse_child_message("{\"other\":1}"));
    EXPECT_EQ(hex_of(std::string("\x00\x10\xab", 3)), "0010ab");
    EXPECT_FALSE(bytes_of_hex("abc"));
    EXPECT_FALSE(bytes_of_hex("zz"));
}

TEST(Handoff, LeasesKeepTheirHoldersNames) {
    lease_table<std::string> names(60s);
    const auto now = clock::now();
    ASSERT_TRUE(names.claim("live", "owner-a", now));
    ASSERT_TRUE(names.claim("left", "owner-b", now));
    names.release("left", "owner-b", now);
    std::vector<std::pair<std::string, bool>> seen;
    names.for_each_holder(now, [&](const std::string& k, const owner_key&,
                                   const std::optional<clock::time_point>& until) {
        seen.emplace_back(k, until.has_value());
    });
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<std::pair<std::string, bool>>{{"left", true}, {"live", false}}));

    lease_table<std::string> next(60s);
    next.adopt("live", "owner-a", now + 60s);
    EXPECT_FALSE(next.claim("live", "owner-x", now + 1s));  // only its holder
    EXPECT_TRUE(next.claim("live", "owner-a", now + 1s));
    next.adopt("gone", "owner-c", now + 1s);
    EXPECT_TRUE(next.claim("gone", "owner-x", now + 2s));  // the lease ran out
}

}  // namespace
}  // namespace porthole::relay::handoff
