#pragma once
// The admin listeners: a unix socket whose callers the kernel names (root, the relay's user or
// its group), and an optional TCP port where every request carries the bearer token, but those
// of the dashboard's files (dashboard_page.hpp). Requests that pass go to admin::handle
// (api.hpp); GET /api/events to the event_feed; GET /metrics to the metrics provider.
#include "admin/relay_control.hpp"

#include <tl/expected.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace porthole::observe::local_http {
class server;
}

namespace porthole::admin {

class event_feed;

// The bearer token of the TCP listener, kept as its SHA-256 digest: a request's token is
// digested too and the two compared with CRYPTO_memcmp, so neither time nor length tells.
class bearer_check {
public:
    explicit bearer_check(std::string_view token);
    // An "Authorization" field's value: "Bearer TOKEN".
    bool operator()(std::string_view authorization) const;

private:
    std::array<unsigned char, 32> digest_{};
};

struct admin_settings {
    std::string socket_path{};  // "": no socket
    std::string tcp_host{};  // "": no TCP listener
    std::uint16_t tcp_port = 0;
    std::string token{};  // the TCP listener's bearer token
    std::vector<std::string> hosts{};  // Host names answered besides localhost and IP literals
    // The Prometheus text of GET /metrics; unset, or nullopt, answers 404.
    std::function<std::optional<std::string>()> metrics{};
    // Listening sockets handed over by the relay this one replaced (-1: bind anew).
    int socket_fd = -1;
    int tcp_fd = -1;
};

class admin_server {
public:
    static tl::expected<std::unique_ptr<admin_server>, std::string> start(
        boost::asio::io_context& io, admin_settings settings, relay_control& relay);
    ~admin_server();
    admin_server(const admin_server&) = delete;
    admin_server& operator=(const admin_server&) = delete;

    std::string socket_path() const;  // "" when none
    std::string tcp_address() const;  // "127.0.0.1:7836", "" when none
    // The listening sockets, for the relay that replaces this one (-1: none).
    int socket_fd() const;
    int tcp_fd() const;
    // Whether an answer that took a while (an upgrade's) is still to be written.
    bool answering() const;
    // A new relay answers now: stop accepting, and leave the socket file to it.
    void stop_accepting();
    // Requests the TCP listener refused for a missing or wrong token.
    std::uint64_t auth_failures() const;

    struct state;

private:
    admin_server() = default;
    std::shared_ptr<state> state_;
    std::unique_ptr<event_feed> feed_;
    std::unique_ptr<observe::local_http::server> unix_;
    std::unique_ptr<observe::local_http::server> tcp_;
};

}  // namespace porthole::admin
