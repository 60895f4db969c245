#include "net/pump.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace porthole::net {
namespace {

using namespace asio::experimental::awaitable_operators;

constexpr std::size_t buffer_size = 64 * 1024;
constexpr std::size_t tls_record = 16 * 1024;  // the most plaintext one TLS record carries
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
asio::awaitable<splice_end> splice_all(tcp::socket& from, tcp::socket& to, const pipe_pair& pipe,
                                       std::uint64_t& moved) {
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
                moved += static_cast<std::uint64_t>(m);
            } else if (m < 0 && errno == EAGAIN) {
                auto [ec] = co_await to.async_wait(tcp::socket::wait_write, use_tuple);
                if (ec) co_return splice_end::error;
            } else {
                co_return splice_end::error;
            }
        }
    }
}

enum class got { bytes, nothing, eof, error };

// One non-blocking read after a readiness wait, into a buffer borrowed from the pool; the buffer
// goes back at once unless bytes came. MSG_DONTWAIT whatever mode the socket is in: a
// blocking read here would stall every connection of the process.
got read_once(tcp::socket& from, std::unique_ptr<char[]>& buffer, std::size_t& n,
              error_code& ec) {
    buffer = buffers.take();
    const ssize_t r = ::recv(from.native_handle(), buffer.get(), buffer_size, MSG_DONTWAIT);
    if (r > 0) {
        n = static_cast<std::size_t>(r);
        return got::bytes;
    }
    buffers.give(std::move(buffer));
    if (r == 0) return got::eof;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return got::nothing;
    ec = error_code(errno, asio::error::get_system_category());
    return got::error;
}

// Waits until `from` is readable (holding no buffer), then reads what is there.
asio::awaitable<got> next_chunk(tcp::socket& from, std::unique_ptr<char[]>& buffer, std::size_t& n,
                                error_code& ec) {
    for (;;) {
        std::tie(ec) =
            co_await from.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
        if (ec) co_return got::error;
        if (const got read = read_once(from, buffer, n, ec); read != got::nothing) co_return read;
    }
}

// A read that fills the whole buffer means the source outpaces this pump: the transfer is bulk
// and moves to splice() until reads get small again. Request-response traffic (HTTP, idle
// keep-alive) stays on borrowed buffers and holds no pipe.
asio::awaitable<void> one_way(tcp::socket& from, tcp::socket& to, std::uint64_t& moved) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    error_code ec;
    bool bulk = false;
    for (;;) {
        if (bulk) {
            bulk = false;
            if (const pipe_pair pipe; pipe.ok()) {
                const auto end = co_await splice_all(from, to, pipe, moved);
                if (end == splice_end::eof) {
                    to.shutdown(tcp::socket::shutdown_send, ec);
                    co_return;
                }
                if (end == splice_end::error) break;
            }
        }
        std::unique_ptr<char[]> buffer;
        std::size_t n = 0;
        const got read = co_await next_chunk(from, buffer, n, ec);
        if (read == got::eof) {
            to.shutdown(tcp::socket::shutdown_send, ec);
            co_return;
        }
        if (read == got::error) break;
        const std::array<asio::const_buffer, 1> bytes{asio::buffer(buffer.get(), n)};
        const std::size_t sent = try_send(to, bytes);
        if (sent < n) {
            std::size_t written = 0;
            std::tie(ec, written) = co_await asio::async_write(
                to, asio::buffer(buffer.get() + sent, n - sent), use_tuple);
        }
        buffers.give(std::move(buffer));
        if (ec) break;
        moved += n;
        bulk = n == buffer_size;
    }
    // Reset, write failure or cancel: tear down both sides so the other direction ends too.
    from.close(ec);
    to.close(ec);
}

// Holds TCP_CORK on a socket for a scope: the TLS records of one large write leave in full-size
// segments, so the reader wakes once per batch rather than once per 16 KiB record.
class cork {
public:
    explicit cork(tcp::socket& s) : fd_(s.native_handle()) { set(1); }
    ~cork() { set(0); }  // uncorking sends what is held at once
    cork(const cork&) = delete;
    cork& operator=(const cork&) = delete;

private:
    void set(int on) { ::setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &on, sizeof on); }
    int fd_;
};

