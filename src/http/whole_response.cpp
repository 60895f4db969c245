#include "http/whole_response.hpp"

#include <fmt/format.h>

namespace porthole::http {

namespace {
constexpr std::size_t max_head = 64 * 1024;
}

tl::expected<std::optional<whole_response>, std::string> read_whole_response(std::string_view bytes,
                                                                             bool eof,
                                                                             std::size_t max_body) {
    framer<false> parser(max_head, true);
    body_capture body;
    body.limit = max_body;
    parser.capture_body(&body);
    boost::beast::error_code ec;
    std::string_view rest = bytes;
    while (!parser.is_done()) {
        const std::size_t used =
            parser.put(boost::asio::const_buffer(rest.data(), rest.size()), ec);
        if (ec == boost::beast::http::error::need_more) break;
        if (ec) return tl::unexpected(fmt::format("a malformed HTTP response ({})", ec.message()));
        if (body.truncated() || used == 0) break;
        rest.remove_prefix(used);
    }
    ec = {};
    if (body.truncated())
        return tl::unexpected(fmt::format("the answer is over {} bytes", max_body));
    if (!parser.is_done() && eof && parser.is_header_done() && parser.need_eof()) {
        parser.put_eof(ec);
        if (ec) return tl::unexpected(fmt::format("a malformed HTTP response ({})", ec.message()));
    }
    if (parser.is_done())
        return std::optional<whole_response>(whole_response{parser.head(), std::move(body.data)});
    if (eof) return tl::unexpected(std::string("the server closed before its answer was whole"));
    return std::optional<whole_response>();
}

}  // namespace porthole::http
