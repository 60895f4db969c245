#pragma once
// Where a cache keeps its responses, by key (scheme, host and target), each key holding the
// variants its Vary fields select. In memory now (memory_store); a disk tier is the second
// implementation. Entries are shared and immutable once stored: a visitor being served one keeps
// it alive after it is evicted or replaced.
#include "cache/stored_response.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::cache {

using entry = std::shared_ptr<const stored_response>;

class response_store {
public:
    virtual ~response_store() = default;
    // The variants stored under `key`, most recently stored first; marks the key as used.
    virtual std::vector<entry> find(std::string_view key) = 0;
    // Stores `e` under `key`, replacing a variant chosen by the same Vary values. False when it
    // is larger than one entry may be.
    virtual bool put(const std::string& key, entry e) = 0;
    // Drops every variant of `key`; how many went.
    virtual std::size_t remove(std::string_view key) = 0;
    // Drops every key that starts with `prefix`; how many variants went.
    virtual std::size_t remove_prefix(std::string_view prefix) = 0;
    virtual std::size_t bytes() const = 0;
    virtual std::size_t entries() const = 0;
};

}  // namespace porthole::cache
