#include "core/service_notify.hpp"

#include <systemd/sd-daemon.h>

#include <ctime>

#include <unistd.h>

#include <fmt/format.h>

namespace porthole::core {
namespace {

void send(const std::string& message) {
    // unset_environment = 0: a process this one starts (a binary upgrade) notifies the same
    // manager. Failing to notify is not a reason to stop serving; systemd's timeout reports it.
    (void)sd_notify(0, message.c_str());
}

}  // namespace

std::string notify_message(std::string_view fields, std::string_view status) {
    std::string out(fields);
    if (status.empty()) return out;
    if (!out.empty()) out += '\n';
    out += "STATUS=";
    for (const char c : status) out += c == '\n' ? ' ' : c;
    return out;
}

void notify_ready(std::string_view status) { send(notify_message("READY=1", status)); }

void notify_reloading() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
                      static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
    send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec));
}

void notify_main_pid() { send(fmt::format("MAINPID={}", ::getpid())); }

void notify_barrier() { (void)sd_notify_barrier(0, 5'000'000); }

void notify_stopping(std::string_view status) { send(notify_message("STOPPING=1", status)); }

void notify_status(std::string_view status) { send(notify_message({}, status)); }

}  // namespace porthole::core
