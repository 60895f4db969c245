#include "observe/local_http.hpp"

#include "core/use_tuple.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <deque>
#include <filesystem>
#include <set>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace porthole::observe::local_http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
using error_code = boost::system::error_code;

// From being ready for a request (idle keep-alive time included) to having its whole head.
constexpr auto head_timeout = std::chrono::seconds(10);
constexpr auto body_timeout = std::chrono::seconds(30);
constexpr auto write_timeout = std::chrono::seconds(30);

// TCP and Unix-socket connections are served as one stream type: the HTTP code is compiled once.
using any_socket = asio::generic::stream_protocol::socket;
using http_stream =
    beast::basic_stream<asio::generic::stream_protocol, asio::any_io_executor,
                        beast::unlimited_rate_policy>;
using beast_request = bhttp::request<bhttp::string_body>;
using beast_response = bhttp::response<bhttp::string_body>;

bool changes_state(std::string_view method) {
    return method == "POST" || method == "DELETE" || method == "PUT" || method == "PATCH";
}

request head_of(const beast_request& req) {
    request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.path = r.target.substr(0, r.target.find('?'));
    for (const auto& f : req)
        r.fields.emplace_back(std::string(f.name_string()), std::string(f.value()));
    return r;
}

beast_response to_response(const reply& r, unsigned version, bool keep_alive) {
    beast_response res{static_cast<bhttp::status>(r.status), version};
    res.set(bhttp::field::server, "porthole");
    res.set(bhttp::field::cache_control, "no-store");
    if (!r.body.empty() || r.status != 204) {
        res.set(bhttp::field::content_type, r.content_type);
        res.body() = r.body;
    }
    for (const auto& [name, value] : r.fields) res.set(name, value);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

peer peer_of(const tcp::socket& socket) {
    peer p;
    error_code ec;
    const auto ep = socket.remote_endpoint(ec);
    if (!ec)
        p.address = ep.address().is_v6()
                        ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                        : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    return p;
}

peer peer_of(unix_socket::socket& socket) {
    peer p;
    p.unix_socket = true;
    const int fd = socket.native_handle();
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        p.uid = cred.uid;
        p.gid = cred.gid;
        p.pid = cred.pid;
    }
    std::array<gid_t, 64> groups{};
    len = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0)
        for (std::size_t i = 0; i < len / sizeof(gid_t); ++i) p.groups.push_back(groups[i]);
    return p;
}

}  // namespace

std::string peer::describe() const {
    if (!unix_socket) return address;
    return fmt::format("uid {} (pid {})", uid, pid);
}

std::string_view request::field(std::string_view name) const {
    for (const auto& [n, v] : fields)
        if (beast::iequals(n, name)) return v;
    return {};
}

std::string request::query(std::string_view name) const {
    const auto q = target.find('?');
    if (q == std::string::npos) return {};
    std::string_view rest = std::string_view(target).substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
            std::string value;
            const auto raw = pair.substr(eq + 1);
            for (std::size_t i = 0; i < raw.size(); ++i) {
                if (raw[i] == '+') {
                    value.push_back(' ');
                } else if (unsigned byte = 0;
                           raw[i] == '%' && i + 2 < raw.size() &&
                           std::from_chars(raw.data() + i + 1, raw.data() + i + 3, byte, 16).ptr ==
                               raw.data() + i + 3) {
                    value.push_back(static_cast<char>(byte));
                    i += 2;
                } else {
                    value.push_back(raw[i]);
                }
            }
            return value;
        }
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return {};
}

