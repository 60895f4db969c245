#include "core/service_notify.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

using porthole::core::notify_message;

TEST(NotifyMessage, FieldsAloneOrWithAStatus) {
    EXPECT_EQ(notify_message("READY=1", ""), "READY=1");
    EXPECT_EQ(notify_message("READY=1", "serving"), "READY=1\nSTATUS=serving");
    EXPECT_EQ(notify_message("", "draining"), "STATUS=draining");
}

TEST(NotifyMessage, ANewlineInTheStatusCannotStartAField) {
    EXPECT_EQ(notify_message("READY=1", "a\nMAINPID=1"), "READY=1\nSTATUS=a MAINPID=1");
}

// The manager's end: a datagram socket named by NOTIFY_SOCKET, as systemd makes it.
class notify_socket {
public:
    notify_socket() {
        path_ = ::testing::TempDir() + "notify-" + std::to_string(::getpid());
        ::unlink(path_.c_str());
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
        bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    }
    ~notify_socket() {
        ::unsetenv("NOTIFY_SOCKET");
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    bool bound() const { return bound_; }

    // The next datagram, or "" when none comes within a second.
    std::string receive() {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 1000) != 1) return {};
        char buf[4096];
        const auto n = ::recv(fd_, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    }

private:
    std::string path_;
    int fd_ = -1;
    bool bound_ = false;
};

TEST(ServiceNotify, SendsEachStateToNotifySocket) {
    notify_socket manager;
    ASSERT_TRUE(manager.bound());
    porthole::core::notify_ready("serving http on 127.0.0.1:8080");
    EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=serving http on 127.0.0.1:8080");
    porthole::core::notify_reloading();
    const auto reloading = manager.receive();
    EXPECT_TRUE(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC=")) << reloading;
    porthole::core::notify_status("generation 2");
    EXPECT_EQ(manager.receive(), "STATUS=generation 2");
    porthole::core::notify_stopping("draining");
    EXPECT_EQ(manager.receive(), "STOPPING=1\nSTATUS=draining");
    // Still set: a process the relay starts notifies the same manager.
    EXPECT_NE(std::getenv("NOTIFY_SOCKET"), nullptr);
}

TEST(ServiceNotify, NothingHappensWithoutNotifySocket) {
    ::unsetenv("NOTIFY_SOCKET");
    porthole::core::notify_ready();
    porthole::core::notify_stopping();
    SUCCEED();
}

}  // namespace
