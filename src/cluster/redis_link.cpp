#include "cluster/redis_link.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <charconv>
#include <optional>

namespace porthole::cluster {

namespace asio = boost::asio;

namespace {

bool parse_number(std::string_view s, unsigned long max, unsigned long& out) {
    if (s.empty()) return false;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out <= max;
}

constexpr std::string_view url_forms =
    "use redis://HOST:PORT/DB, redis://:PASSWORD@HOST:PORT/DB or unix:///PATH?db=N";

// A command waiting for its reply: hiredis's callback fills `result` and cancels `done`.
struct pending {
    explicit pending(const asio::any_io_executor& ex) : done(ex) {}
    asio::steady_timer done;
    std::optional<tl::expected<redis_reply, std::string>> result;
};

// A subscription: hiredis calls back with the confirmation, then with each message, and once
// with no reply when the connection ends. It lives as long as the link's state.
struct subscription {
    std::function<void(std::string_view)> on_message;
    std::shared_ptr<pending> confirming;
};

redis_reply converted(const redisReply& r) {
    redis_reply out;
    switch (r.type) {
    case REDIS_REPLY_STATUS:
        out.kind = redis_reply::type::status;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_STRING:
        out.kind = redis_reply::type::string;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_INTEGER:
        out.kind = redis_reply::type::integer;
        out.integer = r.integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.kind = redis_reply::type::array;
        for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(converted(*r.element[i]));
        break;
    default:
        out.kind = redis_reply::type::nil;
    }
    return out;
}

}  // namespace

std::string redis_address::describe() const {
    if (!unix_path.empty()) return fmt::format("unix:{}/{}", unix_path, db);
    const bool v6 = host.find(':') != std::string::npos;
    return fmt::format("{}{}{}:{}/{}", v6 ? "[" : "", host, v6 ? "]" : "", port, db);
}

tl::expected<redis_address, std::string> parse_redis_url(std::string_view url) {
    redis_address a;
    if (url.starts_with("unix://")) {
        std::string_view rest = url.substr(7);
        const auto q = rest.find('?');
        a.unix_path = std::string(rest.substr(0, q));
        if (!a.unix_path.starts_with('/'))
            return tl::unexpected(fmt::format("redis address: a unix socket path is absolute; {}",
                                              url_forms));
        if (q != std::string_view::npos) {
            const std::string_view query = rest.substr(q + 1);
            unsigned long db = 0;
            if (!query.starts_with("db=") || !parse_number(query.substr(3), 1u << 20, db))
                return tl::unexpected(fmt::format(
                    "redis address: after the path only ?db=N (a database number); {}", url_forms));
            a.db = static_cast<unsigned>(db);
        }
        return a;
    }
    if (!url.starts_with("redis://"))
        return tl::unexpected(fmt::format("redis address: {}", url_forms));
    std::string_view rest = url.substr(8);
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view user_info = rest.substr(0, at);
        const auto colon = user_info.find(':');
        if (colon == std::string_view::npos)
            return tl::unexpected(fmt::format(
                "redis address: give the password as redis://:PASSWORD@HOST (or "
                "redis_password_file); {}",
                url_forms));
        a.password = std::string(user_info.substr(colon + 1));
        rest = rest.substr(at + 1);
    }
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        unsigned long db = 0;
        if (!parse_number(rest.substr(slash + 1), 1u << 20, db))
            return tl::unexpected(
                fmt::format("redis address: the database after '/' is a number; {}", url_forms));
        a.db = static_cast<unsigned>(db);
    }
    std::string_view port_text;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            return tl::unexpected(fmt::format("redis address: an IPv6 host ends with ']'; {}",
                                              url_forms));
        a.host = std::string(authority.substr(1, close - 1));
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty() && !after.starts_with(':'))
            return tl::unexpected(fmt::format("redis address: {}", url_forms));
        if (!after.empty()) port_text = after.substr(1);
    } else {
        const auto colon = authority.find(':');
        a.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (a.host.empty())
        return tl::unexpected(fmt::format("redis address: no host; {}", url_forms));
    if (!port_text.empty()) {
        unsigned long port = 0;
        if (!parse_number(port_text, 65535, port) || port == 0)
            return tl::unexpected(fmt::format("redis address: the port is a number 1-65535; {}",
                                              url_forms));
        a.port = static_cast<std::uint16_t>(port);
    }
    return a;
}

// The hiredis context and the adapter's state: which waits hiredis wants, which are armed.
// Waits hold it weakly, so that a wait completing after the link is gone does nothing.
struct redis_link::state : std::enable_shared_from_this<state> {
    explicit state(asio::any_io_executor ex) : ex(std::move(ex)) {}
    asio::any_io_executor ex;
    redisAsyncContext* ac = nullptr;
    std::optional<asio::posix::stream_descriptor> socket;
    bool want_read = false, want_write = false;
    bool read_armed = false, write_armed = false;
    bool connected = false;
    std::string lost;  // why the connection ended
    std::shared_ptr<pending> connecting;
    std::unique_ptr<subscription> subscribed;

