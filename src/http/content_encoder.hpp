#pragma once
// Streaming encoders for the content codings a route may compress with: gzip (zlib), br
// (libbrotli) and zstd (libzstd), behind one interface, so the forwarding core compresses a body
// as its bytes arrive without knowing which. Pure: bytes in, bytes out.
#include "http/accept_encoding.hpp"

#include <cstddef>
#include <memory>
#include <string_view>

namespace porthole::http {

// Bytes an encoder appends to: grows without zero-filling, keeps its memory when cleared.
class byte_buffer {
public:
    std::size_t size() const { return size_; }
    char* data() { return data_.get(); }
    std::string_view view() const { return {data_.get(), size_}; }
    void clear() { size_ = 0; }
    // At least `n` writable bytes after size(); commit() what was written.
    char* prepare(std::size_t n);
    void commit(std::size_t n) { size_ += n; }
    void append(std::string_view s);

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0, capacity_ = 0;
};

enum class encode_step {
    more,    // the encoder may keep what it was given for later
    flush,   // everything given so far can be decoded from the output
    finish,  // the stream ends; reset() before another
};

class content_encoder {
public:
    virtual ~content_encoder() = default;
    virtual content_coding coding() const = 0;
    virtual int level() const = 0;
    // Compresses `in` onto `out`; false when the library fails (then the stream is unusable).
    virtual bool encode(std::string_view in, encode_step step, byte_buffer& out) = 0;
    // Ready for a new stream with the same settings; false when that fails.
    virtual bool reset() = 0;
};

// Hands a finished encoder back to its thread's cache (a few stay there, reset) or frees it.
struct encoder_release {
    void operator()(content_encoder* e) const;
};
using encoder_handle = std::unique_ptr<content_encoder, encoder_release>;

// An encoder for a new stream: one of this thread's cache when it holds one of the same coding
// and level, else a new one; null when the library cannot make one. Levels: gzip 1-9, br 0-11,
// zstd 1-9.
encoder_handle make_encoder(content_coding c, int level);

// How many finished encoders a thread keeps for reuse (the most recently finished): making one
// costs its tables' memory, and each holds that memory while it waits.
inline constexpr std::size_t encoder_cache_size = 4;

}  // namespace porthole::http
