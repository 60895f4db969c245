#include "client/terminal_view.hpp"

#include "core/printable.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <qrencode.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

namespace porthole::client {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr std::size_t requests_kept = 100;
constexpr std::size_t log_lines_kept = 50;
constexpr auto rate_window = 10s;

constexpr std::string_view green = "32", yellow = "33", red = "31", cyan = "36", dim = "2",
                           bold = "1";

// Columns a UTF-8 string takes (every code point one column; good enough for URLs and paths).
std::size_t columns(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

std::string fit(std::string_view s, std::size_t width) {
    if (columns(s) <= width) return std::string(s);
    std::string out;
    std::size_t n = 0;
    for (unsigned char c : s) {
        if ((c & 0xC0) != 0x80 && ++n > width - 1) break;
        out.push_back(static_cast<char>(c));
    }
    return out + "…";
}

std::string format_duration(std::chrono::nanoseconds d) {
    const double ms = static_cast<double>(d.count()) / 1e6;
    if (ms < 10) return fmt::format("{:.1f} ms", ms);
    if (ms < 10000) return fmt::format("{:.0f} ms", ms);
    return fmt::format("{:.1f} s", ms / 1000);
}

}  // namespace

terminal_view::terminal_view(asio::io_context& io, observe::capture_store& store, bool color,
                             bool qr)
    : io_(io), store_(store), color_(color), qr_(qr), tick_(io) {
    store_token_ = store_.subscribe([this](observe::capture_store::event e,
                                           const observe::exchange_record* r,
                                           const observe::captured_frame*) {
        if (e == observe::capture_store::event::request) on_record(*r);
    });
}

terminal_view::~terminal_view() {
    stop();
    store_.unsubscribe(store_token_);
}

void terminal_view::start() {
    running_ = true;
    // Log lines would tear the screen: they go to a ring shown at the bottom instead.
    log_ring_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(log_lines_kept);
    log_ring_->set_pattern("%H:%M:%S %l %v");
    auto logger = spdlog::default_logger();
    logger->sinks().clear();
    logger->sinks().push_back(log_ring_);
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);  // alternate screen, cursor hidden
    std::fflush(stdout);
    asio::co_spawn(io_, redraw(), asio::detached);
}

