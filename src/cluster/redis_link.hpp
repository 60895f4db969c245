#pragma once
// One connection to Redis on the relay's event loop: Debian's hiredis does the protocol (its
// async API), and a small adapter turns its read and write interest into Asio waits on the
// socket, so that no thread of its own is needed. Commands are awaitables that complete with the
// reply or a reason; every command has a deadline. A lost connection fails the commands under
// way; connect() again makes a new one. hiredis writes with write(2), so the process must ignore
// SIGPIPE (porthole's main does). (The cluster registry, docs/design-scale.md, uses it.)
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisAsyncContext;

namespace porthole::cluster {

// Where Redis is: redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH[?db=N].
struct redis_address {
    std::string host;  // empty for a unix socket
    std::uint16_t port = 6379;
    std::string unix_path;
    unsigned db = 0;
    std::string password;  // a secret: never in messages
    std::string describe() const;  // "127.0.0.1:6379/0" or "unix:/run/redis.sock/0", no password
};
tl::expected<redis_address, std::string> parse_redis_url(std::string_view url);

// A reply, as RESP 2 has them.
struct redis_reply {
    enum class type { status, string, integer, nil, array };
    type kind = type::nil;
    std::string text;  // status and string
    long long integer = 0;
    std::vector<redis_reply> elements;  // array
};

class redis_link {
public:
    redis_link(boost::asio::any_io_executor ex, redis_address address,
               std::chrono::milliseconds timeout = std::chrono::seconds(5));
    ~redis_link();
    redis_link(const redis_link&) = delete;
    redis_link& operator=(const redis_link&) = delete;

    // Connects (then AUTH and SELECT as the address says), closing a connection held before.
    boost::asio::awaitable<tl::expected<void, std::string>> connect();
    bool connected() const;

    // One command, its arguments as given (binary-safe). An error reply ("-ERR ...") is an
    // error here too.
    boost::asio::awaitable<tl::expected<redis_reply, std::string>> command(
        std::vector<std::string> args);

    // Turns this connection into a subscriber of `channel` (it takes no other command after):
    // each message's payload goes to `on_message`, on the loop, until the connection ends
    // (connected() is false then; connect() and subscribe again).
    boost::asio::awaitable<tl::expected<void, std::string>> subscribe(
        std::string channel, std::function<void(std::string_view)> on_message);

    const redis_address& address() const { return address_; }
    // Ends the connection; what is under way fails.
    void close();

private:
    struct state;

    boost::asio::any_io_executor ex_;
    redis_address address_;
    std::chrono::milliseconds timeout_;
    std::shared_ptr<state> state_;  // the hiredis context and the socket's waits
};

}  // namespace porthole::cluster
