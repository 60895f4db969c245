#pragma once
// Tells the service manager how the process is doing (sd_notify): systemd's Type=notify waits for
// READY=1 before it counts a start as done, so `systemctl start` and units ordered after this one
// see listeners that are already open. Every call does nothing when NOTIFY_SOCKET is unset, as it
// is outside systemd.
#include <string>
#include <string_view>

namespace porthole::core {

// READY=1, with STATUS=status when one is given. Sent again after a reload.
void notify_ready(std::string_view status = {});

// RELOADING=1 with MONOTONIC_USEC= (which systemd 253's Type=notify-reload asks for); READY=1
// follows when the reload is done.
void notify_reloading();

// STOPPING=1, with STATUS=status when one is given: systemd stops waiting for READY or a reload.
void notify_stopping(std::string_view status = {});

// MAINPID=this process: a relay that took over from the unit's main process becomes it.
void notify_main_pid();

// Waits (up to 5 s) until the service manager has handled what was sent before.
void notify_barrier();

// STATUS=status: the line `systemctl status` shows.
void notify_status(std::string_view status);

// The message a call above sends, for tests: "READY=1\nSTATUS=..." (no status line when empty).
// A newline in `status` would start a field of its own, so it becomes a space.
std::string notify_message(std::string_view fields, std::string_view status);

}  // namespace porthole::core