reply json_reply(int status, std::string body) {
    reply r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

reply error_reply(int status, std::string_view message) {
    return json_reply(status, nlohmann::json{{"error", message}}.dump(
                                  -1, ' ', false, nlohmann::json::error_handler_t::replace) +
                                  "\n");
}

bool trusted_host(std::string_view host, const std::vector<std::string>& hosts) {
    if (host.empty()) return false;
    if (host.front() == '[') {
        const auto close = host.find(']');
        if (close == std::string_view::npos) return false;
        error_code ec;
        asio::ip::make_address_v6(std::string(host.substr(1, close - 1)), ec);
        return !ec;
    }
    host = host.substr(0, host.find(':'));
    if (host == "localhost") return true;
    for (const auto& h : hosts)
        if (beast::iequals(h, host)) return true;
    error_code ec;
    asio::ip::make_address_v4(std::string(host), ec);
    return !ec;
}

std::string origin_host(std::string_view origin) {
    const auto scheme = origin.find("://");
    return scheme == std::string_view::npos ? std::string()
                                            : std::string(origin.substr(scheme + 3));
}

// ---------------------------------------------------------------------------------------------

struct event_stream::state {
    explicit state(std::size_t limit) : backlog_limit(limit) {}
    std::size_t backlog_limit;
    std::optional<asio::steady_timer> wake;  // while a connection writes the stream
    std::deque<std::string> pending;
    std::size_t pending_bytes = 0;
    bool overflowed = false;
    bool closed = false;
    std::function<void()> on_end;
};

struct deferred_reply::state {
    std::optional<reply> answer;
    std::optional<asio::steady_timer> wake;  // while a connection waits for the answer
};

deferred_reply::deferred_reply() : state_(std::make_unique<state>()) {}
deferred_reply::~deferred_reply() = default;

void deferred_reply::complete(reply r) {
    if (state_->answer) return;
    state_->answer = std::move(r);
    if (state_->wake) state_->wake->cancel();
}

event_stream::event_stream(std::size_t backlog_limit)
    : state_(std::make_unique<state>(backlog_limit)) {}

event_stream::~event_stream() = default;

void event_stream::push(std::string event) {
    auto& s = *state_;
    if (s.overflowed || s.closed) return;
    s.pending_bytes += event.size();
    s.pending.push_back(std::move(event));
    if (s.pending_bytes > s.backlog_limit) s.overflowed = true;
    if (s.wake) s.wake->cancel();
}

void event_stream::on_end(std::function<void()> f) { state_->on_end = std::move(f); }

void event_stream::close() {
    state_->closed = true;
    if (state_->wake) state_->wake->cancel();
}

struct server::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& io, options o, handler h)
        : io(io), tcp_acceptor(io), unix_acceptor(io), opts(std::move(o)), handle(std::move(h)) {
        const std::string body = local_http::error_reply(
            503, fmt::format("{} has too many open connections", opts.name)).body;
        busy = fmt::format("HTTP/1.1 503 Service Unavailable\r\nServer: porthole\r\n"
                           "Content-Type: application/json\r\nCache-Control: no-store\r\n"
                           "Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
                           body.size(), body);
    }

    asio::io_context& io;
    tcp::acceptor tcp_acceptor;
    unix_socket::acceptor unix_acceptor;
    std::string socket_path;  // set while listening on a unix socket
    bool keep_file = false;  // another process listens on socket_path now
    options opts;
    handler handle;
    std::string busy;  // the 503 of a connection past the limit
    bool stopped = false;
    std::size_t open_connections = 0;
    std::size_t deferred_unsent = 0;  // answers given later and not yet written
    std::set<event_stream*> streams;

    // One open connection, counted from its accept until its coroutine frame is gone; it keeps
    // the server alive that long.
    class connection_slot {
    public:
        explicit connection_slot(std::shared_ptr<impl> owner) : owner_(std::move(owner)) {
            ++owner_->open_connections;
        }
        connection_slot(connection_slot&& other) noexcept = default;
        connection_slot& operator=(connection_slot&&) = delete;
        ~connection_slot() {
            if (owner_) --owner_->open_connections;
        }

    private:
        std::shared_ptr<impl> owner_;
    };

    // Past the limit a connection costs no coroutine and no buffer: a 503 written without
    // waiting (a fresh socket's send buffer takes it whole), then closed.
    template <class Socket>
    void turn_away(Socket& socket) {
        error_code ec;
        socket.non_blocking(true, ec);
        std::array<char, 4096> unread;
        // bytes left unread turn the close into a reset
        socket.read_some(asio::buffer(unread), ec);
        socket.write_some(asio::buffer(busy), ec);
        socket.shutdown(Socket::shutdown_both, ec);
        socket.close(ec);
    }

    template <class Protocol>
    asio::awaitable<void> accept(typename Protocol::acceptor& acceptor) {
        auto self = shared_from_this();
        while (!stopped) {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec) {
                if (ec == asio::error::operation_aborted || stopped) co_return;
                asio::steady_timer pause(io, std::chrono::milliseconds(100));
                co_await pause.async_wait(use_tuple);
                continue;
            }
            if (open_connections >= opts.connection_limit) {
                spdlog::debug("{}: {} connections open, turning a new one away", opts.name,
                              open_connections);
                turn_away(socket);
                continue;
            }
            peer from = peer_of(socket);
            if (opts.accept_peer && !opts.accept_peer(from)) {
                error_code ignored;
                socket.close(ignored);
                continue;
            }
            asio::co_spawn(io,
                           serve(http_stream(any_socket(std::move(socket))), std::move(from),
                                           connection_slot(self)),
                           [name = opts.name](std::exception_ptr e) {
                               if (e) spdlog::debug("{}: a connection failed unexpectedly", name);
                           });
        }
    }

    std::size_t body_limit_for(const request& head) const {
        return opts.body_limit_for ? opts.body_limit_for(head) : opts.body_limit;
    }

    reply too_large(const request& head) const {
        return error_reply(413, fmt::format("this request may carry at most {} bytes of body",
                                            body_limit_for(head)));
    }

    // The answer a request gets on its head alone, before a byte of its body is read.
    std::optional<reply> refusal(const request& head, std::optional<std::uint64_t> length) const {
        if (!trusted_host(head.field("host"), opts.hosts))
            return error_reply(
                421, opts.hosts.empty()
                         ? fmt::format("{} answers only to localhost or an IP address", opts.name)
                         : fmt::format("{} answers only to localhost, an IP address or its "
                                       "configured host names",
                                       opts.name));
        const bool changes = changes_state(head.method);
        if (changes && head.field("content-type").substr(0, 16) != "application/json")
            return error_reply(415, "send Content-Type: application/json");
        if (changes || opts.origin_on_every_request) {
            const auto origin = head.field("origin");
            if (!origin.empty() && origin_host(origin) != head.field("host"))
                return error_reply(403, fmt::format("cross-origin requests may not reach {}",
                                                    opts.name));
        }
        if (length && *length > body_limit_for(head)) return too_large(head);
        if (opts.admit) return opts.admit(head);
        return std::nullopt;
    }

    asio::awaitable<void> serve(http_stream stream, peer from, connection_slot) {
        beast::flat_buffer buffer;
        while (!stopped) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.body_limit(boost::none);  // refusal() judges the length by endpoint
            stream.expires_after(head_timeout);
            auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, use_tuple);
            if (ec) co_return;
            request head = head_of(parser.get());
            head.from = from;
            const auto length = parser.content_length();
            if (auto refused = refusal(head, length ? std::optional(*length) : std::nullopt)) {
                // A body left unread leaves the connection fit for nothing more.
                auto res = to_response(*refused, parser.get().version(),
                                       parser.get().keep_alive() && parser.is_done());
                const bool more = co_await send(stream, res);
                if (!more) co_return;
                continue;
            }
            if (!parser.is_done()) {
                if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
                    bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_,
                                                             parser.get().version()};
                    stream.expires_after(write_timeout);
                    auto [cec, c] = co_await bhttp::async_write(stream, go_on, use_tuple);
                    if (cec) co_return;
                }
                parser.body_limit(body_limit_for(head));
                stream.expires_after(body_timeout);
                auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
                if (bec == bhttp::error::body_limit) {
                    auto res = to_response(too_large(head), parser.get().version(), false);
                    co_await send(stream, res);
                }
                if (bec) co_return;
            }
            const beast_request req = parser.release();
            head.body = req.body();
            reply answer = handle(head);
            struct unsent {  // counts a deferred answer until it is written or given up
                std::size_t* n = nullptr;
                ~unsent() {
                    if (n) --*n;
                }
            } counted;
            if (answer.later) {
                ++deferred_unsent;
                counted.n = &deferred_unsent;
                const std::shared_ptr<deferred_reply> later = answer.later;
                const bool answered = co_await wait_for(*later);
                if (!answered) co_return;
                answer = std::move(*later->get().answer);
            }
            if (answer.events) {
                co_await stream_events(stream, std::move(answer));
                co_return;
            }
            auto res = to_response(answer, req.version(), req.keep_alive());
            const bool more = co_await send(stream, res);
            if (!more) co_return;
        }
    }

    // Until `later` is completed (true) or the server stops (false).
    asio::awaitable<bool> wait_for(deferred_reply& later) {
        auto& st = later.get();
        st.wake.emplace(io.get_executor());
        while (!st.answer && !stopped) {
            st.wake->expires_after(std::chrono::seconds(1));  // a stop is seen within a second
            co_await st.wake->async_wait(use_tuple);
        }
        st.wake.reset();
        co_return st.answer.has_value();
    }

    // False when the response could not be written, or the connection is to close after it.
    template <class Stream>
    static asio::awaitable<bool> send(Stream& stream, beast_response& res) {
        stream.expires_after(write_timeout);
        auto [ec, n] = co_await bhttp::async_write(stream, res, use_tuple);
        if (!ec && !res.keep_alive())
            stream.socket().shutdown(Stream::socket_type::shutdown_send, ec);
        co_return !ec && res.keep_alive();
    }

    template <class Stream>
    asio::awaitable<void> stream_events(Stream& stream, reply answer) {
        const std::shared_ptr<event_stream> events = answer.events;
        auto& sub = events->get();
        sub.wake.emplace(io.get_executor());
        streams.insert(events.get());
        struct leave {
            impl& owner;
            event_stream* s;
            ~leave() {
                owner.streams.erase(s);
                auto& st = s->get();
                st.wake.reset();
                if (auto end = std::move(st.on_end)) end();
            }
        };
        const leave guard{*this, events.get()};
        std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: text/event-stream\r\n"
                                       "Cache-Control: no-store\r\nServer: porthole\r\n",
                                       answer.status,
                                       std::string(bhttp::obsolete_reason(
                                           static_cast<bhttp::status>(answer.status))));
        for (const auto& [name, value] : answer.fields) head += name + ": " + value + "\r\n";
        head += "Connection: close\r\n\r\n" + answer.body;
        stream.expires_after(write_timeout);
        auto [ec, n] = co_await asio::async_write(stream, asio::buffer(head), use_tuple);
        if (ec) co_return;
        // A comment line every 15 s finds pages that went away.
        while (!stopped && !sub.overflowed) {
            if (sub.pending.empty()) {
                if (sub.closed) break;
                sub.wake->expires_after(std::chrono::seconds(15));
                co_await sub.wake->async_wait(use_tuple);
                if (sub.pending.empty() && !sub.closed) sub.pending.push_back(": keep-alive\n\n");
            }
            std::string batch;
            while (!sub.pending.empty()) {
                batch += sub.pending.front();
                sub.pending.pop_front();
            }
            sub.pending_bytes = 0;
            if (batch.empty()) continue;
            stream.expires_after(write_timeout);
            auto [wec, written] =
                co_await asio::async_write(stream, asio::buffer(batch), use_tuple);
            if (wec) co_return;
        }
    }
};

