#include "client/http_forwarder.hpp"

#include "core/printable.hpp"
#include "http/forward_exchange.hpp"
#include "http/path_route.hpp"
#include "net/connect.hpp"
#include "net/io_buffer.hpp"
#include "net/pump.hpp"
#include "net/socket_state.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <optional>

namespace porthole::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using namespace asio::experimental::awaitable_operators;
using error_code = boost::system::error_code;
using tcp = asio::ip::tcp;
using observe::exchange_record;
using observe::exchange_state;
using http::response_state;

constexpr std::size_t read_chunk = net::io_block_size;
constexpr std::size_t request_head_limit = 1024 * 1024;  // the relay enforces the real limit

std::string_view view(const net::io_buffer& b) {
    return {static_cast<const char*>(b.data().data()), b.size()};
}

asio::awaitable<bool> read_more(net::stream& s, net::io_buffer& in, std::uint64_t& counted) {
    auto [ec, n] = co_await s.read_some(in.prepare(read_chunk));
    in.commit(n);
    counted += n;
    co_return !ec;
}

// `counted`, when given, gets what was written: bytes to the visitor.
asio::awaitable<bool> write_all(net::stream& s, std::string_view a, std::string_view b = {},
                                std::uint64_t* counted = nullptr) {
    auto [ec, n] = co_await s.write(asio::buffer(a), asio::buffer(b));
    if (counted) *counted += n;
    co_return !ec;
}

struct local_side {
    std::size_t route;
    net::stream stream;
    net::io_buffer in;  // read from the local service, not yet forwarded
};

void finish(exchange_record& r, exchange_state state, observe::capture_store& store) {
    r.state = state;
    r.duration = std::chrono::steady_clock::now() - r.started;
    store.changed(r);
}

std::size_t route_of(const http_tunnel& t, std::string_view request_target) {
    const auto& routes = t.spec->routes;
    for (std::size_t i = 0; i < routes.size(); ++i)
        if (http::path_matches(routes[i].path, request_target)) return i;
    return routes.size();
}

const config::endpoint& target_of(const http_tunnel& t, std::size_t route) {
    return route < t.spec->routes.size() ? t.spec->routes[route].target : t.spec->target;
}

// The final response's head goes to the inspector's record before its body moves.
class recorder final : public http::response_observer {
public:
    recorder(exchange_record& rec, const http_tunnel& t) : rec_(rec), t_(t) {}
    void final_head(http::framer<false>& response, std::string_view head) override {
        const unsigned status = response.head().status;
        rec_.response = response.head();
        rec_.response_head.assign(head);
        rec_.state = status == 101 ? exchange_state::upgraded : exchange_state::streaming;
        if (status == 101) rec_.duration = std::chrono::steady_clock::now() - rec_.started;
        t_.store->changed(rec_);
        if (t_.capture) response.capture_body(&rec_.response_body);
    }

private:
    exchange_record& rec_;
    const http_tunnel& t_;
};

// The response from the local service, to `visitor`, recorded; a failure ends the record.
asio::awaitable<http::response_result> relay_response(local_side& local,
                                                      http::forward_endpoint& visitor,
                                                      bool head_request, exchange_record& rec,
                                                      const http_tunnel& t) {
    recorder record(rec, t);
    http::stream_endpoint from(local.stream);
    const http::response_options options{head_request, {}, nullptr, std::nullopt, &record};
    auto result = co_await http::forward_response(from, local.in, visitor, options);
    if (!result.problem.empty())
        spdlog::info("http: malformed response from {}: {}", target_of(t, local.route).to_string(),
                     result.problem);
    if (result.state == response_state::complete)
        finish(rec, exchange_state::complete, *t.store);
    else if (result.state != response_state::upgraded)
        finish(rec, exchange_state::failed, *t.store);
    co_return result;
}

