#pragma once
// Reads and writes on a watched_socket (relay_context.hpp): each sets the socket's deadline for
// the sweeper, and clears it when done.
#include "config/error_pages.hpp"
#include "http/forward_exchange.hpp"
#include "net/io_buffer.hpp"
#include "net/stream.hpp"
#include "relay/relay_context.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace porthole::relay {

inline std::string_view view(const net::io_buffer& b) {
    return {static_cast<const char*>(b.data().data()), b.size()};
}

// Appends what arrives within `timeout`; false at end of stream, an error or the deadline.
// `ready`: a readiness wait has just succeeded, so the bytes are read without another wait.
boost::asio::awaitable<bool> read_more(watched_socket& s, net::io_buffer& in,
                                       std::chrono::seconds timeout, bool ready = false);

// Writes `bytes` then `more` in one gathered write; false when it fails or times out.
boost::asio::awaitable<bool> write_all(watched_socket& s, std::string_view bytes,
                                       std::chrono::seconds timeout, std::string_view more = {});

// A response of the relay's own, then the end of what it sends on this connection.
// `pages`: the site's or the tunnels' error_pages; one for `status` replaces `text`.
boost::asio::awaitable<void> reply_and_close(watched_socket& visitor, unsigned status,
                                             std::string_view reason, std::string text,
                                             const config::error_pages* pages = nullptr);

// A watched socket as one side of the shared forwarding core: each read and write under
// `timeout`, enforced by the sweeper.
class watched_endpoint final : public http::forward_endpoint {
public:
    watched_endpoint(watched_socket& s, std::chrono::seconds timeout) : s_(s), timeout_(timeout) {}
    boost::asio::awaitable<bool> read_more(net::io_buffer& in) override {
        return ::porthole::relay::read_more(s_, in, timeout_);
    }
    boost::asio::awaitable<bool> write(std::string_view bytes, std::string_view more) override {
        return write_all(s_, bytes, timeout_, more);
    }
    void shutdown_send() override { s_.conn.shutdown_send(); }
    void close() override { s_.conn.close(); }
    void cancel() override;
    bool readable_now() override { return http::readable_now(s_.conn); }

private:
    watched_socket& s_;
    std::chrono::seconds timeout_;
};

}  // namespace porthole::relay
