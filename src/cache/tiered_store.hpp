#pragma once
// A cache's two tiers as one store: memory in front of disk. Every response goes to both; a key
// memory no longer holds is read back from disk and kept in memory again. Memory evicts whole
// keys, so a key it holds has every variant that disk has for it; disk is read only on a memory
// miss, and a memory hit costs what it costs without a disk tier.
#include "cache/disk_store.hpp"
#include "cache/memory_store.hpp"

#include <memory>

namespace porthole::cache {

class tiered_store final : public response_store {
public:
    tiered_store(std::size_t memory, std::size_t max_entry, std::shared_ptr<disk_store> disk);

    std::vector<entry> find(std::string_view key) override;
    bool put(const std::string& key, entry e) override;
    std::size_t remove(std::string_view key) override;
    std::size_t remove_prefix(std::string_view prefix) override;
    // The memory tier's; the disk tier's are disk()'s.
    std::size_t bytes() const override { return memory_.bytes(); }
    std::size_t entries() const override { return memory_.entries(); }

    const disk_store& disk() const { return *disk_; }

private:
    memory_store memory_;
    std::shared_ptr<disk_store> disk_;
};

}  // namespace porthole::cache
