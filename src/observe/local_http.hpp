#pragma once
// The small HTTP/1.1 server of porthole's local tools, the inspector and the admin API: a TCP or
// unix-socket listener, the Host and Origin checks against DNS rebinding and foreign pages, body
// limits, JSON replies, server-sent events and a cap on open connections. What a request means
// is the handler's; Beast stays inside local_http.cpp.
#include <tl/expected.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace porthole::observe::local_http {

// Who is on the other end. On a unix socket the kernel says (SO_PEERCRED); on TCP, the address.
struct peer {
    bool unix_socket = false;
    std::string address{};  // "127.0.0.1:51234"; empty on a unix socket
    std::int64_t uid = -1;
    std::int64_t gid = -1;
    std::int64_t pid = -1;
    std::vector<std::int64_t> groups{};  // supplementary groups (SO_PEERGROUPS)

    // "uid 1000 (pid 4242)" or "127.0.0.1:51234", for log lines.
    std::string describe() const;
};

struct request {
    std::string method{};  // "GET"
    std::string target{};  // "/api/requests/http?limit=5"
    std::string path{};  // "/api/requests/http"
    std::vector<std::pair<std::string, std::string>> fields{};
    std::string body{};  // empty until the head was admitted
    peer from{};

    // A field's value, the first of that name (case-insensitive); "" when absent.
    std::string_view field(std::string_view name) const;
    // A query parameter, percent- and plus-decoded; "" when absent.
    std::string query(std::string_view name) const;
};

class event_stream;
class deferred_reply;

struct reply {
    int status = 200;
    std::string body{};
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> fields{};
    // Set: the connection turns into this stream of server-sent events, `body` its first bytes.
    std::shared_ptr<event_stream> events{};
    // Set: the answer comes later, when `later` is completed; the connection waits for it.
    std::shared_ptr<deferred_reply> later{};
};

// A JSON reply: `body` is a serialized document.
reply json_reply(int status, std::string body);
// {"error": message}.
reply error_reply(int status, std::string_view message);

// Server-sent events for one connection. The owner pushes whole events ("event: x\ndata: y\n\n");
// the server writes them as they come, a comment every 15 s finds a page that went away, and a
// reader further behind than the backlog limit is cut off.
class event_stream {
public:
    explicit event_stream(std::size_t backlog_limit);
    ~event_stream();
    event_stream(const event_stream&) = delete;
    event_stream& operator=(const event_stream&) = delete;

    void push(std::string event);
    // Ends the stream after what is queued (the server stops).
    void close();
    // Called once when the connection ends; the owner forgets the stream there.
    void on_end(std::function<void()> f);

    struct state;
    state& get() { return *state_; }

private:
    std::unique_ptr<state> state_;
};

// An answer that takes a while (an upgrade waits for the new process): the handler returns a
// reply whose `later` is this, and whoever finishes the work completes it, once.
class deferred_reply {
public:
    deferred_reply();
    ~deferred_reply();
    deferred_reply(const deferred_reply&) = delete;
    deferred_reply& operator=(const deferred_reply&) = delete;

    void complete(reply r);

    struct state;
    state& get() { return *state_; }

private:
    std::unique_ptr<state> state_;
};

using handler = std::function<reply(const request&)>;

struct options {
    std::string name = "this server";  // in refusals: "the inspector", "the admin API"
    std::size_t connection_limit = 64;
    std::size_t body_limit = 16 * 1024;
    // The body limit of a request by its head, when it is not `body_limit`.
    std::function<std::size_t(const request&)> body_limit_for{};
    // Host names answered besides localhost and IP literals.
    std::vector<std::string> hosts{};
    // Origin, when sent, must match Host on every request, not only on ones that change state.
    bool origin_on_every_request = false;
    // Judges a request by its head, after the Host, Content-Type and Origin checks and before
    // its body is read: an answer refuses it.
    std::function<std::optional<reply>(const request&)> admit{};
    // Judges a connection when it is accepted: false closes it.
    std::function<bool(const peer&)> accept_peer{};
};

// DNS rebinding defence: a name other than localhost or `hosts` could point anywhere tomorrow.
bool trusted_host(std::string_view host, const std::vector<std::string>& hosts);
// The host[:port] of an Origin ("http://127.0.0.1:4040" -> "127.0.0.1:4040").
std::string origin_host(std::string_view origin);
// Whether a process accepts connections on the unix socket at `path`.
bool socket_answers(const std::string& path);

class server {
public:
    // Listens on host:port; with `tries` > 1 and the port taken, on the next free one of the
    // ports after it.
    static tl::expected<std::unique_ptr<server>, std::string> listen_tcp(
        boost::asio::io_context& io, const std::string& host, std::uint16_t port, int tries,
        options opts, handler h);
    // Listens on a unix socket at `path`, given `mode` after bind. A stale socket file is removed;
    // one something answers on stops the start.
    static tl::expected<std::unique_ptr<server>, std::string> listen_unix(
        boost::asio::io_context& io, const std::string& path, unsigned mode, options opts,
        handler h);
    // The same on a listening socket another process handed over (`fd` becomes the server's);
    // `path` is the unix socket's file.
    static tl::expected<std::unique_ptr<server>, std::string> adopt_tcp(
        boost::asio::io_context& io, int fd, options opts, handler h);
    static tl::expected<std::unique_ptr<server>, std::string> adopt_unix(
        boost::asio::io_context& io, int fd, const std::string& path, options opts, handler h);
    ~server();  // stops accepting, ends event streams, removes its socket file

    // Whether an answer given later (deferred_reply) is still to be written.
    bool answering() const;
    // The listening socket, for handing over to a process that replaces this one.
    int listener_fd() const;
    // Stops accepting; the socket file stays, since another process now listens on it.
    void stop_accepting_keep_file();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // "127.0.0.1:4040", "[::1]:4040" or the socket's path.
    std::string where() const;
    std::uint16_t port() const;

    struct impl;

private:
    explicit server(std::shared_ptr<impl> i);
    std::shared_ptr<impl> impl_;
};

}  // namespace porthole::observe::local_http
