#include "core/heap_trim.hpp"

#if PORTHOLE_JEMALLOC
#include <jemalloc/jemalloc.h>

// jemalloc's settings, read when it starts: one arena (the relay's work is on one thread), no
// per-thread cache to hold freed objects back, dirty pages kept a second for reuse and then
// given back; muzzy pages not kept. heap_trim purges at once after a burst.
extern "C" {
const char* malloc_conf = "narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
#else
#include <malloc.h>
#endif

#include <cstdint>

namespace porthole::core {

namespace {

#if PORTHOLE_JEMALLOC
// Bytes resident but not allocated: what a burst left behind.
std::size_t free_resident() {
    std::uint64_t epoch = 1;
    std::size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);  // refreshes the statistics
    std::size_t resident = 0, allocated = 0;
    len = sizeof resident;
    mallctl("stats.resident", &resident, &len, nullptr, 0);
    len = sizeof allocated;
    mallctl("stats.allocated", &allocated, &len, nullptr, 0);
    return resident > allocated ? resident - allocated : 0;
}

void give_back() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty pages back to the system.
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
}
#else
std::size_t free_resident() { return mallinfo2().fordblks; }
void give_back() { malloc_trim(0); }
#endif

}  // namespace

bool heap_trim::tick() {
    if (!policy_.due(free_resident())) return false;
    give_back();
    policy_.trimmed(free_resident());
    return true;
}

}  // namespace porthole::core
