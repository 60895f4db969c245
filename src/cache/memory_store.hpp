#pragma once
// The in-memory response store: a byte budget over every variant, kept by evicting the least
// recently used key first (a hit moves its key to the front). LRU because what a relay caches is
// mostly a site's assets, re-read in bursts; its bookkeeping is one list splice per hit.
#include "cache/response_store.hpp"

#include <list>
#include <unordered_map>

namespace porthole::cache {

class memory_store final : public response_store {
public:
    // `budget`: bytes for all entries; `max_entry`: the largest single entry stored.
    memory_store(std::size_t budget, std::size_t max_entry);

    std::vector<entry> find(std::string_view key) override;
    bool put(const std::string& key, entry e) override;
    std::size_t remove(std::string_view key) override;
    std::size_t remove_prefix(std::string_view prefix) override;
    std::size_t bytes() const override { return bytes_; }
    std::size_t entries() const override { return entries_; }

private:
    struct slot {
        std::vector<entry> variants;
        std::list<std::string>::iterator lru;
    };
    void drop(std::unordered_map<std::string, slot>::iterator it);
    void evict_for(std::size_t incoming);

    std::size_t budget_;
    std::size_t max_entry_;
    std::size_t bytes_ = 0;
    std::size_t entries_ = 0;
    std::list<std::string> lru_;  // most recently used first
    std::unordered_map<std::string, slot> slots_;
};

}  // namespace porthole::cache
