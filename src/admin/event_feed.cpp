#include "admin/event_feed.hpp"

#include "admin/api.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

namespace porthole::admin {
namespace {

namespace local_http = observe::local_http;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr auto rate_interval = 1s;
constexpr auto gather_time = 100ms;  // refusals and errors wait this long to go out together
// A page this far behind is cut off: five minutes of rates, or a few full rings of events.
constexpr std::size_t backlog_limit = 1024 * 1024;

std::uint64_t grown(std::uint64_t before, std::uint64_t now) {
    return now > before ? now - before : 0;
}

}  // namespace

std::string rate_json(const traffic_totals& before, const traffic_totals& now, std::int64_t ms) {
    nlohmann::json by_class = nlohmann::json::object();
    std::uint64_t requests = 0;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < now.by_class.size(); ++i) {
        const std::uint64_t n = grown(before.by_class[i], now.by_class[i]);
        by_class[std::string(observe::code_classes[i])] = n;
        requests += n;
        total += now.by_class[i];
    }
    return nlohmann::json{{"interval_ms", ms},
                          {"requests", requests},
                          {"by_class", std::move(by_class)},
                          {"bytes_in", grown(before.bytes_in, now.bytes_in)},
                          {"bytes_out", grown(before.bytes_out, now.bytes_out)},
                          {"sessions", now.sessions},
                          {"requests_total", total}}
        .dump();
}

struct event_feed::state : std::enable_shared_from_this<state> {
    state(boost::asio::io_context& io, relay_control& relay)
        : relay(relay), tick(io), gather(io) {}

    relay_control& relay;
    std::set<local_http::event_stream*> subscribers;
    boost::asio::steady_timer tick;
    boost::asio::steady_timer gather;
    bool gathering = false;
    traffic_totals last{};  // at the last rate event, or when the first page came
    steady::time_point last_at{};
    std::uint64_t sent_seq = 0;  // the newest recent event sent

    void broadcast(const std::string& event) {
        for (auto* s : subscribers) s->push(event);
    }

    void start() {
        last = relay.traffic();
        last_at = steady::now();
        sent_seq = relay.recent().last_seq();
        tick.expires_at(last_at + rate_interval);
        wait_for_tick();
    }

    void wait_for_tick() {
        tick.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) self->send_rate();
        });
    }

    void send_rate() {
        if (subscribers.empty()) return;  // the last page went: the timer stops here
        const traffic_totals now = relay.traffic();
        const auto at = steady::now();
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - last_at);
        broadcast(fmt::format("event: rate\ndata: {}\n\n", rate_json(last, now, ms.count())));
        last = now;
        last_at = at;
        // From the last deadline, not from now: a slow turn of the loop does not shift the rest.
        tick.expires_at(tick.expiry() + rate_interval);
        if (tick.expiry() < at) tick.expires_at(at + rate_interval);
        wait_for_tick();
    }

    // A recent event was added: the ones since the last sent go out after `gather_time`.
    void added() {
        if (subscribers.empty() || gathering) return;
        gathering = true;
        gather.expires_after(gather_time);
        gather.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) self->send_events();
        });
    }

    void send_events() {
        gathering = false;
        if (subscribers.empty()) return;
        relay.recent().for_each_since(sent_seq, [this](const observe::recent_event& e) {
            broadcast(fmt::format("event: {}\ndata: {}\n\n", observe::name_of(e.kind),
                                  event_json(e)));
        });
        sent_seq = relay.recent().last_seq();
    }
};

event_feed::event_feed(boost::asio::io_context& io, relay_control& relay)
    : state_(std::make_shared<state>(io, relay)) {
    relay.recent().on_add([weak = std::weak_ptr<state>(state_)] {
        if (auto self = weak.lock()) self->added();
    });
}

event_feed::~event_feed() {
    state_->relay.recent().on_add(nullptr);
    state_->tick.cancel();
    state_->gather.cancel();
    for (auto* s : state_->subscribers) s->close();
}

local_http::reply event_feed::subscribe() {
    auto& st = *state_;
    if (st.subscribers.size() >= subscriber_limit) {
        auto r = local_http::error_reply(
            503, fmt::format("{} pages already follow /api/events; close one", subscriber_limit));
        r.fields.emplace_back("Retry-After", "5");
        return r;
    }
    auto stream = std::make_shared<local_http::event_stream>(backlog_limit);
    const bool first = st.subscribers.empty();
    st.subscribers.insert(stream.get());
    stream->on_end([weak = std::weak_ptr<state>(state_), s = stream.get()] {
        if (auto self = weak.lock()) self->subscribers.erase(s);
    });
    if (first) st.start();
    local_http::reply r;
    r.events = std::move(stream);
    // A first comment, so the page's fetch() has its response before the first second ends.
    r.body = ": porthole admin events\n\n";
    return r;
}

std::size_t event_feed::subscribers() const { return state_->subscribers.size(); }

}  // namespace porthole::admin
