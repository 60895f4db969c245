#include "observe/access_log.hpp"

#include <boost/asio/ip/address.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace porthole::observe {
namespace {

constexpr std::size_t longest_header = 256;  // User-Agent and Referer are cut here

// A line is written through a pointer into room made for it at once (its size bounded from its
// fields' lengths), in runs, never a byte at a time, and numbers without a format string to
// parse: a line costs little more than copying it.
class line_writer {
public:
    line_writer(std::string& out, std::size_t most) : out_(out) {
        const std::size_t at = out.size();
        out.resize(at + most);
        p_ = out.data() + at;
    }
    ~line_writer() { out_.resize(static_cast<std::size_t>(p_ - out_.data())); }
    line_writer(const line_writer&) = delete;
    line_writer& operator=(const line_writer&) = delete;

    line_writer& operator<<(std::string_view text) {
        std::memcpy(p_, text.data(), text.size());
        p_ += text.size();
        return *this;
    }
    line_writer& operator<<(char c) {
        *p_++ = c;
        return *this;
    }
    void number(std::uint64_t n) { *this << std::string_view(fmt::format_int(n).c_str()); }
    // 4210 -> "4.210" (thousandths as a decimal)
    void thousandths(std::uint64_t n) {
        number(n / 1000);
        const auto rest = static_cast<unsigned>(n % 1000);
        *this << '.' << static_cast<char>('0' + rest / 100)
              << static_cast<char>('0' + rest / 10 % 10) << static_cast<char>('0' + rest % 10);
    }
    // A JSON string's content: printable ASCII as is, '"' and '\' escaped, every other byte
    // (control characters, DEL, bytes of UTF-8 or not) as \u00HH: a line is always valid JSON.
    void json_text(std::string_view text) {
        escaped(text, [this](unsigned char b) {
            if (b == '"' || b == '\\') {
                *this << '\\' << static_cast<char>(b);
            } else {
                *this << "\\u00" << hex[b >> 4] << hex[b & 15];
            }
        });
    }
    // A field of the combined format: core::printable's rules (\xHH), and '"' as \x22 too, so a
    // quoted field cannot end early.
    void combined_text(std::string_view text) {
        escaped(text, [this](unsigned char b) { *this << "\\x" << hex[b >> 4] << hex[b & 15]; });
    }
    void json_field(std::string_view key, std::string_view value) {
        *this << ",\"" << key;
        if (value.empty()) {
            *this << "\":null";
            return;
        }
        *this << "\":\"";
        json_text(value);
        *this << '"';
    }

private:
    static constexpr char hex[] = "0123456789abcdef";
    // Printable ASCII but the quote and the backslash: copied as it is in either format.
    static bool plain(unsigned char b) { return b >= 0x20 && b < 0x7f && b != '"' && b != '\\'; }
    template <class Escape>
    void escaped(std::string_view text, Escape escape) {
        std::size_t run = 0;
        for (std::size_t i = 0; i < text.size(); ++i) {
            const auto b = static_cast<unsigned char>(text[i]);
            if (plain(b)) continue;
            *this << text.substr(run, i - run);
            run = i + 1;
            escape(b);
        }
        *this << text.substr(run);
    }

    std::string& out_;
    char* p_;
};

std::string_view cut(std::string_view text) { return text.substr(0, longest_header); }

// The time of a line to the second, as each format writes it: made once a second, not per line.
struct second_text {
    std::int64_t second = -1;
    std::string json;      // "2025-05-01T10:04:05."
    std::string combined;  // "[01/May/2025:10:04:05 +0000]"
};

const second_text& time_of(std::int64_t second) {
    thread_local second_text cached;
    if (cached.second == second) return cached;
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t t = second;
    std::tm tm{};
    gmtime_r(&t, &tm);
    cached.second = second;
    cached.json = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached.combined = fmt::format("[{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000]", tm.tm_mday,
                                  months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                                  tm.tm_sec);
    return cached;
}

}  // namespace

void append_target(std::string& out, std::string_view target, query_logging q) {
    const auto mark = target.find('?');
    if (q == query_logging::full || mark == std::string_view::npos) {
        out += target;
        return;
    }
    out += target.substr(0, mark);
    if (q == query_logging::drop) return;
    std::string_view query = target.substr(mark + 1);
    out += '?';
    bool first = true;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        if (!first) out += '&';
        out += pair.substr(0, pair.find('='));
        first = false;
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
}

std::string anonymized(std::string_view address) {
    boost::system::error_code ec;
    const auto a = boost::asio::ip::make_address(address, ec);
    if (ec) return std::string(address);
    if (a.is_v4()) {
        auto bytes = a.to_v4().to_bytes();
        bytes[3] = 0;
        return boost::asio::ip::address_v4(bytes).to_string();
    }
    auto bytes = a.to_v6().to_bytes();
    for (std::size_t i = 6; i < bytes.size(); ++i) bytes[i] = 0;
    return boost::asio::ip::address_v6(bytes).to_string();
}