// One direction of an upgraded connection, each WebSocket frame recorded as it passes.
asio::awaitable<void> watch_frames(net::stream& from, net::stream& to,
                                   http::ws_frame_reader& reader, bool outbound,
                                   exchange_record& rec, observe::capture_store& store,
                                   std::uint64_t& moved) {
    auto buffer = std::make_unique_for_overwrite<char[]>(read_chunk);
    for (;;) {
        auto [ec, n] = co_await from.read_some(asio::buffer(buffer.get(), read_chunk));
        if (n > 0) {
            if (!reader.failed())
                for (auto& f : reader.feed({buffer.get(), n}))
                    store.frame(rec, {outbound, std::chrono::system_clock::now(), std::move(f)});
            auto [wec, written] = co_await to.write(asio::buffer(buffer.get(), n));
            if (wec) {
                from.close();
                co_return;
            }
            moved += n;
        }
        if (ec) {
            if (net::is_end_of_stream(ec)) {
                to.shutdown_send();
            } else {
                to.close();
                from.close();
            }
            co_return;
        }
    }
}

// Bytes each side sent right after the upgrade, read along with the heads.
asio::awaitable<bool> flush_pending(net::stream& relay, net::io_buffer& in, local_side& local,
                                    net::traffic& counted) {
    if (in.size() != 0) {
        const bool sent = co_await write_all(local.stream, view(in));
        if (!sent) co_return false;
        in.consume(in.size());
    }
    if (local.in.size() != 0) {
        const bool sent = co_await write_all(relay, view(local.in), {}, &counted.out);
        if (!sent) co_return false;
        local.in.consume(local.in.size());
    }
    co_return true;
}

asio::awaitable<void> carry_upgraded(net::stream& relay, net::io_buffer& in, local_side& local,
                                     exchange_record& rec, const http_tunnel& t) {
    finish(rec, exchange_state::upgraded, *t.store);
    http::message_head request, response;
    request.fields = http::fields_of(rec.request_head);
    response.fields = http::fields_of(rec.response_head);
    const std::string* extensions = response.find("sec-websocket-extensions");
    if (t.capture && request.find("sec-websocket-key")) {
        rec.websocket = std::make_unique<exchange_record::websocket_log>();
        const std::string_view agreed = extensions ? std::string_view(*extensions) : "";
        http::ws_frame_reader inbound(observe::capture_store::frame_payload_limit,
                                      http::parse_ws_deflate(agreed, true));
        http::ws_frame_reader outbound(observe::capture_store::frame_payload_limit,
                                       http::parse_ws_deflate(agreed, false));
        for (auto& f : inbound.feed(view(in)))
            t.store->frame(rec, {false, std::chrono::system_clock::now(), std::move(f)});
        for (auto& f : outbound.feed(view(local.in)))
            t.store->frame(rec, {true, std::chrono::system_clock::now(), std::move(f)});
        if (!co_await flush_pending(relay, in, local, t.counters->bytes)) co_return;
        auto& bytes = t.counters->bytes;
        co_await (watch_frames(relay, local.stream, inbound, false, rec, *t.store, bytes.in) &&
                  watch_frames(local.stream, relay, outbound, true, rec, *t.store, bytes.out));
    } else {
        if (!co_await flush_pending(relay, in, local, t.counters->bytes)) co_return;
        co_await net::pump(relay, local.stream, t.counters->bytes);
    }
    rec.state = exchange_state::closed;
    t.store->changed(rec);
}

