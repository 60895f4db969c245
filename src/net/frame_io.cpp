#include "net/frame_io.hpp"

#include <fmt/format.h>

namespace porthole::net {
namespace {

asio::awaitable<io_result> read_exact(stream& s, asio::mutable_buffer b) {
    std::size_t got = 0;
    while (got < b.size()) {
        auto [ec, n] = co_await s.read_some(b + got);
        got += n;
        if (ec) co_return io_result{ec, got};
    }
    co_return io_result{error_code{}, got};
}

std::string describe(const std::optional<io_result>& r) {
    if (!r) return "timed out";
    return is_end_of_stream(std::get<0>(*r)) ? std::string("End of file")
                                             : std::get<0>(*r).message();
}

}  // namespace

asio::awaitable<tl::expected<protocol::message, std::string>> read_frame(
    stream& s, duration timeout, std::size_t max_body) {
    std::array<std::uint8_t, protocol::header_size> header{};
    auto r = co_await within(read_exact(s, asio::buffer(header)), timeout);
    if (!r || std::get<0>(*r)) co_return tl::unexpected(describe(r));
    auto length = protocol::decode_length(header);
    if (!length) co_return tl::unexpected(length.error());
    if (*length > max_body)
        co_return tl::unexpected(fmt::format("frame of {} bytes exceeds the {} byte limit here",
                                             *length, max_body));
    std::vector<std::uint8_t> body(*length);
    r = co_await within(read_exact(s, asio::buffer(body)), timeout);
    if (!r || std::get<0>(*r)) co_return tl::unexpected(describe(r));
    co_return protocol::decode_body(body);
}

asio::awaitable<error_code> write_frame(stream& s, const protocol::message& m, duration timeout) {
    const std::string bytes = protocol::encode(m);
    auto r = co_await within(s.write(asio::buffer(bytes)), timeout);
    co_return r ? std::get<0>(*r) : error_code(asio::error::timed_out);
}

bool frame_queue::push(const protocol::message& m) {
    if (closed_) return !overflowed_;
    pending_.push_back(protocol::encode(m));
    pending_bytes_ += pending_.back().size();
    if (pending_bytes_ > limit_) {
        overflowed_ = true;
        close();
        return false;
    }
    wake_.cancel();
    return true;
}

void frame_queue::finish() {
    finishing_ = true;
    wake_.cancel();
}

void frame_queue::close() {
    closed_ = true;
    wake_.cancel();
}

asio::awaitable<error_code> frame_queue::run(stream& s, duration write_timeout) {
    while (!closed_) {
        if (pending_.empty()) {
            if (finishing_) break;
            wake_.expires_at(asio::steady_timer::time_point::max());
            co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        const std::string bytes = std::move(pending_.front());
        pending_.pop_front();
        pending_bytes_ -= bytes.size();
        auto r = co_await within(s.write(asio::buffer(bytes)), write_timeout);
        if (!r) co_return error_code(asio::error::timed_out);
        if (std::get<0>(*r)) co_return std::get<0>(*r);
    }
    if (overflowed_) co_return error_code(asio::error::message_size);
    co_return error_code{};
}

}  // namespace porthole::net