asio::awaitable<void> terminal_view::redraw() {
    while (running_) {
        draw();
        tick_.expires_after(dirty_ ? 100ms : 1s);
        dirty_ = false;
        co_await tick_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

void terminal_view::stop() {
    if (!running_) return;
    running_ = false;
    tick_.cancel();
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
}

void terminal_view::changed() { dirty_ = true; }

void terminal_view::set_session(std::string state, bool online) {
    session_ = std::move(state);
    online_ = online;
    changed();
}
void terminal_view::set_relay(std::string address) {
    relay_ = std::move(address);
    changed();
}
void terminal_view::set_rtt(std::chrono::microseconds rtt) { rtt_ = rtt; }
void terminal_view::set_inspector(std::string url) {
    inspector_ = std::move(url);
    changed();
}
void terminal_view::set_tunnels(std::vector<view_tunnel> tunnels) {
    tunnels_ = std::move(tunnels);
    changed();
}

void terminal_view::on_record(const observe::exchange_record& r) {
    using observe::exchange_state;
    if (r.state == exchange_state::pending || r.state == exchange_state::streaming) return;
    auto same = std::find_if(requests_.begin(), requests_.end(),
                             [&](const request_line& l) { return l.id == r.id; });
    request_line line{r.start, r.request.method, core::printable(r.request.target), r.tunnel_name,
                      r.response ? r.response->status : 0u, observe::state_name(r.state),
                      r.duration, r.id};
    if (same != requests_.end()) {
        *same = std::move(line);  // a WebSocket that closed
    } else {
        requests_.push_front(std::move(line));
        if (requests_.size() > requests_kept) requests_.pop_back();
        recent_.push_back(std::chrono::steady_clock::now());
    }
    changed();
}

std::string terminal_view::paint(std::string_view text, std::string_view color) const {
    if (!color_ || color.empty()) return std::string(text);
    return fmt::format("\x1b[{}m{}\x1b[0m", color, text);
}

std::string terminal_view::render(int width, int height) const {
    const auto w = static_cast<std::size_t>(std::max(width, 20));
    std::vector<std::string> lines;
    // Each line is fitted to the width before it is painted, so escapes never get cut.
    auto add = [&](std::string plain, std::string_view color = {}) {
        lines.push_back(paint(fit(plain, w), color));
    };
    auto row = [&](std::string_view label, std::string value, std::string_view color = {}) {
        lines.push_back(paint(fit(fmt::format("{:<12}", label), w), dim) +
                        paint(fit(value, w > 12 ? w - 12 : 1), color));
    };
    add(fmt::format("porthole {}   (Ctrl+C to quit)", PORTHOLE_VERSION), bold);
    add("");
    row("Session", session_, online_ ? green : yellow);
    row("Relay", relay_);
    row("Latency", rtt_ ? fmt::format("{:.1f} ms", static_cast<double>(rtt_->count()) / 1000) : "-");
    if (!inspector_.empty()) row("Inspector", inspector_, cyan);
    add("");
    const auto now = std::chrono::steady_clock::now();
    std::size_t in_window = 0;
    for (auto t : recent_) in_window += now - t <= rate_window;
    add(fmt::format("Tunnels   {:.1f} req/s", static_cast<double>(in_window) / 10.0), bold);
    for (const auto& t : tunnels_) {
        const auto* m = t.metrics;
        add(fmt::format("  {}  ->  {}", t.url.empty() ? "(waiting for the relay)" : t.url, t.target),
            t.url.empty() ? yellow : "");
        for (const auto& r : t.routes) add("      " + r, dim);
        if (m)
            add(fmt::format("      {} open · {} connections · {} requests{}", m->open,
                            m->connections, m->requests,
                            t.name.empty() || t.name == "command_line" ? "" : "   [" + t.name + "]"),
                dim);
        if (qr_ && !t.url.empty())
            for (auto& q : qr_lines(t.url)) lines.push_back("  " + q);
    }
    add("");
    auto logs = log_ring_ ? log_ring_->last_formatted(3) : std::vector<std::string>{};
    const int reserved = static_cast<int>(lines.size()) + 2 + (logs.empty() ? 0 : 2 + static_cast<int>(logs.size()));
    const int room = std::max(1, height - reserved);
    add("Requests", bold);
    int shown = 0;
    for (const auto& r : requests_) {
        if (shown++ >= room) break;
        std::string status = r.status ? std::to_string(r.status) : r.state;
        if (r.state == "upgraded" || r.state == "closed") status = fmt::format("{} ws {}", r.status, r.state);
        const std::string_view color = r.status >= 500 || r.state == "failed" ? red
                                       : r.status >= 400                      ? yellow
                                       : r.status >= 200                      ? green
                                                                              : "";
        const std::string left = fmt::format("  {:%H:%M:%S}  {:<7} ", fmt::localtime(
                                    std::chrono::system_clock::to_time_t(r.time)), r.method);
        const std::string right = fmt::format(" {:<16} {:>9}", status, format_duration(r.duration));
        const std::size_t path_room = w > columns(left) + columns(right) + 1
                                          ? w - columns(left) - columns(right)
                                          : 1;
        std::string path = fit(r.path, path_room);
        path += std::string(path_room - std::min(path_room, columns(path)), ' ');
        lines.push_back(left + path + paint(right, color));
    }
    if (requests_.empty()) add("  (none yet)", dim);
    if (!logs.empty()) {
        add("");
        add("Messages", bold);
        for (auto& l : logs) {
            while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
            add("  " + l, dim);
        }
    }
    std::string screen;
    for (const auto& l : lines) screen += l + "\x1b[K\n";
    return screen;
}

void terminal_view::draw() {
    winsize ws{};
    int width = 100, height = 30;
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        width = ws.ws_col;
        height = ws.ws_row;
    }
    while (!recent_.empty() && std::chrono::steady_clock::now() - recent_.front() > rate_window)
        recent_.pop_front();
    const std::string screen = "\x1b[H" + render(width, height) + "\x1b[J";
    std::fwrite(screen.data(), 1, screen.size(), stdout);
    std::fflush(stdout);
}

std::vector<std::string> qr_lines(std::string_view text) {
    const std::string s(text);
    QRcode* code = QRcode_encodeString(s.c_str(), 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    if (!code) return {};
    const int n = code->width;
    const int quiet = 1;
    auto dark = [&](int x, int y) {
        if (x < 0 || y < 0 || x >= n || y >= n) return false;
        return (code->data[y * n + x] & 1) != 0;
    };
    // Light modules are drawn, dark ones left blank: reads on dark terminals, which most are.
    std::vector<std::string> out;
    for (int y = -quiet; y < n + quiet; y += 2) {
        std::string line;
        for (int x = -quiet; x < n + quiet; ++x) {
            const bool top = !dark(x, y), bottom = !dark(x, y + 1);
            line += top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " ";
        }
        out.push_back(std::move(line));
    }
    QRcode_free(code);
    return out;
}

}  // namespace porthole::client
