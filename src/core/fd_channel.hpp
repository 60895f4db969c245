#pragma once
// Messages over a unix stream socket, each a 4-byte big-endian length and that many bytes, that
// may carry open descriptors (SCM_RIGHTS): how one porthole process hands its listening sockets to
// the one that replaces it. Blocking calls with a deadline, for a process that has no event loop
// yet or a socket that is known to be ready.
#include <tl/expected.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace porthole::core {

// Descriptors one message may carry (Linux's SCM_MAX_FD is 253).
inline constexpr std::size_t max_fds_per_message = 200;
// A message longer than this is refused as garbage.
inline constexpr std::size_t max_message_bytes = 4 * 1024 * 1024;

struct fd_message {
    std::string text{};
    std::vector<int> fds{};  // owned by the receiver, close-on-exec
};

// Sends `text` with `fds` (at most max_fds_per_message; the caller keeps its own copies).
tl::expected<void, std::string> send_message(int socket, std::string_view text,
                                             std::span<const int> fds = {});

// Waits until `timeout` for the next whole message. "closed" when the peer closed the socket
// between messages.
tl::expected<fd_message, std::string> receive_message(int socket,
                                                      std::chrono::milliseconds timeout);

}  // namespace porthole::core
