#include "http/shaped_endpoint.hpp"

#include <algorithm>

namespace porthole::http {

boost::asio::awaitable<bool> shaped_endpoint::read_more(net::io_buffer& in) {
    const std::size_t before = in.size();
    const bool more = co_await inner_.read_more(in);
    if (in.size() > before) co_await net::take(s_.up, in.size() - before);
    co_return more;
}

boost::asio::awaitable<bool> shaped_endpoint::write_paced(std::string_view bytes) {
    const std::size_t chunk = net::chunk_of(s_.down);
    while (!bytes.empty()) {
        const std::string_view piece = bytes.substr(0, std::min(chunk, bytes.size()));
        co_await net::take(s_.down, piece.size());
        const bool written = co_await inner_.write(piece, {});
        if (!written) co_return false;
        bytes.remove_prefix(piece.size());
    }
    co_return true;
}

boost::asio::awaitable<bool> shaped_endpoint::write(std::string_view bytes, std::string_view more) {
    if (!s_.down[0]) {
        const bool written = co_await inner_.write(bytes, more);
        co_return written;
    }
    const bool head_written = co_await write_paced(bytes);
    if (!head_written) co_return false;
    const bool rest_written = co_await write_paced(more);
    co_return rest_written;
}

}  // namespace porthole::http
