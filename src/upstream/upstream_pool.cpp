#include "upstream/upstream_pool.hpp"

#include "net/frame_io.hpp"
#include "net/proxy_protocol.hpp"
#include "net/socket_state.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace porthole::upstream {

namespace asio = boost::asio;
using scheme = config::upstream_member::scheme;
using tcp = asio::ip::tcp;

namespace {

policy policy_of(config::lb_policy p) {
    switch (p) {
    case config::lb_policy::round_robin: return policy::round_robin;
    case config::lb_policy::least_conn: return policy::least_conn;
    case config::lb_policy::random_two: return policy::random_two;
    case config::lb_policy::ip_hash: return policy::ip_hash;
    case config::lb_policy::cookie: return policy::cookie;
    }
    return policy::round_robin;
}

std::vector<member_state> states_of(const std::vector<config::upstream_member>& members) {
    std::vector<member_state> states;
    for (const auto& m : members) states.push_back(member_state{m.weight, 0, true, m.url});
    return states;
}

}  // namespace

pool::pool(std::string name, config::upstream_settings settings, tunnel_source* tunnels,
           std::optional<backend_tls> tls)
    : name_(std::move(name)), settings_(std::move(settings)), tunnels_(tunnels),
      tls_(std::move(tls)),
      proxy_header_(settings_.send_proxy_protocol != config::proxy_protocol::off),
      states_(states_of(settings_.members)),
      balancer_(policy_of(settings_.policy), states_) {
    for (const auto& m : settings_.members) members_.emplace_back().spec = m;
    healthy_ = std::make_shared<std::vector<std::atomic<bool>>>(members_.size());
    for (auto& h : *healthy_) h.store(true, std::memory_order_relaxed);
}

void pool::follow_checks_of(const pool& checker) {
    if (checker.members_.size() != members_.size()) return;
    healthy_ = checker.healthy_;
    follows_ = true;
}

tl::expected<std::shared_ptr<pool>, std::string> pool::make(std::string name,
                                                           config::upstream_settings settings,
                                                           tunnel_source* tunnels) {
    std::optional<backend_tls> tls;
    if (std::any_of(settings.members.begin(), settings.members.end(),
                    [](const auto& m) { return m.kind == scheme::https; })) {
        auto made = make_backend_tls(settings.ca_file);
        if (!made) return tl::unexpected(made.error());
        tls = std::move(*made);
    }
    auto p = std::make_shared<pool>(std::move(name), std::move(settings), tunnels, std::move(tls));
    for (auto& m : p->members_) {
        auto addresses = resolve_member(m.spec);
        if (!addresses) return tl::unexpected(addresses.error());
        m.addresses = std::move(*addresses);
    }
    return p;
}

bool pool::available(std::size_t i) {
    auto& m = members_[i];
    if (clock::now() < m.ejected_until) return false;  // passive ejection, every kind
    if (m.spec.kind == scheme::tunnel) return tunnels_ && tunnels_->serving(m.spec.host);
    return (*healthy_)[i].load(std::memory_order_relaxed);
}

pool::member_status pool::status(std::size_t i) const {
    const auto& m = members_[i];
    member_status st{"healthy", states_[i].active, m.fails, m.ejected_until};
    if (clock::now() < m.ejected_until)
        st.health = "ejected";
    else if (m.spec.kind == scheme::tunnel)
        st.health = tunnels_ && tunnels_->serving(m.spec.host) ? "healthy" : "no_client";
    else if (!(*healthy_)[i].load(std::memory_order_relaxed))
        st.health = "failing";
    else if (settings_.health.path.empty() && !settings_.health.active)
        st.health = "unchecked";
    return st;
}