// One request and its response; false when the visitor stream is done.
asio::awaitable<bool> exchange(net::stream& relay, net::io_buffer& in,
                               std::optional<local_side>& local, const std::string& visitor,
                               const http_tunnel& t) {
    http::framer<true> request(request_head_limit, false);
    error_code ec;
    std::size_t head_size = 0;
    for (;;) {
        if (in.size() != 0) {
            head_size = request.put(in.data(), ec);
            if (request.is_header_done()) break;
            if (ec && ec != beast::http::error::need_more) co_return false;
        }
        if (!co_await read_more(relay, in, t.counters->bytes.in)) {
            if (local) local->stream.shutdown_send();
            co_return false;
        }
    }
    ++t.metrics->requests;
    auto rec = t.store->begin(t.name, visitor, request.head(),
                              std::string(view(in).substr(0, head_size)));
    request_tally tally(*t.counters, rec->started);
    in.consume(head_size);
    // The record holds the head: while the local connection opens, no read buffer is held.
    if (in.size() == 0) in.shrink_to_fit();
    const std::string& raw_head = rec->request_head;

    const std::size_t route = route_of(t, request.head().target);
    if (local && (local->route != route || local->in.size() != 0 ||
                  !net::idle_and_open(local->stream.socket())))
        local.reset();
    if (!local) {
        const config::endpoint& target = target_of(t, route);
        auto socket = co_await net::connect(target, t.connect_timeout);
        if (!socket) {
            spdlog::warn("{}: cannot reach {} for visitor {}: {}", t.name, target.to_string(),
                         core::printable(visitor), socket.error());
            t.counters->failed(local_failure_of(socket.error()));
            tally.respond(502);
            finish(*rec, exchange_state::failed, *t.store);
            // The visitor learns which tunnel failed, not where its service lives: the address
            // and the reason are in this client's log and inspector.
            const std::string response = http::relay_response(
                502, "Bad Gateway",
                fmt::format("porthole: tunnel '{}' is up, but its local service is not "
                            "reachable\n",
                            t.public_name));
            co_await write_all(relay, response, {}, &t.counters->bytes.out);
            relay.shutdown_send();
            co_return false;
        }
        local.emplace(local_side{route, net::stream(std::move(*socket)), {}});
    }

    if (t.capture) request.capture_body(&rec->request_body);
    std::size_t parsed_body = 0;
    if (!request.is_done() && in.size() != 0) {
        request.eager(true);
        parsed_body = request.put(in.data(), ec);
        if (ec && ec != beast::http::error::need_more) co_return false;
    }
    const bool sent = co_await write_all(local->stream, raw_head, view(in).substr(0, parsed_body));
    in.consume(parsed_body);
    if (!sent) {
        finish(*rec, exchange_state::failed, *t.store);
        co_return false;
    }
    const bool head_request = request.head().method == "HEAD";
    http::stream_endpoint from_relay(relay, &t.counters->bytes);
    http::stream_endpoint to_local(local->stream);
    http::request_body_result body;
    http::response_result response;
    if (request.is_done()) {
        body.done = true;
        response = co_await relay_response(*local, from_relay, head_request, *rec, t);
    } else {
        std::tie(body, response) =
            co_await (http::forward_request_body(request, from_relay, in, to_local) &&
                      relay_response(*local, from_relay, head_request, *rec, t));
    }
    // Closing without a response makes the relay answer 502.
    if (response.state == response_state::none) co_return false;
    tally.respond(response.status);
    if (response.state == response_state::upgraded && body.done) {
        tally.done();  // a request's time ends at the 101, not with the upgraded connection
        co_await carry_upgraded(relay, in, *local, *rec, t);
        co_return false;
    }
    if (response.state != response_state::complete || !body.done || !request.keep_alive() ||
        !response.keep_alive) {
        relay.shutdown_send();
        co_return false;
    }
    if (!response.reusable) local.reset();
    co_return true;
}

asio::awaitable<void> run_replay(std::shared_ptr<exchange_record> rec, std::string bytes,
                                 http_tunnel t) {
    const std::size_t route = route_of(t, rec->request.target);
    const config::endpoint& target = target_of(t, route);
    auto socket = co_await net::connect(target, t.connect_timeout);
    if (!socket) {
        spdlog::warn("replay: cannot reach {}: {}", target.to_string(), socket.error());
        finish(*rec, exchange_state::failed, *t.store);
        co_return;
    }
    local_side local{route, net::stream(std::move(*socket)), {}};
    if (!co_await write_all(local.stream, bytes)) {
        finish(*rec, exchange_state::failed, *t.store);
        co_return;
    }
    http::discard_endpoint nowhere;
    co_await relay_response(local, nowhere, rec->request.method == "HEAD", *rec, t);
}

