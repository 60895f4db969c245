#pragma once
// The disk tier of a cache: one file per stored variant under a directory the relay owns, found
// again after a restart or a crash. A file is written whole under a temporary name and renamed,
// and carries its own length and a CRC-32 of everything in it: a file cut short by a crash or
// damaged on disk is dropped when read, never served. A byte budget over the files is kept by
// evicting the least recently used key (after a restart: the least recently written). A write
// that fails (a full disk) turns the tier off for a minute: the cache goes on in memory.
//
// A file: "PHCACHE1", the header's length (4 bytes), the body's (8), a CRC-32 of header and body
// (4), then the header (key, status, lifetime, request and response time, received Age, flags,
// fields, Vary values; integers little-endian, texts after their 4-byte length) and the body.
//
// Reads and writes are plain system calls on the calling loop's thread, as nginx's are: small
// entries come from the page cache; the largest is max_object. Every event loop may use the store
// (one mutex, held for each call: a read or write of one file at most).
#include "cache/response_store.hpp"

#include <tl/expected.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace porthole::cache {

struct disk_counters {
    std::uint64_t reads = 0;      // entries read back from disk
    std::uint64_t writes = 0;     // entries written
    std::uint64_t corrupt = 0;    // files dropped because they failed their checks
    std::uint64_t failed = 0;     // writes that failed (the tier was off afterwards)
};

class disk_store final : public response_store {
public:
    // The store of `dir`, shared by every cache of this process given the same directory (a
    // reload's new caches take over the old ones' files). Creates the directory, removes the
    // temporary files a crash left, indexes the rest and keeps to `budget`. Fails when the
    // directory cannot be made or written, or another process holds it.
    static tl::expected<std::shared_ptr<disk_store>, std::string> open(
        const std::string& dir, std::size_t budget, std::size_t max_entry);
    ~disk_store() override;
    disk_store(const disk_store&) = delete;
    disk_store& operator=(const disk_store&) = delete;

    std::vector<entry> find(std::string_view key) override;
    bool put(const std::string& key, entry e) override;
    std::size_t remove(std::string_view key) override;
    std::size_t remove_prefix(std::string_view prefix) override;
    std::size_t bytes() const override;
    std::size_t entries() const override;

    // How many variants of `key` are on disk (without reading them).
    std::size_t variants(std::string_view key) const;
    // A reload's new settings for the same directory.
    void resize(std::size_t budget, std::size_t max_entry);
    const std::string& dir() const { return dir_; }
    std::size_t budget() const { return budget_; }
    bool writing() const;  // false while a failed write keeps the tier off
    disk_counters counts() const;

    // The bytes of a file for `key` and `e` (exposed for tests and the fuzzer), and what a
    // file's bytes hold: nullopt when they fail any check.
    static std::string encode(const std::string& key, const stored_response& e);
    struct decoded {
        std::string key;
        entry stored;
    };
    static std::optional<decoded> decode(std::string_view bytes);

private:
    disk_store(std::string dir, int lock_fd, std::size_t budget, std::size_t max_entry);
    struct file {
        std::string name;  // KEYDIGEST-VARYDIGEST
        std::uint64_t size = 0;
    };
    struct slot {
        std::vector<file> files;  // most recently written first
        std::list<std::string>::iterator lru;
        std::string key;  // empty until a file of it was read
    };
    using slot_map = std::unordered_map<std::string, slot>;

    void index();
    std::string path_of(const std::string& name) const;
    void drop_file(slot& s, std::size_t i);
    void drop(slot_map::iterator it);
    void evict_for(std::size_t incoming);
    bool learn_key(slot& s);
    void turn_off(const std::string& why);
    bool writing_now() const;

    mutable std::mutex mutex_;  // over everything below but dir_ and lock_fd_
    std::string dir_;
    int lock_fd_ = -1;
    std::size_t budget_;
    std::size_t max_entry_;
    std::size_t bytes_ = 0;
    std::size_t entries_ = 0;
    std::list<std::string> lru_;  // key digests, most recently used first
    slot_map slots_;              // by key digest
    std::chrono::steady_clock::time_point off_until_{};
    disk_counters counts_;
    std::uint64_t temp_serial_ = 0;
};

}  // namespace porthole::cache
