// The cache's disk tier: its file format and each check on it, what a restart finds again, a
// file damaged or cut short, its budget, its directory lock, a failing disk, and the two tiers
// together.
#include "cache/disk_store.hpp"
#include "cache/tiered_store.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace porthole::cache {
namespace {

namespace fs = std::filesystem;

using test_support::temp_dir;

entry response(std::string body, std::vector<std::pair<std::string, std::string>> vary = {}) {
    auto s = std::make_shared<stored_response>();
    s->status = 200;
    s->fields = {{"Content-Type", "text/plain"}, {"Cache-Control", "max-age=60"},
                 {"ETag", "\"v1\""}};
    s->facts = facts_of(200, s->fields);
    s->facts.age = 7;
    s->lifetime = 60;
    s->request_time = 1000;
    s->response_time = 1001;
    s->body = std::move(body);
    s->vary_values = std::move(vary);
    return s;
}

// Every file of entries under `dir` (not the lock).
std::vector<fs::path> entry_files(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename() != "lock") out.push_back(e.path());
    return out;
}

TEST(DiskStore, FileFormatRoundTripsAndEveryCheckHolds) {
    const auto e = response("hello, disk", {{"accept-encoding", "gzip"}});
    const std::string bytes = disk_store::encode("http://a.test/x", *e);
    const auto d = disk_store::decode(bytes);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->key, "http://a.test/x");
    EXPECT_EQ(d->stored->status, 200u);
    EXPECT_EQ(d->stored->body, "hello, disk");
    EXPECT_EQ(d->stored->lifetime, 60u);
    EXPECT_EQ(d->stored->request_time, 1000);
    EXPECT_EQ(d->stored->response_time, 1001);
    EXPECT_EQ(d->stored->facts.age, 7u);
    EXPECT_EQ(d->stored->facts.cc.max_age, 60u);  // facts are made again from the fields
    ASSERT_EQ(d->stored->fields.size(), 3u);
    EXPECT_EQ(d->stored->fields[2].value, "\"v1\"");
    EXPECT_EQ(d->stored->vary_values, e->vary_values);
    // Any one byte changed, or any length cut off, and the file is refused.
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string damaged = bytes;
        damaged[i] = static_cast<char>(damaged[i] ^ 0x20);
        EXPECT_FALSE(disk_store::decode(damaged)) << "byte " << i;
        EXPECT_FALSE(disk_store::decode(std::string_view(bytes).substr(0, i))) << "cut at " << i;
    }
    EXPECT_FALSE(disk_store::decode(bytes + "x"));
}

TEST(DiskStore, ARestartFindsWhatWasStored) {
    temp_dir dir;
    {
        auto store = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
        ASSERT_TRUE(store) << store.error();
        EXPECT_TRUE((*store)->put("http://a.test/1", response("one")));
        EXPECT_TRUE((*store)->put("http://a.test/2", response("gzip", {{"accept-encoding", "gzip"}})));
        EXPECT_TRUE((*store)->put("http://a.test/2", response("br", {{"accept-encoding", "br"}})));
        EXPECT_TRUE((*store)->put("http://a.test/1", response("one, again")));  // replaces
        EXPECT_EQ((*store)->entries(), 3u);
    }
    EXPECT_EQ(entry_files(dir.path).size(), 3u);
    auto store = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
    ASSERT_TRUE(store) << store.error();
    EXPECT_EQ((*store)->entries(), 3u);
    EXPECT_EQ((*store)->variants("http://a.test/2"), 2u);
    const auto one = (*store)->find("http://a.test/1");
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0]->body, "one, again");
    EXPECT_EQ((*store)->find("http://a.test/2").size(), 2u);
    EXPECT_TRUE((*store)->find("http://a.test/3").empty());
    EXPECT_EQ((*store)->counts().reads, 3u);
    // A prefix purge after a restart learns the keys from the files.
    EXPECT_EQ((*store)->remove_prefix("http://a.test/2"), 2u);
    EXPECT_EQ((*store)->remove("http://a.test/1"), 1u);
    EXPECT_EQ((*store)->entries(), 0u);
    EXPECT_TRUE(entry_files(dir.path).empty());
}

TEST(DiskStore, ADamagedOrShortFileIsDroppedNotServed) {
    temp_dir dir;
    {
        auto store = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
        ASSERT_TRUE(store);
        (*store)->put("http://a.test/damaged", response(std::string(4000, 'd')));
        (*store)->put("http://a.test/short", response(std::string(4000, 's')));
    }
    for (const auto& f : entry_files(dir.path)) {
        std::string bytes;
        {
            std::ifstream in(f, std::ios::binary);
            bytes.assign(std::istreambuf_iterator<char>(in), {});
        }
        if (bytes.find("damaged") != std::string::npos)
            bytes[bytes.size() - 100] = 'X';  // one byte of the body, as a bad sector would
        else
            bytes.resize(bytes.size() / 2);  // a crash before the data reached the disk
        std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes;
    }
    std::ofstream(dir.path / "0123.7.tmp") << "a write a crash interrupted";
    auto store = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
    ASSERT_TRUE(store);
    EXPECT_FALSE(fs::exists(dir.path / "0123.7.tmp"));
    EXPECT_EQ((*store)->entries(), 2u);
    EXPECT_TRUE((*store)->find("http://a.test/damaged").empty());
    EXPECT_TRUE((*store)->find("http://a.test/short").empty());
    EXPECT_EQ((*store)->counts().corrupt, 2u);
    EXPECT_EQ((*store)->entries(), 0u);
    EXPECT_TRUE(entry_files(dir.path).empty());  // the files went too
}