bool is_framing_field(std::string_view name) {
    auto iequal = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) == y;
               });
    };
    return iequal(name, "content-length") || iequal(name, "transfer-encoding");
}

}  // namespace

asio::awaitable<void> forward_http(net::stream relay_side, std::string visitor, http_tunnel tunnel) {
    ++tunnel.metrics->connections;
    ++tunnel.metrics->open;
    net::io_buffer in;
    std::optional<local_side> local;
    // The guard keeps the gauge right however this coroutine ends.
    struct open_gauge {
        observe::tunnel_metrics* m;
        ~open_gauge() { --m->open; }
    } gauge{tunnel.metrics};
    for (;;) {
        if (in.size() == 0 && !relay_side.is_tls()) {
            // A kept-alive connection between requests holds no buffers: wait, then borrow.
            in.shrink_to_fit();
            if (local) local->in.shrink_to_fit();
            auto [ec] = co_await relay_side.socket().async_wait(tcp::socket::wait_read,
                                                                asio::as_tuple(asio::deferred));
            if (ec) break;
            auto [read_ec, n] = co_await relay_side.read_ready(in.prepare(read_chunk));
            in.commit(n);
            tunnel.counters->bytes.in += n;
            if (read_ec) break;  // the visitor left between requests
        }
        if (!co_await exchange(relay_side, in, local, visitor, tunnel)) break;
    }
}

tl::expected<void, std::string> replay_http(std::string_view raw, const exchange_record* original,
                                            http_tunnel tunnel, const asio::any_io_executor& ex) {
    // Editors save LF line ends; HTTP wants CRLF in the head.
    std::string text;
    const auto blank = raw.find("\r\n\r\n");
    const auto lf_blank = raw.find("\n\n");
    if (blank == std::string_view::npos && lf_blank != std::string_view::npos) {
        for (char c : raw.substr(0, lf_blank + 1)) {
            if (c == '\n') text.push_back('\r');
            if (c != '\r') text.push_back(c);
        }
        text += "\r\n";
        text.append(raw.substr(lf_blank + 2));
    } else {
        text.assign(raw);
    }
    http::framer<true> request(request_head_limit);
    error_code ec;
    const std::size_t head_size = request.put(asio::buffer(text), ec);
    if (!request.is_header_done())
        return tl::unexpected(
            ec && ec != beast::http::error::need_more
                ? "the request head does not parse: " + ec.message()
                : std::string("the request head is incomplete: end it with an empty line"));
    const std::string body = text.substr(head_size);
    http::message_head head = request.head();
    std::erase_if(head.fields, [](const http::field& f) { return is_framing_field(f.name); });
    if (!body.empty() || request.head().find("content-length") ||
        request.head().find("transfer-encoding"))
        head.fields.push_back({"Content-Length", std::to_string(body.size())});
    std::string wire = fmt::format("{} {} HTTP/{}.{}\r\n", head.method, head.target,
                                   head.version / 10, head.version % 10);
    for (const auto& f : head.fields) wire += fmt::format("{}: {}\r\n", f.name, f.value);
    wire += "\r\n";
    head.fields.clear();  // the record keeps the raw head; fields are read from it when shown
    auto rec = tunnel.store->begin(tunnel.name, original ? original->remote_addr : "",
                                   std::move(head), wire);
    if (original) rec->replay_of = original->id;
    rec->request_body.add(body);
    tunnel.store->changed(*rec);
    asio::co_spawn(ex, run_replay(rec, wire + body, std::move(tunnel)), [](std::exception_ptr e) {
        if (e) spdlog::error("replay failed unexpectedly");
    });
    return {};
}

}  // namespace porthole::client
