#pragma once
// Open visitor connections per address group, shared by a relay's event loops: counted when a
// connection is accepted and when it closes, never per request, under one of 16 locks chosen by
// the group's hash so loops seldom meet on one.
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace porthole::relay {

class visitor_table {
public:
    // One more connection from `group`: the count it makes.
    std::uint32_t open(const std::string& group);
    void close(const std::string& group);

private:
    struct shard {
        std::mutex m;
        std::unordered_map<std::string, std::uint32_t> counts;
    };
    shard& shard_of(const std::string& group) {
        return shards_[std::hash<std::string>{}(group) % shards_.size()];
    }
    std::array<shard, 16> shards_;
};

}  // namespace porthole::relay
