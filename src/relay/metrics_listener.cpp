#include "relay/metrics_listener.hpp"

#include "http/message_head.hpp"
#include "net/listener.hpp"
#include "observe/prom_text.hpp"
#include "relay/watched_socket.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>


namespace porthole::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

std::array<unsigned char, 32> digest(std::string_view text) {
    std::array<unsigned char, 32> d{};
    SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data());
    return d;
}

std::string answer(unsigned status, std::string_view reason, std::string_view type,
                   std::string_view body, bool head_only, bool close, std::string_view extra = {}) {
    return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                       "Cache-Control: no-store\r\n{}{}\r\n{}",
                       status, reason, type, body.size(), extra,
                       close ? "Connection: close\r\n" : "", head_only ? "" : body);
}

}  // namespace

metrics_listener::metrics_listener(relay_context& ctx, std::function<std::string()> scrape,
                                   std::string token)
    : ctx_(ctx), scrape_(std::move(scrape)), acceptor_(ctx.io) {
    if (!token.empty()) token_digest_ = digest(token);
}

tl::expected<void, std::string> metrics_listener::listen(const config::endpoint& at) {
    return ctx_.listen(acceptor_, at, "metrics");
}

void metrics_listener::start() {
    ctx_.spawn(accept_connections(acceptor_, "metrics", [this](tcp::socket s) {
        if (connections_ >= most_connections) return;  // closed: a scraper retries
        ctx_.spawn(serve(std::move(s)));
    }));
}

void metrics_listener::stop_accepting() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> metrics_listener::serve(tcp::socket socket) {
    ++connections_;
    struct count_down {
        unsigned& n;
        ~count_down() { --n; }
    } const counted{connections_};
    watched_socket conn(net::stream(std::move(socket)), ctx_);
    net::io_buffer in;
    while (!ctx_.draining) {
        http::framer<true> request(8 * 1024);
        boost::beast::error_code ec;
        while (!request.is_header_done()) {
            const std::size_t used = request.put(in.data(), ec);
            in.consume(used);
            if (request.is_header_done()) break;
            if (ec && ec != boost::beast::http::error::need_more) co_return;
            const bool got = co_await read_more(conn, in, 10s);
            if (!got) co_return;
        }
        const http::message_head& head = request.head();
        const bool head_only = head.method == "HEAD";
        const bool close = !request.keep_alive() || !request.is_done();
        std::string response;
        const std::string* auth = head.find("authorization");
        const std::string_view given =
            auth && boost::beast::iequals(std::string_view(*auth).substr(0, 7), "Bearer ")
                ? std::string_view(*auth).substr(7)
                : std::string_view();
        const auto path = http::origin_form(head.target);
        if (token_digest_ &&
            CRYPTO_memcmp(digest(given).data(), token_digest_->data(), 32) != 0)
            response = answer(401, "Unauthorized", "text/plain", "a bearer token is needed\n",
                              head_only, close, "WWW-Authenticate: Bearer\r\n");
        else if (path.substr(0, path.find('?')) != "/metrics")
            response = answer(404, "Not Found", "text/plain", "only /metrics is served here\n",
                              head_only, close);
        else if (head.method != "GET" && !head_only)
            response = answer(405, "Method Not Allowed", "text/plain", "use GET\n", head_only,
                              close, "Allow: GET, HEAD\r\n");
        else
            response = answer(200, "OK", observe::prom_content_type, scrape_(), head_only, close);
        const bool sent = co_await write_all(conn, response, 10s);
        if (!sent || close) co_return;
    }
}

}  // namespace porthole::relay
