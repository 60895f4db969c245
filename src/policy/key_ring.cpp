#include "policy/key_ring.hpp"

namespace porthole::policy {

key_ring::key_ring(std::string secret, key_set keys)
    : secret_(std::move(secret)), keys_(std::make_shared<const key_set>(std::move(keys))) {}

key_ring::snapshot key_ring::keys() const {
    const std::lock_guard lock(mutex_);
    return {keys_, generation_.load(std::memory_order_relaxed)};
}

bool key_ring::replace(key_set keys) {
    const std::lock_guard lock(mutex_);
    if (keys == *keys_) return false;
    keys_ = std::make_shared<const key_set>(std::move(keys));
    generation_.fetch_add(1, std::memory_order_release);
    return true;
}

}  // namespace porthole::policy