server::server(std::shared_ptr<impl> i) : impl_(std::move(i)) {}

server::~server() {
    impl_->stopped = true;
    error_code ec;
    impl_->tcp_acceptor.close(ec);
    impl_->unix_acceptor.close(ec);
    if (!impl_->socket_path.empty() && !impl_->keep_file) ::unlink(impl_->socket_path.c_str());
    for (auto* s : impl_->streams) s->close();
}

tl::expected<std::unique_ptr<server>, std::string> server::listen_tcp(
    asio::io_context& io, const std::string& host, std::uint16_t port, int tries, options opts,
    handler h) {
    auto i = std::make_shared<impl>(io, std::move(opts), std::move(h));
    error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return tl::unexpected(fmt::format("'{}' is not an IP address", host));
    for (int n = 0; n < std::max(tries, 1); ++n) {
        const tcp::endpoint ep(address, static_cast<std::uint16_t>(port + n));
        i->tcp_acceptor = tcp::acceptor(io);
        i->tcp_acceptor.open(ep.protocol(), ec);
        if (!ec) i->tcp_acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) i->tcp_acceptor.bind(ep, ec);
        if (!ec) i->tcp_acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (!ec) break;
    }
    if (ec) return tl::unexpected(ec.message());
    asio::co_spawn(io, i->accept<tcp>(i->tcp_acceptor), asio::detached);
    return std::unique_ptr<server>(new server(std::move(i)));
}

