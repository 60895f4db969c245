#include "net/pump.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <memory>
#include <vector>

namespace porthole::net {
namespace {

using namespace asio::experimental::awaitable_operators;

constexpr std::size_t buffer_size = 64 * 1024;
constexpr std::size_t pooled_buffers = 64;

class buffer_pool {
public:
    std::unique_ptr<char[]> take() {
        if (free_.empty()) return std::make_unique_for_overwrite<char[]>(buffer_size);
        auto b = std::move(free_.back());
        free_.pop_back();
        return b;
    }
    void give(std::unique_ptr<char[]> b) {
        if (free_.size() < pooled_buffers) free_.push_back(std::move(b));
    }

private:
    std::vector<std::unique_ptr<char[]>> free_;
};

thread_local buffer_pool buffers;

asio::awaitable<void> one_way(tcp::socket& from, tcp::socket& to) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    boost::system::error_code ec;
    for (;;) {
        std::tie(ec) = co_await from.async_wait(tcp::socket::wait_read, use_tuple);
        if (ec) break;
        auto buffer = buffers.take();
        const std::size_t n = from.read_some(asio::buffer(buffer.get(), buffer_size), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            buffers.give(std::move(buffer));
            continue;
        }
        if (ec == asio::error::eof) {
            buffers.give(std::move(buffer));
            to.shutdown(tcp::socket::shutdown_send, ec);
            co_return;
        }
        if (!ec) {
            std::size_t written = 0;
            std::tie(ec, written) =
                co_await asio::async_write(to, asio::buffer(buffer.get(), n), use_tuple);
        }
        buffers.give(std::move(buffer));
        if (ec) break;
    }
    // Reset, write failure or cancel: tear down both sides so the other direction ends too.
    from.close(ec);
    to.close(ec);
}

// TLS cannot wait for readability first (records may already sit decrypted in OpenSSL), so a
// direction keeps its buffer while it waits.
asio::awaitable<void> one_way(stream& from, stream& to) {
    constexpr std::size_t tls_buffer = 16 * 1024;  // one TLS record
    auto buffer = std::make_unique_for_overwrite<char[]>(tls_buffer);
    for (;;) {
        auto [ec, n] = co_await from.read_some(asio::buffer(buffer.get(), tls_buffer));
        if (n > 0) {
            auto [wec, written] = co_await to.write(asio::buffer(buffer.get(), n));
            if (wec) break;
        }
        if (is_end_of_stream(ec)) {
            to.shutdown_send();
            co_return;
        }
        if (ec) break;
    }
    from.close();
    to.close();
}

}  // namespace

asio::awaitable<void> pump(stream& a, stream& b) {
    if (!a.is_tls() && !b.is_tls()) {
        co_await pump(a.socket(), b.socket());
        co_return;
    }
    co_await (one_way(a, b) && one_way(b, a));
}

asio::awaitable<void> pump(tcp::socket& a, tcp::socket& b) {
    boost::system::error_code ec;
    a.non_blocking(true, ec);
    b.non_blocking(true, ec);
    co_await (one_way(a, b) && one_way(b, a));
}

}  // namespace porthole::net