TEST(DiskStore, KeepsItsBudgetLeastRecentlyUsedFirst) {
    temp_dir dir;
    const std::size_t one = disk_store::encode("http://a.test/a", *response(std::string(1000, 'x'))).size();
    auto store = disk_store::open(dir.path.string(), 3 * one + 10, 1 << 20);
    ASSERT_TRUE(store);
    auto& s = **store;
    for (const char* k : {"http://a.test/a", "http://a.test/b", "http://a.test/c"})
        EXPECT_TRUE(s.put(k, response(std::string(1000, 'x'))));
    EXPECT_EQ(s.find("http://a.test/a").size(), 1u);  // a is now the most recent
    EXPECT_TRUE(s.put("http://a.test/d", response(std::string(1000, 'x'))));
    EXPECT_EQ(s.variants("http://a.test/b"), 0u);
    EXPECT_EQ(s.variants("http://a.test/a"), 1u);
    EXPECT_LE(s.bytes(), 3 * one + 10);
    EXPECT_EQ(entry_files(dir.path).size(), 3u);
    EXPECT_FALSE(s.put("http://a.test/big", response(std::string(8000, 'x'))));
    // A smaller budget on reload evicts at once.
    s.resize(one + 10, 1 << 20);
    EXPECT_EQ(s.entries(), 1u);
    EXPECT_EQ(entry_files(dir.path).size(), 1u);
}

TEST(DiskStore, OneStorePerDirectoryAndNoneInADirectoryAnotherHolds) {
    temp_dir dir;
    auto first = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
    ASSERT_TRUE(first);
    // A reload's new cache for the same directory takes over the same store.
    auto again = disk_store::open(dir.path.string() + "/", 2 << 20, 1 << 20);
    ASSERT_TRUE(again);
    EXPECT_EQ(first->get(), again->get());
    first->reset();
    again->reset();
    // Another process's lock (another open file description here) is refused.
    const int fd = ::open((dir.path / "lock").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    const auto refused = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
    ::close(fd);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("in use by another process"), std::string::npos);
    const auto unwritable = disk_store::open("/proc/porthole-cache", 1 << 20, 1 << 20);
    ASSERT_FALSE(unwritable);
    EXPECT_NE(unwritable.error().find("/proc/porthole-cache"), std::string::npos);
}

TEST(DiskStore, AFailingWriteTurnsTheTierOffAndTheCacheGoesOnInMemory) {
    temp_dir dir;
    auto disk = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
    ASSERT_TRUE(disk);
    tiered_store store(1 << 20, 1 << 20, *disk);
    // Files may not grow past 100 bytes now, as on a full disk: writes fail (EFBIG here).
    rlimit old{};
    ::getrlimit(RLIMIT_FSIZE, &old);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small{100, old.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    const bool stored = store.put("http://a.test/x", response(std::string(1000, 'x')));
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    EXPECT_TRUE(stored);  // in memory
    EXPECT_FALSE((*disk)->writing());
    EXPECT_EQ((*disk)->counts().failed, 1u);
    EXPECT_EQ((*disk)->entries(), 0u);
    EXPECT_TRUE(entry_files(dir.path).empty());  // the partial temporary file is gone
    EXPECT_EQ(store.find("http://a.test/x").size(), 1u);
    // While off, nothing is written (nor tried).
    EXPECT_TRUE(store.put("http://a.test/y", response("y")));
    EXPECT_EQ((*disk)->counts().failed, 1u);
    EXPECT_EQ((*disk)->entries(), 0u);
}

TEST(TieredStore, MemoryInFrontOfDisk) {
    temp_dir dir;
    auto disk = disk_store::open(dir.path.string(), 1 << 20, 1 << 20);
    ASSERT_TRUE(disk);
    const std::size_t one = response(std::string(1000, 'x'))->bytes();
    // Memory for one entry only: the other is read back from disk.
    tiered_store store(one + 10, 1 << 20, *disk);
    EXPECT_TRUE(store.put("http://a.test/a", response(std::string(1000, 'a'))));
    EXPECT_TRUE(store.put("http://a.test/b", response(std::string(1000, 'b'))));
    EXPECT_EQ(store.entries(), 1u);
    EXPECT_EQ((*disk)->entries(), 2u);
    const auto a = store.find("http://a.test/a");
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0]->body, std::string(1000, 'a'));
    EXPECT_EQ((*disk)->counts().reads, 1u);
    EXPECT_EQ(store.find("http://a.test/a").size(), 1u);  // now from memory
    EXPECT_EQ((*disk)->counts().reads, 1u);
    EXPECT_EQ(store.remove_prefix("http://a.test/"), 2u);
    EXPECT_TRUE(store.find("http://a.test/b").empty());
    EXPECT_EQ((*disk)->entries(), 0u);
}

}  // namespace
}  // namespace porthole::cache
