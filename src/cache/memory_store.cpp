#include "cache/memory_store.hpp"

#include <algorithm>

namespace porthole::cache {

memory_store::memory_store(std::size_t budget, std::size_t max_entry)
    : budget_(budget), max_entry_(std::min(max_entry, budget)) {}

std::vector<entry> memory_store::find(std::string_view key) {
    const auto it = slots_.find(std::string(key));
    if (it == slots_.end()) return {};
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.variants;
}

bool memory_store::put(const std::string& key, entry e) {
    const std::size_t size = e->bytes();
    if (size > max_entry_) return false;
    auto it = slots_.find(key);
    if (it != slots_.end()) {
        auto& variants = it->second.variants;
        // The variant the same request values chose before is replaced.
        const auto same = std::find_if(variants.begin(), variants.end(), [&](const entry& v) {
            return v->vary_values == e->vary_values;
        });
        if (same != variants.end()) {
            bytes_ -= (*same)->bytes();
            --entries_;
            variants.erase(same);
        }
    }
    evict_for(size);
    it = slots_.find(key);  // eviction may have dropped it
    if (it == slots_.end()) {
        lru_.push_front(key);
        it = slots_.emplace(key, slot{{}, lru_.begin()}).first;
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
    }
    it->second.variants.insert(it->second.variants.begin(), std::move(e));
    bytes_ += size;
    ++entries_;
    return true;
}

void memory_store::evict_for(std::size_t incoming) {
    while (bytes_ + incoming > budget_ && !lru_.empty()) drop(slots_.find(lru_.back()));
}

void memory_store::drop(std::unordered_map<std::string, slot>::iterator it) {
    for (const auto& v : it->second.variants) bytes_ -= v->bytes();
    entries_ -= it->second.variants.size();
    lru_.erase(it->second.lru);
    slots_.erase(it);
}

std::size_t memory_store::remove(std::string_view key) {
    const auto it = slots_.find(std::string(key));
    if (it == slots_.end()) return 0;
    const std::size_t n = it->second.variants.size();
    drop(it);
    return n;
}

std::size_t memory_store::remove_prefix(std::string_view prefix) {
    std::size_t n = 0;
    for (auto it = slots_.begin(); it != slots_.end();) {
        const auto next = std::next(it);
        if (std::string_view(it->first).starts_with(prefix)) {
            n += it->second.variants.size();
            drop(it);
        }
        it = next;
    }
    return n;
}

}  // namespace porthole::cache