bool socket_answers(const std::string& path) {
    asio::io_context io;
    unix_socket::socket probe(io);
    error_code ec;
    probe.connect(unix_socket::endpoint(path), ec);
    return !ec;
}

tl::expected<std::unique_ptr<server>, std::string> server::listen_unix(
    asio::io_context& io, const std::string& path, unsigned mode, options opts, handler h) {
    const auto dir = std::filesystem::path(path).parent_path();
    std::error_code fec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, fec))
        return tl::unexpected(fmt::format("{} does not exist", dir.string()));
    if (struct stat st{}; ::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return tl::unexpected(fmt::format("{} exists and is not a socket", path));
        if (socket_answers(path))
            return tl::unexpected(fmt::format("another process answers on {}", path));
        ::unlink(path.c_str());  // stale: its process is gone
    }
    auto i = std::make_shared<impl>(io, std::move(opts), std::move(h));
    error_code ec;
    i->unix_acceptor.open(unix_socket(), ec);
    if (!ec) i->unix_acceptor.bind(unix_socket::endpoint(path), ec);
    if (ec) return tl::unexpected(fmt::format("{}: {}", path, ec.message()));
    i->socket_path = path;
    if (::chmod(path.c_str(), mode) != 0) {
        ::unlink(path.c_str());
        return tl::unexpected(fmt::format("{}: chmod: {}", path, std::strerror(errno)));
    }
    i->unix_acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        ::unlink(path.c_str());
        return tl::unexpected(fmt::format("{}: {}", path, ec.message()));
    }
    asio::co_spawn(io, i->accept<unix_socket>(i->unix_acceptor), asio::detached);
    return std::unique_ptr<server>(new server(std::move(i)));
}

