#include "client/terminal_view.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace porthole::client {
namespace {

TEST(TerminalView, ShowsSessionTunnelsAndFinishedRequests) {
    boost::asio::io_context io;
    observe::capture_store store(1 << 20, 0);
    terminal_view view(io, store, false, false);
    observe::tunnel_metrics metrics{7, 2, 5};
    view.set_session("online", true);
    view.set_relay("relay.example.com:7835  (TLS)");
    view.set_rtt(std::chrono::microseconds(12345));
    view.set_inspector("http://127.0.0.1:4040");
    view.set_tunnels({{"web", "https://web.example.com", "http://127.0.0.1:3000",
                       {"/api -> 127.0.0.1:8000"}, &metrics}});
    const std::string screen = view.render(100, 40);
    EXPECT_NE(screen.find("online"), std::string::npos);
    EXPECT_NE(screen.find("relay.example.com:7835"), std::string::npos);
    EXPECT_NE(screen.find("12.3 ms"), std::string::npos);
    EXPECT_NE(screen.find("https://web.example.com  ->  http://127.0.0.1:3000"), std::string::npos);
    EXPECT_NE(screen.find("/api -> 127.0.0.1:8000"), std::string::npos);
    EXPECT_NE(screen.find("2 open · 7 connections · 5 requests"), std::string::npos);
    EXPECT_NE(screen.find("(none yet)"), std::string::npos);
    EXPECT_EQ(screen.find("\x1b["), screen.find("\x1b[K"));  // no colour when told so
}

TEST(TerminalView, FitsLongPathsToTheWidth) {
    boost::asio::io_context io;
    observe::capture_store store(1 << 20, 0);
    terminal_view view(io, store, true, false);
    http::message_head h;
    h.method = "GET";
    h.target = "/" + std::string(300, 'p');
    auto r = store.begin("web", "", h, "");
    r->response = http::message_head{};
    r->response->status = 503;
    r->state = observe::exchange_state::complete;
    store.changed(*r);
    const std::string screen = view.render(60, 30);
    EXPECT_NE(screen.find("503"), std::string::npos);
    EXPECT_NE(screen.find("\x1b[31m"), std::string::npos);  // 5xx in red
    EXPECT_EQ(screen.find(std::string(100, 'p')), std::string::npos);
}

TEST(TerminalView, QrCodeIsSquareAndNonEmpty) {
    const auto lines = qr_lines("https://web.example.com");
    ASSERT_GT(lines.size(), 10u);
    EXPECT_EQ(lines.front().size(), lines.back().size());
}

}  // namespace
}  // namespace porthole::client
