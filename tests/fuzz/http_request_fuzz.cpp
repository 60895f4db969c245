// Any bytes as what a visitor sends: the framer and the request checks must not crash, consume
// only what they were given, and the forwarded head must be produced for every accepted request.
#include "http/message_head.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace porthole::http;
    framer<true> request(4096);
    std::string_view in(reinterpret_cast<const char*>(data), size);
    boost::beast::error_code ec;
    // Feed in two pieces to exercise the need-more path.
    const std::size_t split = size / 2;
    std::string buffer(in.substr(0, split));
    std::size_t offered = split;
    for (int round = 0; round < 64 && !request.is_done(); ++round) {
        const std::size_t used = request.put(boost::asio::buffer(buffer), ec);
        if (used > buffer.size()) std::abort();
        buffer.erase(0, used);
        if (request.is_header_done()) {
            if (!check_request(request))
                (void)forward_request_head(request.head(), {"192.0.2.1", "http", "rewrite", "127.0.0.1:3000"});
            request.eager(true);
        }
        if (ec && ec != boost::beast::http::error::need_more) {
            (void)rejection_for(ec);
            break;
        }
        if (used == 0) {
            if (offered == size) break;
            buffer.append(in.substr(offered));
            offered = size;
        }
    }
    return 0;
}
