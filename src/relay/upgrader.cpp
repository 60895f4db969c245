#include "relay/upgrader.hpp"

#include "core/fd_channel.hpp"
#include "core/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace porthole::relay {
namespace {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
constexpr int child_channel_fd = 3;

struct spawned {
    pid_t pid = -1;
    int channel = -1;  // this side of the socket pair
};

// Starts `binary` with `args`, the socket pair's other end as descriptor 3 and nothing else
// open but 0-2: visitor connections and listeners reach it only as the handoff sends them.
tl::expected<spawned, std::string> spawn(const std::string& binary,
                                         const std::vector<std::string>& args) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        return tl::unexpected(fmt::format("socketpair: {}", std::strerror(errno)));
    // Above 3, so that dup2 onto 3 always makes a copy (and clears close-on-exec).
    const int child_end = ::fcntl(pair[1], F_DUPFD_CLOEXEC, 10);
    ::close(pair[1]);
    if (child_end < 0) {
        ::close(pair[0]);
        return tl::unexpected(fmt::format("fcntl: {}", std::strerror(errno)));
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e)
        if (!std::string_view(*e).starts_with("PORTHOLE_TAKEOVER_FD=")) env_text.emplace_back(*e);
    env_text.push_back(fmt::format("PORTHOLE_TAKEOVER_FD={}", child_channel_fd));
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_end, child_channel_fd);
    posix_spawn_file_actions_addclosefrom_np(&actions, child_channel_fd + 1);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(child_end);
    if (rc != 0) {
        ::close(pair[0]);
        return tl::unexpected(fmt::format("cannot start {}: {}", binary, std::strerror(rc)));
    }
    return spawned{pid, pair[0]};
}

// How a child that is gone ended: "exited with status 1", "was killed by signal 9".
std::string reap(pid_t pid, bool kill_first) {
    if (kill_first) ::kill(pid, SIGKILL);
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return "ended";
    if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
    return "ended";
}

}  // namespace

std::string own_program_file() {
    std::error_code ec;
    std::string path = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    constexpr std::string_view deleted = " (deleted)";
    if (path.ends_with(deleted)) path.resize(path.size() - deleted.size());
    return path;
}

upgrader::upgrader(asio::io_context& io, std::vector<std::string> command, hooks h)
    : io_(io), command_(std::move(command)), hooks_(std::move(h)) {}

upgrader::~upgrader() {
    if (serving_channel_ >= 0) ::close(serving_channel_);
}

void upgrader::release_control() {
    if (serving_channel_ < 0) return;
    (void)core::send_message(serving_channel_, handoff::control_message());
    ::close(std::exchange(serving_channel_, -1));
}

void upgrader::start(std::string binary, std::chrono::seconds wait, admin::upgrade_done done) {
    if (running_) {
        done({admin::outcome::conflict, "an upgrade is under way already", 0, {}});
        return;
    }
    if (binary.empty()) binary = own_program_file();
    if (binary.empty() || ::access(binary.c_str(), X_OK) != 0) {
        done({admin::outcome::failed,
              fmt::format("{} is not an executable file", binary.empty() ? "?" : binary), 0, {}});
        return;
    }
    running_ = true;
    asio::co_spawn(io_, run(std::move(binary), wait, std::move(done)), asio::detached);
}

asio::awaitable<void> upgrader::run(std::string binary, std::chrono::seconds wait,
                                    admin::upgrade_done done) {
    auto started = spawn(binary, command_);
    if (!started) {
        running_ = false;
        done({admin::outcome::failed, started.error(), 0, binary});
        co_return;
    }
    const pid_t pid = started->pid;
    spdlog::info("upgrade: started {} (pid {}); handing over once it has read its config", binary,
                 pid);
    asio::local::stream_protocol::socket channel(io_);
    error_code ec;
    channel.assign(asio::local::stream_protocol(), started->channel, ec);
    asio::steady_timer deadline(io_);
    deadline.expires_after(wait);
    bool timed_out = false;
    deadline.async_wait([&](error_code e) {
        if (e) return;
        timed_out = true;
        error_code ignored;
        channel.cancel(ignored);
    });

    std::string failure;
    std::string ended;  // how the new process ended, once it has
    bool served = false;
    while (!served && failure.empty()) {
        auto [wec] = co_await channel.async_wait(asio::socket_base::wait_read, use_tuple);
        if (timed_out) {
            failure = fmt::format("the new relay (pid {}) did not serve within {} s", pid,
                                  wait.count());
            break;
        }
        if (wec) {
            failure = "the channel to the new relay failed: " + wec.message();
            break;
        }
        // A whole message is there, or on its way: its writer sends it in one piece.
        auto msg = core::receive_message(channel.native_handle(), std::chrono::seconds(2));
        if (!msg) {
            if (msg.error() == "closed") {
                ended = reap(pid, false);
                failure = fmt::format("the new relay (pid {}) {} before it served", pid, ended);
            } else {
                failure = "the channel to the new relay failed: " + msg.error();
            }
            break;
        }
        for (int fd : msg->fds) ::close(fd);
        auto said = handoff::parse_child_message(msg->text);
        if (!said) {
            failure = "the new relay sent a bad message: " + said.error();
            break;
        }
        switch (said->what) {
        case handoff::child_message::kind::hello: {
            const handoff::state s = hooks_.collect();
            auto sent = handoff::send_state(channel.native_handle(), s);
            if (!sent) failure = "cannot hand the sockets over: " + sent.error();
            else
                spdlog::info("upgrade: handed {} listening sockets and {} leases to pid {}",
                             s.listeners.size(), s.leases.size(), pid);
            break;
        }
        case handoff::child_message::kind::ready: served = true; break;
        case handoff::child_message::kind::failed: failure = said->error; break;
        }
    }
    deadline.cancel();
    if (served) serving_channel_ = channel.release(ec);
    else channel.close(ec);
    running_ = false;
    if (!served) {
        // One that said why is ending anyway; one that did not say is stopped. Either way it
        // took nothing from this relay.
        if (ended.empty()) failure += fmt::format(" (the new relay {})", reap(pid, true));
        spdlog::error("upgrade refused, this relay keeps serving: {}", failure);
        done({admin::outcome::failed, failure, pid, binary});
        co_return;
    }
    spdlog::info("upgrade: pid {} serves; this relay drains and stops", pid);
    done({admin::outcome::done, {}, pid, binary});
    hooks_.replaced();
}

}  // namespace porthole::relay