void append_log_line(std::string& out, const request_record& r, const access_log_settings& s) {
    const std::string visitor_anon = s.anonymize_ip ? anonymized(r.visitor) : std::string();
    const std::string_view visitor = s.anonymize_ip ? std::string_view(visitor_anon) : r.visitor;
    const auto since_epoch = r.time.time_since_epoch();
    const auto millis = static_cast<unsigned>(
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000);
    const second_text& when =
        time_of(std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count());
    // Query values go only with query = "full": the target and Referer are cut into scratch
    // buffers first (kept by the thread, so no allocation per line).
    thread_local std::string target, referer;
    target.clear();
    referer.clear();
    append_target(target, r.target, s.query);
    append_target(referer, cut(r.referer), s.query);
    const std::string_view user_agent = cut(r.user_agent);
    const std::string_view protocol = r.version == 10 ? "HTTP/1.0" : "HTTP/1.1";
    const auto micros = static_cast<std::uint64_t>(r.duration.count());
    // Room for the worst case: every byte of every field escaped to six, and the fixed text.
    const std::size_t texts = visitor.size() + r.host.size() + r.method.size() + target.size() +
                              r.site.size() + r.route.size() + r.tunnel.size() +
                              r.upstream.size() + r.request_id.size() + r.policy.size() +
                              r.refusal.size() + referer.size() + user_agent.size();
    line_writer w(out, 6 * texts + 512);
    if (s.format == log_format::json) {
        w << "{\"time\":\"" << when.json << static_cast<char>('0' + millis / 100)
          << static_cast<char>('0' + millis / 10 % 10) << static_cast<char>('0' + millis % 10)
          << "Z\"";
        w.json_field("visitor", visitor);
        w << (r.tls ? ",\"tls\":true" : ",\"tls\":false");
        w.json_field("host", r.host);
        w.json_field("method", r.method);
        w.json_field("path", target);
        w.json_field("protocol", protocol);
        w << ",\"status\":";
        if (r.status == 0) w << "null";
        else w.number(r.status);
        w << ",\"bytes_in\":";
        w.number(r.bytes_in);
        w << ",\"bytes_out\":";
        w.number(r.bytes_out);
        w << ",\"duration_ms\":";
        w.thousandths(micros);
        if (!r.tunnel.empty()) {
            w.json_field("tunnel", r.tunnel);
        } else {
            w.json_field("site", r.site);
            w.json_field("route", r.route);
        }
        w.json_field("upstream", r.upstream);
        w.json_field("request_id", r.request_id);
        w.json_field("policy", r.policy);
        w.json_field("refusal", r.refusal);
        w.json_field("referer", referer);
        w.json_field("user_agent", user_agent);
        if (r.upgraded) w << ",\"upgraded\":true";
        w << "}\n";
        return;
    }
    const auto dash = [](std::string_view v) { return v.empty() ? std::string_view("-") : v; };
    w.combined_text(dash(visitor));
    w << " - - " << when.combined << " \"";
    w.combined_text(r.method);
    w << ' ';
    w.combined_text(target);
    w << ' ' << protocol << "\" ";
    if (r.status == 0) w << '-';
    else w.number(r.status);
    w << ' ';
    w.number(r.bytes_out);
    w << " \"";
    w.combined_text(dash(referer));
    w << "\" \"";
    w.combined_text(dash(user_agent));
    w << "\" ";
    w.number(r.bytes_in);
    w << ' ';
    w.thousandths(micros / 1000);  // seconds, three decimals
    w << ' ';
    w.combined_text(dash(r.host));
    const auto field = [&](std::string_view name, std::string_view value) {
        w << ' ' << name << '=';
        w.combined_text(dash(value));
    };
    if (!r.tunnel.empty()) field("tunnel", r.tunnel);
    else field("site", r.site);
    field("upstream", r.upstream);
    field("rid", r.request_id);
    field("policy", r.policy.empty() ? r.refusal : r.policy);
    w << '\n';
}

tl::expected<std::unique_ptr<access_log>, std::string> access_log::open(access_log_settings s) {
    int fd = STDOUT_FILENO;
    if (s.path != "-") {
        fd = ::open(s.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return tl::unexpected(fmt::format("access_log {}: cannot open it: {}", s.path,
                                              std::strerror(errno)));
    }
    return std::unique_ptr<access_log>(new access_log(std::move(s), fd));
}

access_log::access_log(access_log_settings s, int fd) : settings_(std::move(s)), fd_(fd) {
    buffer_.reserve(buffer_size);
    writer_ = std::thread([this] { write_loop(); });
}

access_log::~access_log() {
    flush();
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
    if (fd_ != STDOUT_FILENO && fd_ >= 0) ::close(fd_);
}

void access_log::add(const request_record& r) {
    append_log_line(buffer_, r, settings_);
    ++buffered_lines_;
    if (buffer_.size() >= buffer_size) flush();
}

void access_log::flush() {
    if (buffer_.empty()) return;
    std::string full;
    full.reserve(buffer_size);
    full.swap(buffer_);
    const std::size_t lines = buffered_lines_;
    buffered_lines_ = 0;
    {
        const std::lock_guard lock(mutex_);
        if (queued_bytes_ + full.size() > most_queued) {
            dropped_.fetch_add(lines, std::memory_order_relaxed);
            return;
        }
        queued_bytes_ += full.size();
        queue_.push_back(std::move(full));
    }
    wake_.notify_one();
}

void access_log::reopen() {
    {
        const std::lock_guard lock(mutex_);
        reopen_ = true;
    }
    wake_.notify_one();
}

void access_log::write_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || reopen_ || !queue_.empty(); });
        std::deque<std::string> batch;
        batch.swap(queue_);
        queued_bytes_ = 0;
        const bool reopen = std::exchange(reopen_, false);
        const bool stop = stopping_;
        lock.unlock();
        for (const auto& b : batch) {
            std::size_t done = 0;
            while (done < b.size()) {
                const ssize_t n = ::write(fd_, b.data() + done, b.size() - done);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;  // a full disk: this buffer is lost, the next one tries again
                done += static_cast<std::size_t>(n);
            }
        }
        if (reopen && fd_ != STDOUT_FILENO) {
            const int fd = ::open(settings_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                                  0640);
            if (fd >= 0) {
                ::close(fd_);
                fd_ = fd;
            }
        }
        if (stop) return;
        lock.lock();
    }
}

}  // namespace porthole::observe
