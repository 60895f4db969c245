#pragma once
// `porthole admin`'s side of the admin API: one request over the relay's unix socket or its TCP
// admin port, and the answer.
#include <tl/expected.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::admin {

struct admin_target {
    std::string socket_path{};  // set: the unix socket
    std::string host{};  // else TCP
    std::uint16_t port = 0;
    std::string token{};  // sent as a bearer token on TCP
};

struct admin_answer {
    int status = 0;
    std::string body{};
};

// The answer, or why no relay answered within `timeout`.
tl::expected<admin_answer, std::string> call(const admin_target& target, std::string_view method,
                                             std::string_view path, std::string_view body = {},
                                             std::chrono::seconds timeout = std::chrono::seconds(30));

// The sockets tried when none is named: the relay's own default, then the package's.
std::vector<std::string> default_socket_paths();

}  // namespace porthole::admin
