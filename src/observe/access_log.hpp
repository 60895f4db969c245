#pragma once
// The access log: one line per request, JSON or Apache's combined format, with secrets and query
// values kept out. Lines gather in a 64 KiB buffer on the event loop; a full buffer, or the
// sweeper's flush each second, goes to a writer thread in one swap under a mutex (one lock per
// buffer, not per line) and leaves in one write(). The loop never waits on a disk: past 8 MiB
// queued, lines are dropped and counted. reopen() (SIGUSR1) makes the writer open the path anew,
// for logrotate.
#include "observe/access_log_settings.hpp"
#include "observe/request_record.hpp"

#include <tl/expected.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace porthole::observe {

// One line for `r`, newline included, appended to `out`. Pure.
void append_log_line(std::string& out, const request_record& r, const access_log_settings& s);
// "/cb?code=1&state=x" -> "/cb?code&state" (names), "/cb" (drop), unchanged (full).
void append_target(std::string& out, std::string_view target, query_logging q);
// 203.0.113.7 -> 203.0.113.0 and 2001:db8:1:2::7 -> 2001:db8:1:: (a /24 and a /48).
std::string anonymized(std::string_view address);

class access_log {
public:
    // Opens the file (O_APPEND, created 0640) and starts the writer.
    static tl::expected<std::unique_ptr<access_log>, std::string> open(access_log_settings s);
    ~access_log();  // what is buffered is written first
    access_log(const access_log&) = delete;
    access_log& operator=(const access_log&) = delete;

    void add(const request_record& r);
    void flush();   // hands the buffer to the writer
    void reopen();  // the writer opens the path again (any thread, a signal handler's post)
    std::uint64_t dropped_lines() const { return dropped_.load(std::memory_order_relaxed); }
    const access_log_settings& settings() const { return settings_; }

private:
    access_log(access_log_settings s, int fd);
    void write_loop();

    static constexpr std::size_t buffer_size = 64 * 1024;
    static constexpr std::size_t most_queued = 8 * 1024 * 1024;

    access_log_settings settings_;
    std::string buffer_;
    std::size_t buffered_lines_ = 0;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::string> queue_;  // guarded by mutex_, as are the three below
    std::size_t queued_bytes_ = 0;
    bool stopping_ = false;
    bool reopen_ = false;
    std::atomic<std::uint64_t> dropped_{0};
    int fd_;  // the writer's alone once it runs
    std::thread writer_;
};

}  // namespace porthole::observe
