#pragma once
// Memory a burst of connections took and then freed goes back to the OS. The allocator keeps
// freed pages for reuse (jemalloc for a second, glibc for good when they sit inside its heap);
// a process calls heap_trim::tick() about once a second, and it gives them back: jemalloc's
// purge when its unused dirty pages reach a threshold, glibc's malloc_trim when the free heap
// has grown by the threshold since its lowest point. Steady traffic pays one statistics read a
// second and nothing per request.
#include <algorithm>
#include <cstddef>
#include <limits>

namespace porthole::core {

// When to trim: once the free heap is `threshold` bytes above the least it was since the last
// trim (a burst took memory, then freed it). Pure, for tests.
class trim_policy {
public:
    explicit trim_policy(std::size_t threshold) : threshold_(threshold) {}
    bool due(std::size_t free_bytes) {
        low_ = std::min(low_, free_bytes);
        return free_bytes - low_ >= threshold_;
    }
    // Pages given back still count as free heap: the next trim waits for a new low and rise.
    void trimmed(std::size_t free_bytes) { low_ = free_bytes; }
    std::size_t threshold() const { return threshold_; }

private:
    std::size_t threshold_;
    std::size_t low_ = std::numeric_limits<std::size_t>::max();
};

class heap_trim {
public:
    static constexpr std::size_t default_threshold = 2 * 1024 * 1024;
    explicit heap_trim(std::size_t threshold = default_threshold) : policy_(threshold) {}
    // True when it trimmed.
    bool tick();

private:
    trim_policy policy_;
};

// What the allocator's cache of the calling thread holds goes back to the shared heap (tick()
// does it for its own thread; other event loops call this about once a second).
void flush_thread_cache();

}  // namespace porthole::core