// Plain bytes into TLS: the plain side can be waited on without a buffer, so an idle direction
// holds none; a large read is encrypted and sent as one corked batch.
asio::awaitable<void> one_way(tcp::socket& from, stream& to, std::uint64_t& moved) {
    error_code ec;
    for (;;) {
        std::unique_ptr<char[]> buffer;
        std::size_t n = 0;
        const got read = co_await next_chunk(from, buffer, n, ec);
        if (read == got::eof) {
            to.shutdown_send();
            co_return;
        }
        if (read == got::error) break;
        {
            std::optional<cork> batch;
            if (n > tls_record) batch.emplace(to.socket());
            std::size_t written = 0;
            std::tie(ec, written) = co_await to.write(asio::buffer(buffer.get(), n));
        }
        buffers.give(std::move(buffer));
        if (ec) break;
        moved += n;
    }
    from.close(ec);
    to.close();
}

// Whether another record is likely there already: OpenSSL holds bytes beyond what was read, or
// the kernel holds at least one whole TLS record more.
bool more_ready(stream& from) {
    constexpr int whole_record = 5 + static_cast<int>(tls_record) + 256;  // header, max expansion
    if (from.tls().has_pending()) return true;
    int queued = 0;
    return ::ioctl(from.socket().native_handle(), FIONREAD, &queued) == 0 &&
           queued >= whole_record;
}

// TLS cannot wait for readability first (records may already sit decrypted in OpenSSL), so a
// direction out of TLS keeps a one-record buffer while it waits. When more records are already
// there (a bulk transfer), they are gathered into a pooled 64 KiB buffer, without waiting, and
// written at once: one write and one wake-up of the reader instead of one per record.
asio::awaitable<void> one_way(stream& from, stream& to, std::uint64_t& moved) {
    if (!from.is_tls()) {
        co_await one_way(from.socket(), to, moved);
        co_return;
    }
    auto first = std::make_unique_for_overwrite<char[]>(tls_record);
    for (;;) {
        auto [ec, n] = co_await from.read_some(asio::buffer(first.get(), tls_record));
        if (n > 0) {
            const char* bytes = first.get();
            std::unique_ptr<char[]> batch;
            if (!ec && more_ready(from)) {
                batch = buffers.take();
                std::memcpy(batch.get(), first.get(), n);
                bytes = batch.get();
                while (n + tls_record <= buffer_size) {
                    auto [more_ec, m] =
                        from.tls().try_read_some(asio::buffer(batch.get() + n, tls_record));
                    n += m;
                    // A partial record: send what is whole now, the rest comes with the next.
                    if (more_ec == asio::error::would_block) break;
                    ec = more_ec;
                    if (ec || !more_ready(from)) break;
                }
            }
            auto [wec, written] = co_await to.write(asio::buffer(bytes, n));
            if (batch) buffers.give(std::move(batch));
            if (wec) break;
            moved += n;
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

// One direction paced by `budgets`: read at most a chunk, pay for it, write it.
asio::awaitable<void> paced_one_way(stream& from, stream& to, const shaping::budgets& budgets) {
    const std::size_t chunk = std::min(buffer_size, chunk_of(budgets));
    auto buffer = std::make_unique_for_overwrite<char[]>(chunk);
    for (;;) {
        auto [ec, n] = co_await from.read_some(asio::buffer(buffer.get(), chunk));
        if (n > 0) {
            co_await take(budgets, n);
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

asio::awaitable<void> pump(stream& a, stream& b, const shaping& s) {
    if (s.empty()) {
        co_await pump(a, b);
        co_return;
    }
    co_await (paced_one_way(a, b, s.up) && paced_one_way(b, a, s.down));
}

asio::awaitable<void> pump(stream& a, stream& b) {
    traffic uncounted;
    co_await pump(a, b, uncounted);
}

asio::awaitable<void> pump(stream& a, stream& b, traffic& counted) {
    if (!a.is_tls() && !b.is_tls()) {
        co_await pump(a.socket(), b.socket(), counted);
        co_return;
    }
    co_await (one_way(a, b, counted.in) && one_way(b, a, counted.out));
}

asio::awaitable<void> pump(tcp::socket& a, tcp::socket& b) {
    traffic uncounted;
    co_await pump(a, b, uncounted);
}

asio::awaitable<void> pump(tcp::socket& a, tcp::socket& b, traffic& counted) {
    boost::system::error_code ec;
    a.non_blocking(true, ec);
    b.non_blocking(true, ec);
    co_await (one_way(a, b, counted.in) && one_way(b, a, counted.out));
}

}  // namespace porthole::net
