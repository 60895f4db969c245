#include "relay/watched_socket.hpp"

#include "http/message_head.hpp"

namespace porthole::relay {

namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<bool> read_more(watched_socket& s, net::io_buffer& in,
                                std::chrono::seconds timeout, bool ready) {
    s.deadline = s.ctx.now + timeout;
    net::io_result result;
    if (ready)
        result = co_await s.conn.read_ready(in.prepare(net::io_block_size));
    else
        result = co_await s.conn.read_some(in.prepare(net::io_block_size));
    s.deadline = clock::time_point::max();
    in.commit(std::get<1>(result));
    s.bytes_in += std::get<1>(result);
    co_return !std::get<0>(result);
}

asio::awaitable<bool> write_all(watched_socket& s, std::string_view bytes,
                                std::chrono::seconds timeout, std::string_view more) {
    s.deadline = s.ctx.now + timeout;
    auto [ec, n] = co_await s.conn.write(asio::buffer(bytes), asio::buffer(more));
    s.deadline = clock::time_point::max();
    s.bytes_out += n;
    co_return !ec;
}

asio::awaitable<void> reply_and_close(watched_socket& visitor, unsigned status,
                                      std::string_view reason, std::string text,
                                      const config::error_pages* pages) {
    const auto page = pages ? pages->find(status) : config::error_pages::const_iterator();
    // Named, not a temporary inside co_await: GCC 12 can destroy such temporaries twice.
    const std::string response =
        pages && page != pages->end()
            ? http::relay_response(status, reason, page->second.body, page->second.content_type)
            : http::relay_response(status, reason, text + "\n");
    visitor.answered = status;
    co_await write_all(visitor, response, 10s);
    visitor.conn.shutdown_send();
}

void watched_endpoint::cancel() {
    boost::system::error_code ignored;
    s_.conn.socket().cancel(ignored);
}

}  // namespace porthole::relay
