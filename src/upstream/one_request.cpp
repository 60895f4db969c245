#include "upstream/one_request.hpp"

#include "net/frame_io.hpp"

#include <fmt/format.h>

namespace porthole::upstream {

namespace asio = boost::asio;

asio::awaitable<tl::expected<http::whole_response, std::string>> one_request(
    const config::upstream_member& origin, std::span<const asio::ip::tcp::endpoint> addresses,
    backend_tls* tls, const one_request_spec& spec, std::chrono::milliseconds connect_timeout) {
    auto conn = co_await connect_backend(origin, addresses, connect_timeout, tls);
    if (!conn) co_return tl::unexpected(conn.error());
    const bool https = origin.kind == config::upstream_member::scheme::https;
    const bool default_port = origin.port == (https ? 443 : 80);
    const std::string host =
        origin.host.find(':') != std::string::npos ? fmt::format("[{}]", origin.host) : origin.host;
    std::string request =
        fmt::format("{} {} HTTP/1.1\r\nHost: {}{}\r\nUser-Agent: porthole/" PORTHOLE_VERSION
                    "\r\n{}Connection: close\r\n",
                    spec.method, spec.target, host,
                    default_port ? std::string() : fmt::format(":{}", origin.port), spec.headers);
    if (!spec.body.empty() || spec.method == "POST")
        request += fmt::format("Content-Length: {}\r\n", spec.body.size());
    request += "\r\n";
    request += spec.body;
    if (auto [ec, n] = co_await conn->write(asio::buffer(request)); ec)
        co_return tl::unexpected(ec.message());
    std::string bytes;
    char buf[16 * 1024];
    for (;;) {
        auto [ec, n] = co_await conn->read_some(asio::buffer(buf));
        bytes.append(buf, n);
        const bool eof = net::is_end_of_stream(ec);
        if (ec && !eof) co_return tl::unexpected(ec.message());
        auto got = http::read_whole_response(bytes, eof, spec.max_body);
        if (!got) co_return tl::unexpected(got.error());
        if (*got) co_return std::move(**got);
        // A head may take 64 KiB; chunk framing adds a little to the body.
        if (bytes.size() > 64 * 1024 + 2 * spec.max_body + 64 * 1024)
            co_return tl::unexpected(fmt::format("the answer is over {} bytes", spec.max_body));
    }
}

}  // namespace porthole::upstream
