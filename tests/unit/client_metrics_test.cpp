#include "client/client_metrics.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace porthole;
using client::client_gauges;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

struct two_tunnels {
    client::tunnel_counters web{}, ssh{};
    client::session_counters session{};
    client_gauges gauges{};

    two_tunnels() {
        gauges.tunnels.push_back({"web", "http", true, 2, 9, &web});
        gauges.tunnels.push_back({"ssh", "tcp", false, 0, 3, &ssh});
    }
    std::string text() const { return client::write_metrics(session, gauges, {}); }
};

}  // namespace

TEST(ClientMetrics, RequestsByTunnelAndClassWithTheirDurations) {
    two_tunnels m;
    m.web.requests.add(200, std::chrono::microseconds(500));
    m.web.requests.add(204, std::chrono::microseconds(3000));
    m.web.requests.add(502, std::chrono::milliseconds(40));
    m.web.requests.add(0, std::chrono::microseconds(10));
    const std::string t = m.text();
    EXPECT_TRUE(has_line(t, R"(porthole_client_requests_total{tunnel="web",code_class="2xx"} 2)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_requests_total{tunnel="web",code_class="5xx"} 1)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_requests_total{tunnel="web",code_class="none"} 1)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_requests_total{tunnel="web",code_class="4xx"} 0)"));
    // Only HTTP tunnels have requests.
    EXPECT_EQ(t.find(R"(porthole_client_requests_total{tunnel="ssh")"), std::string::npos);
    const std::string h = "porthole_client_request_duration_seconds";
    EXPECT_TRUE(has_line(t, h + R"(_bucket{tunnel="web",le="0.001"} 2)"));
    EXPECT_TRUE(has_line(t, h + R"(_bucket{tunnel="web",le="0.005"} 3)"));
    EXPECT_TRUE(has_line(t, h + R"(_bucket{tunnel="web",le="+Inf"} 4)"));
    EXPECT_TRUE(has_line(t, h + R"(_count{tunnel="web"} 4)"));
    EXPECT_TRUE(has_line(t, h + R"(_sum{tunnel="web"} 0.04351)"));
}

TEST(ClientMetrics, EachFamilyHasOneHelpAndType) {
    two_tunnels m;
    m.gauges.session_up = true;
    m.gauges.rtt_seconds = 0.012;
    const std::string t = m.text();
    for (const char* family :
         {"porthole_client_requests_total", "porthole_client_request_duration_seconds",
          "porthole_client_bytes_total", "porthole_client_local_connect_failures_total",
          "porthole_client_visitor_connections_opened_total", "porthole_client_reconnects_total",
          "porthole_client_session_up", "porthole_client_session_start_time_seconds",
          "porthole_client_rtt_seconds", "porthole_client_tunnels", "porthole_client_tunnel_up",
          "porthole_client_visitor_connections", "porthole_client_data_pool_connections",
          "porthole_build_info", "process_cpu_seconds_total", "porthole_memory_pss_bytes"}) {
        EXPECT_EQ(count_of(t, std::string("# HELP ") + family + " "), 1u) << family;
        EXPECT_EQ(count_of(t, std::string("# TYPE ") + family + " "), 1u) << family;
    }
}

TEST(ClientMetrics, BytesFailuresAndVisitorsOfEveryTunnel) {
    two_tunnels m;
    m.ssh.bytes = {1234, 56789};
    m.ssh.failed(client::local_failure::refused);
    m.ssh.failed(client::local_failure::refused);
    m.web.failed(client::local_failure::timeout);
    const std::string t = m.text();
    EXPECT_TRUE(has_line(t, R"(porthole_client_bytes_total{tunnel="ssh",direction="in"} 1234)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_bytes_total{tunnel="ssh",direction="out"} 56789)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_bytes_total{tunnel="web",direction="in"} 0)"));
    EXPECT_TRUE(has_line(
        t, R"(porthole_client_local_connect_failures_total{tunnel="ssh",reason="refused"} 2)"));
    EXPECT_TRUE(has_line(
        t, R"(porthole_client_local_connect_failures_total{tunnel="web",reason="timeout"} 1)"));
    EXPECT_TRUE(has_line(
        t, R"(porthole_client_local_connect_failures_total{tunnel="web",reason="other"} 0)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_visitor_connections{tunnel="web"} 2)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_visitor_connections_opened_total{tunnel="ssh"} 3)"));
}

TEST(ClientMetrics, SessionTunnelsAndPool) {
    two_tunnels m;
    m.session.reconnecting(client::reconnect_reason::goaway);
    m.session.reconnecting(client::reconnect_reason::unreachable);
    m.session.reconnecting(client::reconnect_reason::unreachable);
    std::string t = m.text();
    EXPECT_TRUE(has_line(t, "porthole_client_session_up 0"));
    // No session, no start time and no round trip.
    EXPECT_EQ(t.find("porthole_client_session_start_time_seconds"), std::string::npos);
    EXPECT_EQ(t.find("porthole_client_rtt_seconds"), std::string::npos);
    EXPECT_TRUE(has_line(t, R"(porthole_client_reconnects_total{reason="goaway"} 1)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_reconnects_total{reason="unreachable"} 2)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_reconnects_total{reason="heartbeat"} 0)"));

    m.gauges.session_up = true;
    m.gauges.session_start = 1764000000.5;
    m.gauges.rtt_seconds = 0.0125;
    m.gauges.data_idle = 8;
    m.gauges.data_connecting = 1;
    t = m.text();
    EXPECT_TRUE(has_line(t, "porthole_client_session_up 1"));
    EXPECT_TRUE(has_line(t, "porthole_client_session_start_time_seconds 1764000000.5"));
    EXPECT_TRUE(has_line(t, "porthole_client_rtt_seconds 0.0125"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_tunnels{kind="http"} 1)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_tunnels{kind="tcp"} 0)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_tunnel_up{tunnel="ssh",kind="tcp"} 0)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_data_pool_connections{state="idle"} 8)"));
    EXPECT_TRUE(has_line(t, R"(porthole_client_data_pool_connections{state="connecting"} 1)"));
}

TEST(ClientMetrics, OnlyTcpTunnelsWriteNoRequestFamilies) {
    client::tunnel_counters ssh;
    client_gauges g;
    g.tunnels.push_back({"ssh", "tcp", true, 0, 0, &ssh});
    const std::string t = client::write_metrics({}, g, {});
    EXPECT_EQ(t.find("porthole_client_requests_total"), std::string::npos);
    EXPECT_EQ(t.find("porthole_client_request_duration_seconds"), std::string::npos);
}

TEST(ClientMetrics, RequestTallyCountsOnceWhicheverWayItEnds) {
    client::tunnel_counters c;
    {
        client::request_tally tally(c, std::chrono::steady_clock::now());
        tally.respond(101);
        tally.done();
        tally.respond(500);  // after done(): counted already
    }
    { client::request_tally unanswered(c, std::chrono::steady_clock::now()); }
    EXPECT_EQ(c.requests.by_class[1], 1u);
    EXPECT_EQ(c.requests.by_class[0], 1u);
    EXPECT_EQ(c.requests.by_class[5], 0u);
    EXPECT_EQ(c.requests.duration.count(), 2u);
}

TEST(ClientMetrics, LocalFailuresAreNamedFromConnectErrors) {
    EXPECT_EQ(client::local_failure_of("Connection refused"), client::local_failure::refused);
    EXPECT_EQ(client::local_failure_of("timed out"), client::local_failure::timeout);
    EXPECT_EQ(client::local_failure_of("cannot resolve db.internal: Host not found"),
              client::local_failure::other);
}
