#pragma once
// Read buffers for HTTP connections. A kept-alive connection gives its buffer back while it waits
// for the next request (so thousands of idle ones hold none) and takes one again when bytes come:
// blocks of the usual size are recycled through a per-thread cache instead of malloc and free.
#include <boost/beast/core/flat_buffer.hpp>

#include <cstddef>
#include <new>
#include <vector>

namespace porthole::net {

constexpr std::size_t io_block_size = 16 * 1024;  // what one read asks for

namespace detail {
class block_cache {
public:
    static constexpr std::size_t kept = 32;  // 512 KiB at most, per thread
    void* take() {
        if (free_.empty()) return ::operator new(io_block_size);
        void* p = free_.back();
        free_.pop_back();
        return p;
    }
    void give(void* p) {
        if (free_.size() < kept)
            free_.push_back(p);
        else
            ::operator delete(p);
    }
    ~block_cache() {
        for (void* p : free_) ::operator delete(p);
    }

private:
    std::vector<void*> free_;
};
inline thread_local block_cache io_blocks;
}  // namespace detail

template <class T>
struct block_allocator {
    using value_type = T;
    block_allocator() = default;
    template <class U>
    block_allocator(const block_allocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        if (n * sizeof(T) == io_block_size) return static_cast<T*>(detail::io_blocks.take());
        return static_cast<T*>(::operator new(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (n * sizeof(T) == io_block_size)
            detail::io_blocks.give(p);
        else
            ::operator delete(p);
    }
    template <class U>
    bool operator==(const block_allocator<U>&) const noexcept {
        return true;
    }
};

using io_buffer = boost::beast::basic_flat_buffer<block_allocator<char>>;

}  // namespace porthole::net