    void arm_read() {
        if (!want_read || read_armed || !socket || !ac) return;
        read_armed = true;
        socket->async_wait(asio::posix::stream_descriptor::wait_read,
                           [w = weak_from_this()](const boost::system::error_code& ec) {
                               const auto s = w.lock();
                               if (!s) return;
                               s->read_armed = false;
                               if (ec || !s->ac) return;
                               redisAsyncHandleRead(s->ac);  // may end the context
                               s->arm_read();
                           });
    }
    void arm_write() {
        if (!want_write || write_armed || !socket || !ac) return;
        write_armed = true;
        socket->async_wait(asio::posix::stream_descriptor::wait_write,
                           [w = weak_from_this()](const boost::system::error_code& ec) {
                               const auto s = w.lock();
                               if (!s) return;
                               s->write_armed = false;
                               if (ec || !s->ac) return;
                               redisAsyncHandleWrite(s->ac);
                               s->arm_write();
                           });
    }

    // hiredis's event hooks; `p` is the state.
    static void add_read(void* p) {
        auto* s = static_cast<state*>(p);
        s->want_read = true;
        s->arm_read();
    }
    static void del_read(void* p) { static_cast<state*>(p)->want_read = false; }
    static void add_write(void* p) {
        auto* s = static_cast<state*>(p);
        s->want_write = true;
        s->arm_write();
    }
    static void del_write(void* p) { static_cast<state*>(p)->want_write = false; }
    // The context is being freed (it closes the descriptor itself).
    static void cleanup(void* p) {
        auto* s = static_cast<state*>(p);
        s->want_read = s->want_write = false;
        if (s->socket) {
            boost::system::error_code ignored;
            s->socket->cancel(ignored);
            s->socket->release();
            s->socket.reset();
        }
        s->ac = nullptr;
        s->connected = false;
    }

    static void on_connect(const redisAsyncContext* ac, int status) {
        auto* s = static_cast<state*>(ac->data);
        s->connected = status == REDIS_OK;
        if (!s->connected) s->lost = ac->errstr;
        if (s->connecting) s->connecting->done.cancel();
    }
    static void on_disconnect(const redisAsyncContext* ac, int status) {
        auto* s = static_cast<state*>(ac->data);
        s->connected = false;
        s->lost = status == REDIS_OK ? "closed" : ac->errstr;
    }
    static void on_reply(redisAsyncContext* ac, void* r, void* privdata) {
        const std::unique_ptr<std::shared_ptr<pending>> holder(
            static_cast<std::shared_ptr<pending>*>(privdata));
        pending& p = **holder;
        const auto* reply = static_cast<const redisReply*>(r);
        if (!reply)
            p.result = tl::unexpected(std::string(ac && ac->err ? ac->errstr
                                                                : "the connection to Redis ended"));
        else if (reply->type == REDIS_REPLY_ERROR)
            p.result = tl::unexpected(std::string(reply->str, reply->len));
        else
            p.result = converted(*reply);
        p.done.cancel();
    }
    static void on_published(redisAsyncContext* ac, void* r, void* privdata) {
        auto& sub = *static_cast<subscription*>(privdata);
        const auto* reply = static_cast<const redisReply*>(r);
        const auto confirm = [&](tl::expected<redis_reply, std::string> result) {
            if (!sub.confirming) return;
            sub.confirming->result = std::move(result);
            sub.confirming->done.cancel();
            sub.confirming.reset();
        };
        if (!reply) {
            confirm(tl::unexpected(std::string(ac && ac->err ? ac->errstr
                                                             : "the connection to Redis ended")));
            return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            confirm(tl::unexpected(std::string(reply->str, reply->len)));
            return;
        }
        // ["subscribe", channel, count] or ["message", channel, payload].
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
            reply->element[0]->type != REDIS_REPLY_STRING)
            return;
        const std::string_view what(reply->element[0]->str, reply->element[0]->len);
        if (what == "subscribe") {
            confirm(converted(*reply));
        } else if (what == "message" && reply->element[2]->type == REDIS_REPLY_STRING &&
                   sub.on_message) {
            sub.on_message(std::string_view(reply->element[2]->str, reply->element[2]->len));
        }
    }
};

redis_link::redis_link(asio::any_io_executor ex, redis_address address,
                       std::chrono::milliseconds timeout)
    : ex_(std::move(ex)), address_(std::move(address)), timeout_(timeout),
      state_(std::make_shared<state>(ex_)) {}

redis_link::~redis_link() { close(); }

void redis_link::close() {
    if (state_->ac) redisAsyncFree(state_->ac);  // fails what is pending; calls cleanup
    state_->ac = nullptr;
    state_->connected = false;
    state_->subscribed.reset();
}

bool redis_link::connected() const { return state_->connected; }

