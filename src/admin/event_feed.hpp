#pragma once
// GET /api/events, the dashboard's live feed of server-sent events: each second a `rate` event
// with what the relay counted since the one before; `refusal` and `error` events as the relay
// makes them, gathered for at most a tenth of a second so a flood of refusals costs a bounded
// amount of work. At most `subscriber_limit` pages listen; one that reads too slowly is cut off
// by its stream's backlog limit, never buffered without bound. Its timers run only while a page
// listens.
#include "admin/relay_control.hpp"
#include "observe/local_http.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace porthole::admin {

// The data of a `rate` event: what was counted between two readings `ms` milliseconds apart,
// and the sessions open at the second. A count that went down (a tunnel's label slot given to
// another name, sites replaced by a reload) counts as zero.
std::string rate_json(const traffic_totals& before, const traffic_totals& now, std::int64_t ms);

class event_feed {
public:
    static constexpr std::size_t subscriber_limit = 8;

    event_feed(boost::asio::io_context& io, relay_control& relay);
    ~event_feed();  // ends the streams, stops the timers, leaves the relay's recent events
    event_feed(const event_feed&) = delete;
    event_feed& operator=(const event_feed&) = delete;

    // The answer to GET /api/events: a new stream, or 503 while `subscriber_limit` listen.
    observe::local_http::reply subscribe();
    std::size_t subscribers() const;

    struct state;

private:
    std::shared_ptr<state> state_;
};

}  // namespace porthole::admin
