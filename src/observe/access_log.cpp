#include "observe/access_log.hpp"

#include "core/printable.hpp"

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

// A JSON string's content: printable ASCII as is, '"' and '\' escaped, every other byte (control
// characters, DEL, bytes of UTF-8 or not) as \u00HH, so a line is always valid JSON.
void append_json_text(std::string& out, std::string_view text) {
    for (const char c : text) {
        const auto b = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (b >= 0x20 && b < 0x7f) {
            out += c;
        } else {
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", b);
        }
    }
}

void append_json_string(std::string& out, std::string_view key, std::string_view value) {
    out += ",\"";
    out += key;
    out += "\":";
    if (value.empty()) {
        out += "null";
        return;
    }
    out += '"';
    append_json_text(out, value);
    out += '"';
}

// A field of the combined format inside quotes: core::printable's rules, and '"' as \x22.
void append_quoted(std::string& out, std::string_view text) {
    const std::size_t from = out.size();
    core::append_printable(out, text.empty() ? std::string_view("-") : text);
    for (std::size_t i = from; i < out.size(); ++i)
        if (out[i] == '"') out.replace(i, 1, "\\x22");
}

std::string_view cut(std::string_view text) { return text.substr(0, longest_header); }

std::tm utc(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    return tm;
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
    const std::tm tm = utc(r.time);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(
                            r.time.time_since_epoch()).count() % 1000;
    std::string target;
    append_target(target, r.target, s.query);
    std::string referer;
    append_target(referer, cut(r.referer), s.query);
    const char* protocol = r.version == 10 ? "HTTP/1.0" : "HTTP/1.1";
    auto o = std::back_inserter(out);
    if (s.format == log_format::json) {
        fmt::format_to(o, "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\"",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, millis);
        append_json_string(out, "visitor", visitor);
        fmt::format_to(o, ",\"tls\":{}", r.tls);
        append_json_string(out, "host", r.host);
        append_json_string(out, "method", r.method);
        append_json_string(out, "path", target);
        append_json_string(out, "protocol", protocol);
        if (r.status == 0)
            out += ",\"status\":null";
        else
            fmt::format_to(o, ",\"status\":{}", r.status);
        fmt::format_to(o, ",\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":{:.3f}", r.bytes_in,
                       r.bytes_out, static_cast<double>(r.duration.count()) / 1000.0);
        if (!r.tunnel.empty()) append_json_string(out, "tunnel", r.tunnel);
        else append_json_string(out, "site", r.site);
        if (r.tunnel.empty()) append_json_string(out, "route", r.route);
        append_json_string(out, "upstream", r.upstream);
        append_json_string(out, "request_id", r.request_id);
        append_json_string(out, "policy", r.policy);
        append_json_string(out, "refusal", r.refusal);
        append_json_string(out, "referer", referer);
        append_json_string(out, "user_agent", cut(r.user_agent));
        if (r.upgraded) out += ",\"upgraded\":true";
        out += "}\n";
        return;
    }
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    core::append_printable(out, visitor.empty() ? std::string_view("-") : visitor);
    fmt::format_to(o, " - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] \"", tm.tm_mday,
                   months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    core::append_printable(out, r.method);
    out += ' ';
    const std::size_t target_at = out.size();
    core::append_printable(out, target);
    for (std::size_t i = target_at; i < out.size(); ++i)
        if (out[i] == '"') out.replace(i, 1, "\\x22");
    fmt::format_to(o, " {}\" ", protocol);
    if (r.status == 0) out += '-';
    else fmt::format_to(o, "{}", r.status);
    fmt::format_to(o, " {} \"", r.bytes_out);
    append_quoted(out, referer);
    out += "\" \"";
    append_quoted(out, cut(r.user_agent));
    fmt::format_to(o, "\" {} {:.3f} ", r.bytes_in, static_cast<double>(r.duration.count()) / 1e6);
    core::append_printable(out, r.host.empty() ? std::string_view("-") : r.host);
    const auto field = [&](std::string_view name, std::string_view value) {
        out += ' ';
        out += name;
        out += '=';
        core::append_printable(out, value.empty() ? std::string_view("-") : value);
    };
    if (!r.tunnel.empty()) field("tunnel", r.tunnel);
    else field("site", r.site);
    field("upstream", r.upstream);
    field("rid", r.request_id);
    field("policy", r.policy.empty() ? r.refusal : r.policy);
    out += '\n';
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
