#include "core/heap_trim.hpp"

#if PORTHOLE_JEMALLOC
#include <jemalloc/jemalloc.h>

// jemalloc's settings, read when it starts: one arena (most of the work is on one thread); a
// small per-thread cache, without which every allocation takes the arena's lock (a quarter of
// the proxy path's instructions went to malloc and free), flushed by each tick so that an idle
// process holds nothing back in it; dirty pages kept a second for reuse and then given back;
// muzzy pages not kept. heap_trim purges at once after a burst.
extern "C" {
const char* malloc_conf =
    "narenas:1,tcache:true,tcache_nslots_small_max:32,tcache_nslots_large:4,"
    "dirty_decay_ms:1000,muzzy_decay_ms:0";
}
#else
#include <malloc.h>
#endif

#include <cstdint>

namespace porthole::core {

namespace {

#if PORTHOLE_JEMALLOC
std::size_t read_size(const char* name) {
    std::size_t v = 0;
    std::size_t len = sizeof v;
    return mallctl(name, &v, &len, nullptr, 0) == 0 ? v : 0;
}

// Bytes of unused dirty pages: exactly what a purge gives back.
std::size_t dirty_bytes() {
    std::uint64_t epoch = 1;
    std::size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);  // refreshes the statistics
    // "stats.arenas.<MALLCTL_ARENAS_ALL>.pdirty": dirty pages, every arena.
    return read_size("stats.arenas.4096.pdirty") * read_size("arenas.page");
}

void give_back() {
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
}
#else
std::size_t free_resident() { return mallinfo2().fordblks; }
void give_back() { malloc_trim(0); }
#endif

}  // namespace

void flush_thread_cache() {
#if PORTHOLE_JEMALLOC
    mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
#endif
}

bool heap_trim::tick() {
#if PORTHOLE_JEMALLOC
    // jemalloc says what a purge would give back: purge when that is worth it. (Its own decay
    // gives dirty pages back only as later allocations pass by, so an idle relay would keep
    // them.)
    flush_thread_cache();  // what it holds goes back to the arena, where a purge can reach it
    if (dirty_bytes() < policy_.threshold()) return false;
    give_back();
    return true;
#else
    if (!policy_.due(free_resident())) return false;
    give_back();
    policy_.trimmed(free_resident());
    return true;
#endif
}

}  // namespace porthole::core
