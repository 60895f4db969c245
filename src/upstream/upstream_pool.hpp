#pragma once
// An upstream pool: the members of one route (backends and tunnel names alike), the pick per
// lb_policy, each member's health (passive ejection for every kind, active checks for backends)
// and the kept-alive connections to each backend. What it hands out is an upstream connection:
// a net::stream and the member it goes to, whatever kind that member is.
#include "config/site_config.hpp"
#include "net/stream.hpp"
#include "upstream/backend_connect.hpp"
#include "upstream/load_balancer.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/container/small_vector.hpp>
#include <tl/expected.hpp>

#include <chrono>
#include <atomic>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace porthole::upstream {

using clock = std::chrono::steady_clock;

// A data connection to a tunnel's client, as the relay opens it for a pool.
struct tunnel_connection {
    net::stream stream;
    std::string host_header;  // the client's --host-header: "preserve", "rewrite" or a value
    std::string target;  // the client's local address, for "rewrite"
    std::shared_ptr<void> hold;  // the tunnel's connection slot, held while this is open
};
struct open_failure {
    unsigned status;  // what the visitor is answered: 502, 503 or 429
    std::string message;  // fit for the visitor's page
};

// How a pool reaches its tunnel:NAME members; the relay implements it over its registry.
class tunnel_source {
public:
    virtual ~tunnel_source() = default;
    // True while a client of this relay serves NAME.
    virtual bool serving(const std::string& name) = 0;
    virtual boost::asio::awaitable<tl::expected<tunnel_connection, open_failure>> open(
        const std::string& name, const std::string& visitor) = 0;
};

// The members one request has tried, at most max_tries (10): kept inline, no allocation.
using tried_list = boost::container::small_vector<std::size_t, 10>;

// What a pick reads about the request.
struct request_facts {
    std::string_view client_ip;
    std::string_view cookie;  // the value of the pool's cookie, for lb_policy = "cookie"
    // The visitor connection's two ends, for send_proxy_protocol; null: none is sent.
    const boost::asio::ip::tcp::endpoint* source = nullptr;
    const boost::asio::ip::tcp::endpoint* destination = nullptr;
};

// An upstream connection, checked out of the pool for one exchange (and kept by the visitor's
// connection between its requests).
struct connection {
    net::stream stream;
    std::size_t member = 0;
    bool tunnel = false;  // a tunnel data connection
    // It cannot serve another visitor: a tunnel's, or one that began with a PROXY header.
    bool dedicated = false;
    std::string host_header = "preserve";
    std::string target;
    std::shared_ptr<void> hold;
};

struct connect_failure {
    unsigned status;  // 502 (every member tried failed) or 503 (none is available)
    std::string message;
};

// How an exchange over a connection ended, for the member's health.
enum class outcome { ok, server_error, failed };

class pool {
public:
    pool(std::string name, config::upstream_settings settings, tunnel_source* tunnels,
         std::optional<backend_tls> tls);
    // A pool for a route of the config: the TLS context of its https members made and its
    // backends' names resolved, or what is wrong.
    static tl::expected<std::shared_ptr<pool>, std::string> make(
        std::string name, config::upstream_settings settings, tunnel_source* tunnels);
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    const std::string& name() const { return name_; }
    const config::upstream_settings& settings() const { return settings_; }
    std::size_t size() const { return members_.size(); }
    const config::upstream_member& member(std::size_t i) const { return members_[i].spec; }

    // A connection to a member chosen by the policy, trying others (up to max_tries in all)
    // when a connect fails; `tried` collects the members used and is read to skip them, so a
    // caller that retries after a failed exchange passes it back.
    boost::asio::awaitable<tl::expected<connection, connect_failure>> connect(
        const request_facts& facts, const std::string& visitor, tried_list& tried);

    // The exchange is over. `reusable`: the connection may carry another request. `why`: what
    // went wrong when it failed, named in the log line of an ejection.
    void finish(connection&& c, outcome o, bool reusable, std::string_view why = {});
    // A connection the visitor keeps between requests (a dedicated one): its exchange is over,
    // and begin_exchange counts the next one on it.
    void end_exchange(std::size_t member, outcome o, std::string_view why = {});
    void begin_exchange(std::size_t member) { ++states_[member].active; }
    // Whether member i may take requests now (healthy, not ejected, its tunnel online).
    bool available(std::size_t i);
    // The cookie value that sends a visitor to member i (lb_policy = "cookie").
    std::string cookie_value(std::size_t i) const { return balancer_.cookie_value(i); }

    // What the admin API shows of member i.
    struct member_status {
        std::string_view health;  // healthy, failing, ejected, unchecked, no_client
        std::uint32_t active = 0;
        unsigned fails = 0;
        clock::time_point ejected_until{};
    };
    member_status status(std::size_t i) const;

    // Active health checks of the backends, on `ex`, until stop(). A pool that follows
    // another's checks runs none.
    void start_checks(const boost::asio::any_io_executor& ex);
    // Another event loop's pool for the same route (same members, in order): this one takes
    // its checks' verdicts instead of checking too. Before start_checks(); either loop may go
    // first, the verdicts stay while either pool does.
    void follow_checks_of(const pool& checker);
    // The pool of event loop `loop` (0 for the first): its rotation starts that many members on.
    void stagger(std::size_t loop) { balancer_.skip(states_, loop); }
    void stop();

private:
    struct member_runtime {
        config::upstream_member spec;
        std::vector<boost::asio::ip::tcp::endpoint> addresses;  // resolved by make()
        std::deque<net::stream> idle;  // kept-alive backend connections
        unsigned fails = 0;  // consecutive, for passive ejection
        unsigned ejections = 0;  // in a row: the cool-down doubles with each
        clock::time_point ejected_until{};
        std::string last_failure;  // what the latest failure was, for the ejection's log line
        unsigned check_passes = 0;
        unsigned check_failures = 0;
    };

    // Into the member's idle connections when it may carry another request and has room.
    void release(connection&& c, bool reusable);
    void record(std::size_t i, outcome o, std::string_view why);
    boost::asio::awaitable<void> check_loop(std::size_t i);
    boost::asio::awaitable<bool> probe(std::size_t i);

    std::string name_;  // the site or route, for logs and pages
    config::upstream_settings settings_;
    tunnel_source* tunnels_;
    std::optional<backend_tls> tls_;
    bool proxy_header_;  // send_proxy_protocol: each backend connection starts with one
    std::deque<member_runtime> members_;  // a deque: its elements never move
    std::vector<member_state> states_;  // what the balancer reads, index for index
    load_balancer balancer_;
    std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
    // The active checks' verdicts, by member: written by the loop that checks, read by every
    // loop whose pool follows it (relaxed: a verdict a moment late is as good).
    std::shared_ptr<std::vector<std::atomic<bool>>> healthy_;
    bool follows_ = false;
};

}  // namespace porthole::upstream
