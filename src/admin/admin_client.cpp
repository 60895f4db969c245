#include "admin/admin_client.hpp"

#include "config/server_config.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <cstdlib>

#include <sys/socket.h>
#include <sys/time.h>

namespace porthole::admin {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using error_code = boost::system::error_code;

template <class Socket>
void set_timeouts(Socket& socket, std::chrono::seconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

template <class Socket>
tl::expected<admin_answer, std::string> exchange(Socket& socket, const admin_target& target,
                                                 std::string_view method, std::string_view path,
                                                 std::string_view body,
                                                 std::chrono::seconds timeout) {
    set_timeouts(socket, timeout);
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), path, 11};
    req.set(bhttp::field::host,
            target.socket_path.empty() ? fmt::format("{}:{}", target.host, target.port)
                                       : std::string("localhost"));
    req.set(bhttp::field::user_agent, "porthole/" PORTHOLE_VERSION);
    req.set(bhttp::field::connection, "close");
    if (!target.token.empty() && target.socket_path.empty())
        req.set(bhttp::field::authorization, "Bearer " + target.token);
    if (method == "POST" || method == "DELETE")
        req.set(bhttp::field::content_type, "application/json");
    req.body() = std::string(body);
    req.prepare_payload();
    error_code ec;
    bhttp::write(socket, req, ec);
    if (ec) return tl::unexpected(fmt::format("sending the request failed: {}", ec.message()));
    boost::beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    bhttp::read(socket, buffer, parser, ec);
    if (ec) return tl::unexpected(fmt::format("no answer: {}", ec.message()));
    return admin_answer{static_cast<int>(parser.get().result_int()), parser.get().body()};
}

}  // namespace

tl::expected<admin_answer, std::string> call(const admin_target& target, std::string_view method,
                                             std::string_view path, std::string_view body,
                                             std::chrono::seconds timeout) {
    asio::io_context io;
    error_code ec;
    if (!target.socket_path.empty()) {
        asio::local::stream_protocol::socket socket(io);
        socket.connect(asio::local::stream_protocol::endpoint(target.socket_path), ec);
        if (ec)
            return tl::unexpected(fmt::format("no relay answers on {}: {}", target.socket_path,
                                              ec.message()));
        return exchange(socket, target, method, path, body, timeout);
    }
    asio::ip::tcp::resolver resolver(io);
    const auto found = resolver.resolve(target.host, std::to_string(target.port), ec);
    asio::ip::tcp::socket socket(io);
    if (!ec) asio::connect(socket, found, ec);
    if (ec)
        return tl::unexpected(
            fmt::format("no relay answers on {}:{}: {}", target.host, target.port, ec.message()));
    return exchange(socket, target, method, path, body, timeout);
}

std::vector<std::string> default_socket_paths() {
    std::vector<std::string> paths;
    if (auto own = config::default_admin_socket(); !own.empty()) paths.push_back(own);
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
        if (auto user = std::string(xdg) + "/porthole/admin.sock";
            paths.empty() || paths[0] != user)
            paths.push_back(std::move(user));
    paths.emplace_back("/run/porthole/admin.sock");
    return paths;
}

}  // namespace porthole::admin
