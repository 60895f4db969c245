#include "net/pump.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <array>
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

// A kernel pipe for splice(): owned for the rest of a bulk transfer.
class pipe_pair {
public:
    pipe_pair() {
        if (::pipe2(fds_, O_NONBLOCK | O_CLOEXEC) != 0) fds_[0] = fds_[1] = -1;
    }
    ~pipe_pair() {
        if (fds_[0] >= 0) ::close(fds_[0]);
        if (fds_[1] >= 0) ::close(fds_[1]);
    }
    pipe_pair(const pipe_pair&) = delete;
    pipe_pair& operator=(const pipe_pair&) = delete;
    bool ok() const { return fds_[0] >= 0; }
    int read_end() const { return fds_[0]; }
    int write_end() const { return fds_[1]; }

private:
    int fds_[2];
};

enum class splice_end { eof, error, slowed };

// Below this many bytes per read a bulk transfer has slowed down: back to buffered reads, which
// cost fewer system calls per message than a round through a pipe.
constexpr std::size_t slow_read = 16 * 1024;

// Zero-copy forwarding through a pipe: socket -> pipe -> socket, bytes never enter user space.
// Returns `slowed` (with the pipe empty) when the source has been drained by small reads.
asio::awaitable<splice_end> splice_all(tcp::socket& from, tcp::socket& to, const pipe_pair& pipe) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    constexpr unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    std::size_t last = buffer_size;
    for (;;) {
        const ssize_t n = ::splice(from.native_handle(), nullptr, pipe.write_end(), nullptr,
                                   buffer_size, flags);
        if (n == 0) co_return splice_end::eof;
        if (n < 0) {
            if (errno != EAGAIN) co_return splice_end::error;
            if (last < slow_read) co_return splice_end::slowed;
            auto [ec] = co_await from.async_wait(tcp::socket::wait_read, use_tuple);
            if (ec) co_return splice_end::error;
            last = 0;
            continue;
        }
        last = static_cast<std::size_t>(n);
        for (auto pending = static_cast<std::size_t>(n); pending > 0;) {
            const ssize_t m =
                ::splice(pipe.read_end(), nullptr, to.native_handle(), nullptr, pending, flags);
            if (m > 0) {
                pending -= static_cast<std::size_t>(m);
            } else if (m < 0 && errno == EAGAIN) {
                auto [ec] = co_await to.async_wait(tcp::socket::wait_write, use_tuple);
                if (ec) co_return splice_end::error;
            } else {
                co_return splice_end::error;
            }
        }
    }
}

// A read that fills the whole buffer means the source outpaces this pump: the transfer is bulk
// and moves to splice() until reads get small again. Request-response traffic (HTTP, idle
// keep-alive) stays on borrowed buffers and holds no pipe.
asio::awaitable<void> one_way(tcp::socket& from, tcp::socket& to) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    boost::system::error_code ec;
    bool bulk = false;
    for (;;) {
        if (bulk) {
            bulk = false;
            if (const pipe_pair pipe; pipe.ok()) {
                const auto end = co_await splice_all(from, to, pipe);
                if (end == splice_end::eof) {
                    to.shutdown(tcp::socket::shutdown_send, ec);
                    co_return;
                }
                if (end == splice_end::error) break;
            }
        }
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
            const std::array<asio::const_buffer, 1> bytes{asio::buffer(buffer.get(), n)};
            const std::size_t sent = try_send(to, bytes);
            if (sent < n) {
                std::size_t written = 0;
                std::tie(ec, written) = co_await asio::async_write(
                    to, asio::buffer(buffer.get() + sent, n - sent), use_tuple);
            }
        }
        buffers.give(std::move(buffer));
        if (ec) break;
        bulk = n == buffer_size;
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
