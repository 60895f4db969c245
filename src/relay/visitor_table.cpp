#include "relay/visitor_table.hpp"

namespace porthole::relay {

std::uint32_t visitor_table::open(const std::string& group) {
    shard& s = shard_of(group);
    const std::lock_guard lock(s.m);
    return ++s.counts[group];
}

void visitor_table::close(const std::string& group) {
    shard& s = shard_of(group);
    const std::lock_guard lock(s.m);
    if (auto it = s.counts.find(group); it != s.counts.end() && --it->second == 0)
        s.counts.erase(it);
}

}  // namespace porthole::relay