tl::expected<std::unique_ptr<server>, std::string> server::adopt_tcp(asio::io_context& io, int fd,
                                                                    options opts, handler h) {
    auto i = std::make_shared<impl>(io, std::move(opts), std::move(h));
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    error_code ec;
    i->tcp_acceptor.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) {
        ::close(fd);
        return tl::unexpected(ec.message());
    }
    asio::co_spawn(io, i->accept<tcp>(i->tcp_acceptor), asio::detached);
    return std::unique_ptr<server>(new server(std::move(i)));
}

tl::expected<std::unique_ptr<server>, std::string> server::adopt_unix(asio::io_context& io, int fd,
                                                                     const std::string& path,
                                                                     options opts, handler h) {
    auto i = std::make_shared<impl>(io, std::move(opts), std::move(h));
    error_code ec;
    i->unix_acceptor.assign(unix_socket(), fd, ec);
    if (ec) {
        ::close(fd);
        return tl::unexpected(fmt::format("{}: {}", path, ec.message()));
    }
    i->socket_path = path;
    asio::co_spawn(io, i->accept<unix_socket>(i->unix_acceptor), asio::detached);
    return std::unique_ptr<server>(new server(std::move(i)));
}

bool server::answering() const { return impl_->deferred_unsent > 0; }

int server::listener_fd() const {
    auto& i = *impl_;
    return i.socket_path.empty() ? i.tcp_acceptor.native_handle() : i.unix_acceptor.native_handle();
}

void server::stop_accepting_keep_file() {
    impl_->keep_file = true;
    error_code ec;
    impl_->tcp_acceptor.close(ec);
    impl_->unix_acceptor.close(ec);
}

std::string server::where() const {
    if (!impl_->socket_path.empty()) return impl_->socket_path;
    error_code ec;
    const auto ep = impl_->tcp_acceptor.local_endpoint(ec);
    return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                                : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

std::uint16_t server::port() const {
    error_code ec;
    return impl_->socket_path.empty() ? impl_->tcp_acceptor.local_endpoint(ec).port() : 0;
}

}  // namespace porthole::observe::local_http
