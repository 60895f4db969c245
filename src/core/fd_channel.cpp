#include "core/fd_channel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace porthole::core {
namespace {

using clock = std::chrono::steady_clock;

std::string errno_text() { return std::strerror(errno); }

// Waits for `events` on `socket` until `deadline`.
tl::expected<void, std::string> wait_for(int socket, short events, clock::time_point deadline) {
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) return tl::unexpected(std::string("timed out"));
        pollfd p{socket, events, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n > 0) return {};
        if (n < 0 && errno != EINTR) return tl::unexpected(errno_text());
    }
}

// Closes what a refused message brought along.
void close_all(std::vector<int>& fds) {
    for (int fd : fds) ::close(fd);
    fds.clear();
}

}  // namespace

tl::expected<void, std::string> send_message(int socket, std::string_view text,
                                             std::span<const int> fds) {
    if (fds.size() > max_fds_per_message)
        return tl::unexpected(fmt::format("{} descriptors in one message (at most {})",
                                          fds.size(), max_fds_per_message));
    if (text.size() > max_message_bytes) return tl::unexpected(std::string("message too long"));
    const auto n = static_cast<std::uint32_t>(text.size());
    const std::array<unsigned char, 4> head{static_cast<unsigned char>(n >> 24),
                                            static_cast<unsigned char>(n >> 16),
                                            static_cast<unsigned char>(n >> 8),
                                            static_cast<unsigned char>(n)};
    std::string bytes(head.begin(), head.end());
    bytes += text;
    const auto deadline = clock::now() + std::chrono::seconds(10);
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        iovec iov{bytes.data() + sent, bytes.size() - sent};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        std::vector<char> control;
        if (sent == 0 && !fds.empty()) {  // the descriptors ride with the first byte
            control.assign(CMSG_SPACE(fds.size() * sizeof(int)), 0);
            msg.msg_control = control.data();
            msg.msg_controllen = control.size();
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
            std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
        }
        const ssize_t w = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
        if (w > 0) {
            sent += static_cast<std::size_t>(w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (auto ready = wait_for(socket, POLLOUT, deadline); !ready) return ready;
            continue;
        }
        return tl::unexpected(errno_text());
    }
    return {};
}

tl::expected<fd_message, std::string> receive_message(int socket,
                                                      std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    fd_message out;
    std::array<unsigned char, 4> head{};
    std::string body;
    std::size_t got = 0, want = head.size();
    bool in_body = false;
    while (got < want || !in_body) {
        if (got == want) {  // the head is complete: the body follows
            const std::size_t n = (std::size_t{head[0]} << 24) | (std::size_t{head[1]} << 16) |
                                  (std::size_t{head[2]} << 8) | head[3];
            if (n > max_message_bytes) {
                close_all(out.fds);
                return tl::unexpected(fmt::format("a message of {} bytes is too long", n));
            }
            in_body = true;
            body.resize(n);
            got = 0;
            want = n;
            continue;
        }
        if (auto ready = wait_for(socket, POLLIN, deadline); !ready) {
            close_all(out.fds);
            return tl::unexpected(ready.error());
        }
        iovec iov = in_body ? iovec{body.data() + got, want - got}
                            : iovec{head.data() + got, want - got};
        alignas(cmsghdr) std::array<char, CMSG_SPACE(max_fds_per_message * sizeof(int))> control{};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        const ssize_t r = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
        if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (r < 0) {
            close_all(out.fds);
            return tl::unexpected(errno_text());
        }
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            const auto* data = reinterpret_cast<const int*>(CMSG_DATA(c));
            for (std::size_t i = 0; i < count; ++i) {
                int fd = -1;
                std::memcpy(&fd, data + i, sizeof fd);
                out.fds.push_back(fd);
            }
        }
        if (msg.msg_flags & MSG_CTRUNC) {
            close_all(out.fds);
            return tl::unexpected(std::string("more descriptors than a message may carry"));
        }
        if (r == 0) {
            close_all(out.fds);
            return tl::unexpected(std::string(got == 0 && !in_body ? "closed"
                                                                   : "closed mid-message"));
        }
        got += static_cast<std::size_t>(r);
    }
    out.text = std::move(body);
    return out;
}

}  // namespace porthole::core