asio::awaitable<tl::expected<connection, connect_failure>> pool::connect(
    const request_facts& facts, const std::string& visitor, tried_list& tried) {
    for (std::size_t i = 0; i < members_.size(); ++i) states_[i].available = available(i);
    std::string_view affinity =
        settings_.policy == config::lb_policy::cookie && !facts.cookie.empty() ? facts.cookie
                                                                               : facts.client_ip;
    std::string grouped;
    if (affinity == facts.client_ip) affinity = address_key(affinity, grouped);
    std::string last_error;
    while (tried.size() < settings_.max_tries) {
        const auto picked =
            balancer_.pick(states_, affinity, std::span<const std::size_t>(tried.data(), tried.size()));
        if (!picked) break;
        const std::size_t i = *picked;
        tried.push_back(i);
        auto& m = members_[i];
        if (m.spec.kind == scheme::tunnel) {
            auto opened = co_await tunnels_->open(m.spec.host, visitor);
            if (opened) {
                ++states_[i].active;
                co_return connection{std::move(opened->stream), i, true, true,
                                     std::move(opened->host_header), std::move(opened->target),
                                     std::move(opened->hold)};
            }
            // A tunnel at its limits answers for itself; one that is offline lets another try.
            if (opened.error().status != 502 || members_.size() == 1)
                co_return tl::unexpected(
                    connect_failure{opened.error().status, std::move(opened.error().message)});
            last_error = opened.error().message;
            states_[i].available = false;
            continue;
        }
        while (!m.idle.empty()) {
            net::stream s = std::move(m.idle.front());
            m.idle.pop_front();
            if (net::idle_and_open(s.socket())) {
                ++states_[i].active;
                co_return connection{std::move(s), i, false, false, "preserve", {}, nullptr};
            }
        }
        auto dialed = co_await connect_backend(m.spec, m.addresses, settings_.connect_timeout,
                                               tls_ ? &*tls_ : nullptr);
        if (dialed && proxy_header_ && facts.source && facts.destination) {
            // Named, not a temporary inside co_await: GCC 12 can destroy such temporaries twice.
            const std::string header = settings_.send_proxy_protocol == config::proxy_protocol::v1
                                           ? net::proxy_v1_header(*facts.source, *facts.destination)
                                           : net::proxy_v2_header(*facts.source, *facts.destination);
            auto [ec, n] = co_await dialed->write(asio::buffer(header), asio::const_buffer());
            if (ec) dialed = tl::unexpected(fmt::format("sending the PROXY header: {}", ec.message()));
        }
        if (dialed) {
            ++states_[i].active;
            co_return connection{std::move(*dialed), i, false, proxy_header_, "preserve", {},
                                 nullptr};
        }
        spdlog::info("{}: cannot reach {}: {}", name_, m.spec.url, dialed.error());
        last_error = dialed.error();
        record(i, outcome::failed, dialed.error());
        states_[i].available = available(i);
    }
    if (last_error.empty() && tried.empty())
        co_return tl::unexpected(connect_failure{503, "no healthy upstream"});
    co_return tl::unexpected(connect_failure{502, "no upstream could be reached"});
}

void pool::finish(connection&& c, outcome o, bool reusable, std::string_view why) {
    end_exchange(c.member, o, why);
    release(std::move(c), reusable && o != outcome::failed);
}

void pool::end_exchange(std::size_t member, outcome o, std::string_view why) {
    if (states_[member].active > 0) --states_[member].active;
    record(member, o, why);
}

void pool::release(connection&& c, bool reusable) {
    auto& m = members_[c.member];
    if (c.dedicated || !reusable || m.idle.size() >= settings_.max_idle_per_member) return;
    m.idle.push_back(std::move(c.stream));
}

void pool::record(std::size_t i, outcome o, std::string_view why) {
    auto& m = members_[i];
    if (o == outcome::ok) {
        m.fails = 0;
        m.ejections = 0;
        return;
    }
    if (settings_.max_fails == 0) return;  // 0: never eject
    // An exchange that began before the member was ejected and fails after: the ejection has
    // counted that trouble already, so it neither counts again nor lengthens the cool-down.
    const auto now = clock::now();
    if (now < m.ejected_until) return;
    m.last_failure = !why.empty()                  ? why
                     : o == outcome::server_error ? "a 5xx answer"
                                                   : "a failed exchange";
    if (++m.fails < settings_.max_fails) return;
    const unsigned doubling = std::min(m.ejections, 5u);  // at most 32 times the base
    m.ejected_until = now + settings_.eject_time * (1u << doubling);
    ++m.ejections;
    m.fails = 0;
    m.idle.clear();
    spdlog::warn("{}: {} ejected for {} ms after {} failures in a row (the last: {})", name_,
                 m.spec.url, (settings_.eject_time * (1u << doubling)).count(),
                 settings_.max_fails, m.last_failure);
}

