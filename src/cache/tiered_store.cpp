#include "cache/tiered_store.hpp"

#include <algorithm>

namespace porthole::cache {

tiered_store::tiered_store(std::size_t memory, std::size_t max_entry,
                           std::shared_ptr<disk_store> disk)
    : memory_(memory, max_entry), disk_(std::move(disk)) {}

std::vector<entry> tiered_store::find(std::string_view key) {
    auto found = memory_.find(key);
    if (!found.empty()) return found;
    found = disk_->find(key);
    // Back into memory, oldest first so that the most recent ends up first again.
    const std::string k(key);
    for (auto it = found.rbegin(); it != found.rend(); ++it) memory_.put(k, *it);
    return found;
}

bool tiered_store::put(const std::string& key, entry e) {
    const bool in_memory = memory_.put(key, e);
    const bool on_disk = disk_->put(key, std::move(e));
    return in_memory || on_disk;
}

std::size_t tiered_store::remove(std::string_view key) {
    const std::size_t m = memory_.remove(key);
    return std::max(m, disk_->remove(key));
}

std::size_t tiered_store::remove_prefix(std::string_view prefix) {
    const std::size_t m = memory_.remove_prefix(prefix);
    return std::max(m, disk_->remove_prefix(prefix));
}

}  // namespace porthole::cache
