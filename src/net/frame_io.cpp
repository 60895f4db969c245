#include "net/frame_io.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace porthole::net {
namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

void arm(beast::tcp_stream& s, duration timeout) {
    if (timeout.count() > 0)
        s.expires_after(timeout);
    else
        s.expires_never();
}

}  // namespace

asio::awaitable<tl::expected<protocol::message, std::string>> read_frame(beast::tcp_stream& s,
                                                                        duration timeout) {
    std::array<std::uint8_t, protocol::header_size> header{};
    arm(s, timeout);
    auto [ec, n] = co_await asio::async_read(s, asio::buffer(header), use_tuple);
    if (ec) co_return tl::unexpected(ec == beast::error::timeout ? std::string("timed out")
                                                                 : ec.message());
    auto length = protocol::decode_length(header);
    if (!length) co_return tl::unexpected(length.error());
    std::vector<std::uint8_t> body(*length);
    arm(s, timeout);
    std::tie(ec, n) = co_await asio::async_read(s, asio::buffer(body), use_tuple);
    if (ec) co_return tl::unexpected(ec == beast::error::timeout ? std::string("timed out")
                                                                 : ec.message());
    co_return protocol::decode_body(body);
}

asio::awaitable<error_code> write_frame(beast::tcp_stream& s, const protocol::message& m,
                                        duration timeout) {
    const std::string bytes = protocol::encode(m);
    arm(s, timeout);
    auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes), use_tuple);
    co_return ec;
}

void frame_queue::push(const protocol::message& m) {
    if (closed_) return;
    pending_.push_back(protocol::encode(m));
    wake_.cancel();
}

void frame_queue::finish() {
    finishing_ = true;
    wake_.cancel();
}

void frame_queue::close() {
    closed_ = true;
    wake_.cancel();
}

asio::awaitable<error_code> frame_queue::run(beast::tcp_stream& s, duration write_timeout) {
    while (!closed_) {
        if (pending_.empty()) {
            if (finishing_) break;
            wake_.expires_at(asio::steady_timer::time_point::max());
            co_await wake_.async_wait(use_tuple);
            continue;
        }
        std::string bytes = std::move(pending_.front());
        pending_.pop_front();
        s.expires_after(write_timeout);
        auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes), use_tuple);
        if (ec) co_return ec;
    }
    co_return error_code{};
}

}  // namespace porthole::net
