#pragma once
// metrics_addr: a listener that answers GET /metrics and nothing else, on the relay's own loop,
// so a scrape reads the counters where they are written, without a lock. With a token (required
// off loopback) every request must carry `Authorization: Bearer TOKEN`; the check compares
// SHA-256 digests in constant time, so neither timing nor length tells anything.
#include "config/endpoint.hpp"
#include "relay/relay_context.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <tl/expected.hpp>

#include <array>
#include <functional>
#include <optional>
#include <string>

namespace porthole::relay {

class metrics_listener {
public:
    // `scrape` writes the whole exposition; `token` empty: no token is asked for.
    metrics_listener(relay_context& ctx, std::function<std::string()> scrape, std::string token);

    tl::expected<void, std::string> listen(const config::endpoint& at);
    void start();
    void stop_accepting();
    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    int listener_fd() { return acceptor_.is_open() ? acceptor_.native_handle() : -1; }

private:
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

    static constexpr unsigned most_connections = 16;
    relay_context& ctx_;
    std::function<std::string()> scrape_;
    std::optional<std::array<unsigned char, 32>> token_digest_;
    boost::asio::ip::tcp::acceptor acceptor_;
    unsigned connections_ = 0;
};

}  // namespace porthole::relay
