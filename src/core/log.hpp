#pragma once
#include <string_view>

namespace porthole::core {

// Diagnostics go to stderr so stdout stays free for URLs and --json events.
void init_logging(std::string_view level);

}  // namespace porthole::core