asio::awaitable<tl::expected<void, std::string>> redis_link::connect() {
    close();
    const auto s = state_;
    redisAsyncContext* ac = address_.unix_path.empty()
                                ? redisAsyncConnect(address_.host.c_str(), address_.port)
                                : redisAsyncConnectUnix(address_.unix_path.c_str());
    if (!ac) co_return tl::unexpected(std::string("out of memory"));
    if (ac->err) {
        std::string why = fmt::format("Redis at {}: {}", address_.describe(), ac->errstr);
        redisAsyncFree(ac);
        co_return tl::unexpected(std::move(why));
    }
    s->ac = ac;
    s->lost.clear();
    ac->data = s.get();
    s->socket.emplace(ex_, ac->c.fd);
    // The hooks first: setting the connect callback asks for the first write wait.
    ac->ev.data = s.get();
    ac->ev.addRead = &state::add_read;
    ac->ev.delRead = &state::del_read;
    ac->ev.addWrite = &state::add_write;
    ac->ev.delWrite = &state::del_write;
    ac->ev.cleanup = &state::cleanup;
    auto waiting = std::make_shared<pending>(ex_);
    s->connecting = waiting;
    redisAsyncSetDisconnectCallback(ac, &state::on_disconnect);
    redisAsyncSetConnectCallback(ac, &state::on_connect);
    waiting->done.expires_after(timeout_);
    co_await waiting->done.async_wait(asio::as_tuple(asio::use_awaitable));
    s->connecting.reset();
    if (!s->connected) {
        const std::string why = s->lost.empty() ? "no connection within the timeout" : s->lost;
        close();
        co_return tl::unexpected(fmt::format("Redis at {}: {}", address_.describe(), why));
    }
    if (!address_.password.empty()) {
        std::vector<std::string> auth{"AUTH", address_.password};
        const auto done = co_await command(std::move(auth));
        if (!done) {
            close();
            // The reply names the problem (WRONGPASS, no password set); it never holds the password.
            co_return tl::unexpected(
                fmt::format("Redis at {} refused the password: {}", address_.describe(), done.error()));
        }
    }
    if (address_.db != 0) {
        std::vector<std::string> select{"SELECT", std::to_string(address_.db)};
        const auto done = co_await command(std::move(select));
        if (!done) {
            close();
            co_return tl::unexpected(
                fmt::format("Redis at {}: SELECT {}: {}", address_.describe(), address_.db, done.error()));
        }
    }
    co_return tl::expected<void, std::string>{};
}

asio::awaitable<tl::expected<redis_reply, std::string>> redis_link::command(
    std::vector<std::string> args) {
    if (!state_->connected || !state_->ac)
        co_return tl::unexpected(fmt::format("not connected to Redis at {}{}", address_.describe(),
                                             state_->lost.empty() ? "" : " (" + state_->lost + ")"));
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    auto p = std::make_shared<pending>(ex_);
    auto* holder = new std::shared_ptr<pending>(p);
    if (redisAsyncCommandArgv(state_->ac, &state::on_reply, holder, static_cast<int>(argv.size()),
                              argv.data(), lengths.data()) != REDIS_OK) {
        delete holder;
        co_return tl::unexpected(fmt::format("Redis at {}: the command could not be queued",
                                             address_.describe()));
    }
    p->done.expires_after(timeout_);
    co_await p->done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!p->result)
        co_return tl::unexpected(fmt::format("Redis at {} did not answer within {} ms",
                                             address_.describe(), timeout_.count()));
    co_return std::move(*p->result);
}

asio::awaitable<tl::expected<void, std::string>> redis_link::subscribe(
    std::string channel, std::function<void(std::string_view)> on_message) {
    if (!state_->connected || !state_->ac)
        co_return tl::unexpected(fmt::format("not connected to Redis at {}", address_.describe()));
    auto p = std::make_shared<pending>(ex_);
    state_->subscribed = std::make_unique<subscription>(subscription{std::move(on_message), p});
    const char* argv[] = {"SUBSCRIBE", channel.c_str()};
    const std::size_t lengths[] = {9, channel.size()};
    if (redisAsyncCommandArgv(state_->ac, &state::on_published, state_->subscribed.get(), 2, argv,
                              lengths) != REDIS_OK) {
        state_->subscribed.reset();
        co_return tl::unexpected(fmt::format("Redis at {}: SUBSCRIBE could not be queued",
                                             address_.describe()));
    }
    p->done.expires_after(timeout_);
    co_await p->done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!p->result) {
        close();
        co_return tl::unexpected(fmt::format("Redis at {} did not confirm SUBSCRIBE within {} ms",
                                             address_.describe(), timeout_.count()));
    }
    if (!*p->result) {
        close();
        co_return tl::unexpected(
            fmt::format("Redis at {}: SUBSCRIBE {}: {}", address_.describe(), channel,
                        p->result->error()));
    }
    co_return tl::expected<void, std::string>{};
}

}  // namespace porthole::cluster
