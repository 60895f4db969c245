#pragma once
// The process's own figures, read from /proc/self at scrape time: CPU, descriptors, memory
// (resident, and PSS and private from smaps_rollup, where shared libraries do not count whole),
// start time. Linux only; a figure that cannot be read is left at zero.
#include <cstdint>

namespace porthole::observe {

struct process_stats {
    double cpu_seconds = 0;
    std::uint64_t open_fds = 0;
    std::uint64_t max_fds = 0;
    std::uint64_t resident_bytes = 0;
    std::uint64_t virtual_bytes = 0;
    std::uint64_t pss_bytes = 0;
    std::uint64_t private_bytes = 0;
    double start_time_seconds = 0;  // since the epoch
};

process_stats read_process_stats();

class prom_text;
// porthole_build_info, the process_* families every Prometheus client library writes (so their
// dashboards work), and PSS and private memory: how the relay's and the client's scrapes end.
void write_process_metrics(prom_text& out, const process_stats& process);

}  // namespace porthole::observe