void pool::start_checks(const asio::any_io_executor& ex) {
    if (follows_) return;
    for (std::size_t i = 0; i < members_.size(); ++i) {
        const auto kind = members_[i].spec.kind;
        if (kind == scheme::tunnel) continue;
        const bool http_check = !settings_.health.path.empty() && kind != scheme::tcp;
        // tcp sites: a connect, to tcp:// and unix: members alike
        const bool tcp_check = settings_.health.active && settings_.health.path.empty();
        if (!http_check && !tcp_check) continue;
        asio::co_spawn(ex, check_loop(i), [](std::exception_ptr e) {
            if (e) spdlog::error("a health check failed unexpectedly");
        });
    }
}

void pool::stop() { *stopped_ = true; }

asio::awaitable<void> pool::check_loop(std::size_t i) {
    const auto stopped = stopped_;  // the pool may go while a check waits
    asio::steady_timer timer(co_await asio::this_coro::executor);
    const auto& h = settings_.health;
    while (!*stopped) {
        const bool ok = co_await probe(i);
        if (*stopped) co_return;
        auto& m = members_[i];
        auto& healthy = (*healthy_)[i];
        if (ok) {
            m.check_failures = 0;
            if (!healthy.load(std::memory_order_relaxed) && ++m.check_passes >= h.rise) {
                healthy.store(true, std::memory_order_relaxed);
                m.check_passes = 0;
                spdlog::info("{}: {} is healthy again", name_, m.spec.url);
            }
        } else {
            m.check_passes = 0;
            if (healthy.load(std::memory_order_relaxed) && ++m.check_failures >= h.fall) {
                healthy.store(false, std::memory_order_relaxed);
                m.check_failures = 0;
                m.idle.clear();
                spdlog::warn("{}: {} failed {} health checks: taken out", name_, m.spec.url,
                             h.fall);
            }
        }
        timer.expires_after(h.interval);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

// One check: a connect when no health_path is set (tcp sites), else GET health_path answered
// status within health_timeout.
asio::awaitable<bool> pool::probe(std::size_t i) {
    const auto stopped = stopped_;
    const auto& h = settings_.health;
    const config::upstream_member spec = members_[i].spec;
    const std::vector<tcp::endpoint> addresses = members_[i].addresses;
    auto conn = co_await connect_backend(spec, addresses, h.timeout, tls_ ? &*tls_ : nullptr);
    if (*stopped || !conn) co_return false;
    if (h.path.empty()) co_return true;  // a connect check
    if (proxy_header_) {
        // A backend that expects a PROXY header gets one saying the check is the relay's own.
        const std::string_view local = net::proxy_local_header(
            settings_.send_proxy_protocol == config::proxy_protocol::v1 ? 1 : 2);
        auto [ec, n] = co_await conn->write(asio::buffer(local));
        if (ec || *stopped) co_return false;
    }
    const std::string host = spec.kind == scheme::unix_socket ? "localhost"
                             : spec.host.find(':') != std::string::npos
                                 ? fmt::format("[{}]:{}", spec.host, spec.port)
                                 : fmt::format("{}:{}", spec.host, spec.port);
    const std::string request = fmt::format(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: porthole-health-check\r\n"
        "Connection: close\r\n\r\n",
        h.path, host);
    auto check = [&]() -> asio::awaitable<bool> {
        auto [ec, n] = co_await conn->write(asio::buffer(request));
        if (ec) co_return false;
        std::string head;
        char buf[512];
        while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
            auto [rec, got] = co_await conn->read_some(asio::buffer(buf));
            head.append(buf, got);
            if (rec) break;
        }
        // "HTTP/1.1 200 ..."
        if (head.size() < 12 || !head.starts_with("HTTP/1.")) co_return false;
        unsigned status = 0;
        for (std::size_t k = 9; k < 12; ++k) {
            if (head[k] < '0' || head[k] > '9') co_return false;
            status = status * 10 + static_cast<unsigned>(head[k] - '0');
        }
        co_return status >= h.expect_low && status <= h.expect_high;
    };
    auto answered = co_await net::within(check(), h.timeout);
    co_return answered && *answered;
}

}  // namespace porthole::upstream
