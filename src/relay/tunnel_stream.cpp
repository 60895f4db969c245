#include "relay/tunnel_stream.hpp"

#include "core/printable.hpp"
#include "net/frame_io.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace porthole::relay {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {
constexpr auto frame_write_timeout = 10s;
constexpr auto stream_wait_timeout = 10s;
constexpr auto stream_ready_timeout = 75s;  // above the longest --connect-timeout a client takes
constexpr int max_stream_attempts = 8;
}  // namespace

asio::awaitable<stream_result> open_tunnel_stream(relay_context& ctx, const tunnel& t,
                                                  std::string visitor) {
    for (int attempt = 0; attempt < max_stream_attempts; ++attempt) {
        auto s = t.owner.lock();
        if (!s || s->closed)
            co_return tl::unexpected(fmt::format("the client of this tunnel is offline"));
        std::optional<net::stream> conn = s->pool.take_idle();
        if (!conn) {
            if (s->pool.waiting() >= ctx.cfg.max_pending_streams) {
                ctx.refused_connection(observe::refusal::pending_streams, visitor,
                                       t.kind == protocol::tunnel_kind::tcp
                                           ? fmt::format("tcp:{}", t.port)
                                           : t.name);
                co_return tl::unexpected(std::string(
                    "too many visitors are waiting for this client (max_pending_streams)"));
            }
            s->send(protocol::pool_want{1});
            if (s->closed) co_return tl::unexpected(std::string("the client went offline"));
            conn = co_await s->pool.wait(stream_wait_timeout);
            if (!conn)
                co_return tl::unexpected(std::string(
                    s->closed ? "the client of this tunnel went offline"
                              : "the client did not open a data connection in time"));
        }
        net::stream& stream = *conn;
        const protocol::message start = protocol::stream_start{t.id, visitor};
        auto ec = co_await net::write_frame(stream, start, frame_write_timeout);
        if (ec) continue;
        auto reply = co_await net::read_frame(stream, stream_ready_timeout);
        if (!reply) {
            if (reply.error() == "timed out")
                co_return tl::unexpected(std::string("the client did not answer in time"));
            continue;  // died in the pool: nothing of the visitor's was sent, try another
        }
        if (std::holds_alternative<protocol::stream_ready>(*reply)) co_return std::move(stream);
        if (auto* failed = std::get_if<protocol::stream_failed>(&*reply)) {
            // The detail may name the client's local address: it stays out of the visitor's
            // page (the client logs and shows it).
            spdlog::info("tunnel {}: the client could not reach its local service: {}", t.url,
                         core::printable(failed->message));
            co_return tl::unexpected(std::string("its local service is not reachable"));
        }
        co_return tl::unexpected(std::string("the client answered with an unexpected frame"));
    }
    co_return tl::unexpected(std::string("no working data connection from the client"));
}

}  // namespace porthole::relay
