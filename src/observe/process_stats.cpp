#include "observe/process_stats.hpp"

#include "observe/prom_text.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace porthole::observe {
namespace {

// "Pss:  1234 kB" -> bytes, from smaps_rollup's lines.
std::uint64_t kib_field(const std::string& text, std::string_view name) {
    std::uint64_t total = 0;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with(name) && line.size() > name.size() && line[name.size()] == ':')
            total += std::stoull(line.substr(name.size() + 1)) * 1024;
    return total;
}

std::string read_all(const char* path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

process_stats read_process_stats() {
    process_stats p;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    // /proc/self/stat: the command name may hold spaces and parentheses; fields follow the last ')'.
    const std::string stat = read_all("/proc/self/stat");
    if (const auto close = stat.rfind(')'); close != std::string::npos) {
        std::istringstream fields(stat.substr(close + 2));
        std::string f;
        std::uint64_t utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
        for (int i = 3; fields >> f; ++i) {  // field numbers as proc(5) counts them
            if (i == 14) utime = std::stoull(f);
            else if (i == 15) stime = std::stoull(f);
            else if (i == 22) start = std::stoull(f);
            else if (i == 23) vsize = std::stoull(f);
            else if (i == 24) {
                rss = std::stoull(f);
                break;
            }
        }
        p.cpu_seconds = static_cast<double>(utime + stime) / ticks;
        p.virtual_bytes = vsize;
        p.resident_bytes = rss * page;
        const std::string boot = read_all("/proc/stat");
        if (const auto at = boot.find("\nbtime "); at != std::string::npos)
            p.start_time_seconds = static_cast<double>(std::stoull(boot.substr(at + 7))) +
                                   static_cast<double>(start) / ticks;
    }
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec))
        ++p.open_fds;
    if (p.open_fds > 0) --p.open_fds;  // the directory iterator's own descriptor
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) p.max_fds = lim.rlim_cur;
    const std::string rollup = read_all("/proc/self/smaps_rollup");
    p.pss_bytes = kib_field(rollup, "Pss");
    p.private_bytes = kib_field(rollup, "Private_Clean") + kib_field(rollup, "Private_Dirty");
    return p;
}

void write_process_metrics(prom_text& out, const process_stats& process) {
    out.family("porthole_build_info", "gauge", "The running version.");
    out.sample("porthole_build_info", {{"version", PORTHOLE_VERSION}}, std::uint64_t{1});

    // Each family has one sample, without labels.
    const auto single = [&out](std::string_view name, std::string_view type,
                               std::string_view help, auto value) {
        out.family(name, type, help);
        out.sample(name, {}, value);
    };
    single("process_cpu_seconds_total", "counter", "User and system CPU time spent.",
           process.cpu_seconds);
    single("process_open_fds", "gauge", "Open file descriptors.", process.open_fds);
    single("process_max_fds", "gauge", "The descriptor limit.", process.max_fds);
    single("process_resident_memory_bytes", "gauge", "Resident memory (VmRSS).",
           process.resident_bytes);
    single("process_virtual_memory_bytes", "gauge", "Virtual memory.", process.virtual_bytes);
    single("process_start_time_seconds", "gauge", "Start time, seconds since the epoch.",
           process.start_time_seconds);
    single("porthole_memory_pss_bytes", "gauge",
           "Proportional set size: shared pages count by their share.", process.pss_bytes);
    single("porthole_memory_private_bytes", "gauge", "Memory this process alone uses.",
           process.private_bytes);
}

}  // namespace porthole::observe
