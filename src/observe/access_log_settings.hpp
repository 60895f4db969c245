#pragma once
// How the access log is written: the `access_log` table of relay.toml.
#include <string>

namespace porthole::observe {

enum class log_format { json, combined };
enum class query_logging { names, drop, full };

struct access_log_settings {
    std::string path;  // "-": standard output
    log_format format = log_format::json;
    query_logging query = query_logging::names;
    bool anonymize_ip = false;
    bool operator==(const access_log_settings&) const = default;
};

}  // namespace porthole::observe
