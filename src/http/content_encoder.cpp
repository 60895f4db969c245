#include "http/content_encoder.hpp"

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace porthole::http {

namespace {

// Output room asked for per library call: enough for a batch of input in one call or two.
std::size_t room_for(std::size_t input) {
    return std::max<std::size_t>(16 * 1024, input / 2 + 1024);
}

class gzip_encoder final : public content_encoder {
public:
    explicit gzip_encoder(int level) : level_(level) {
        // windowBits 15 + 16: a gzip header and trailer around the deflate stream.
        ok_ = deflateInit2(&z_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    }
    ~gzip_encoder() override {
        if (ok_) deflateEnd(&z_);
    }
    gzip_encoder(const gzip_encoder&) = delete;
    gzip_encoder& operator=(const gzip_encoder&) = delete;
    bool ok() const { return ok_; }
    content_coding coding() const override { return content_coding::gzip; }
    int level() const override { return level_; }

    bool encode(std::string_view in, encode_step step, byte_buffer& out) override {
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        const int flush = step == encode_step::more    ? Z_NO_FLUSH
                          : step == encode_step::flush ? Z_SYNC_FLUSH
                                                       : Z_FINISH;
        for (;;) {
            const std::size_t room = room_for(z_.avail_in);
            z_.next_out = reinterpret_cast<Bytef*>(out.prepare(room));
            z_.avail_out = static_cast<uInt>(room);
            const int rc = deflate(&z_, flush);
            out.commit(room - z_.avail_out);
            if (rc == Z_STREAM_ERROR) return false;
            if (step == encode_step::finish) {
                if (rc == Z_STREAM_END) return true;
                continue;
            }
            // Room left over: deflate has taken all the input and given out all it owes.
            if (z_.avail_in == 0 && z_.avail_out != 0) return true;
        }
    }
    bool reset() override { return deflateReset(&z_) == Z_OK; }

private:
    z_stream z_{};
    int level_;
    bool ok_ = false;
};

class brotli_encoder final : public content_encoder {
public:
    explicit brotli_encoder(int level) : level_(level) { make(); }
    ~brotli_encoder() override { BrotliEncoderDestroyInstance(s_); }
    brotli_encoder(const brotli_encoder&) = delete;
    brotli_encoder& operator=(const brotli_encoder&) = delete;
    bool ok() const { return s_ != nullptr; }
    content_coding coding() const override { return content_coding::br; }
    int level() const override { return level_; }

    bool encode(std::string_view in, encode_step step, byte_buffer& out) override {
        const auto op = step == encode_step::more    ? BROTLI_OPERATION_PROCESS
                        : step == encode_step::flush ? BROTLI_OPERATION_FLUSH
                                                     : BROTLI_OPERATION_FINISH;
        const auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
        std::size_t avail_in = in.size();
        for (;;) {
            const std::size_t room = room_for(avail_in);
            auto* next_out = reinterpret_cast<std::uint8_t*>(out.prepare(room));
            std::size_t avail_out = room;
            if (!BrotliEncoderCompressStream(s_, op, &avail_in, &next_in, &avail_out, &next_out,
                                             nullptr))
                return false;
            out.commit(room - avail_out);
            if (op == BROTLI_OPERATION_FINISH) {
                if (BrotliEncoderIsFinished(s_)) return true;
                continue;
            }
            if (avail_in == 0 && !BrotliEncoderHasMoreOutput(s_)) return true;
        }
    }
    // libbrotli 1.0 has no reset: a new instance.
    bool reset() override {
        BrotliEncoderDestroyInstance(s_);
        make();
        return s_ != nullptr;
    }

private:
    void make() {
        s_ = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
        if (!s_) return;
        BrotliEncoderSetParameter(s_, BROTLI_PARAM_QUALITY, static_cast<std::uint32_t>(level_));
        // A 512 KiB window (the default is 4 MiB): memory per response stays bounded.
        BrotliEncoderSetParameter(s_, BROTLI_PARAM_LGWIN, 19);
    }
    BrotliEncoderState* s_ = nullptr;
    int level_;
};

class zstd_encoder final : public content_encoder {
public:
    explicit zstd_encoder(int level) : c_(ZSTD_createCCtx()), level_(level) {
        // A 512 KiB window at every level, as brotli's: what a visitor must hold to decode.
        if (c_ && (ZSTD_isError(ZSTD_CCtx_setParameter(c_, ZSTD_c_compressionLevel, level)) ||
                   ZSTD_isError(ZSTD_CCtx_setParameter(c_, ZSTD_c_windowLog, 19)))) {
            ZSTD_freeCCtx(c_);
            c_ = nullptr;
        }
    }
    ~zstd_encoder() override { ZSTD_freeCCtx(c_); }
    zstd_encoder(const zstd_encoder&) = delete;
    zstd_encoder& operator=(const zstd_encoder&) = delete;
    bool ok() const { return c_ != nullptr; }
    content_coding coding() const override { return content_coding::zstd; }
    int level() const override { return level_; }

    bool encode(std::string_view in, encode_step step, byte_buffer& out) override {
        const auto mode = step == encode_step::more    ? ZSTD_e_continue
                          : step == encode_step::flush ? ZSTD_e_flush
                                                       : ZSTD_e_end;
        ZSTD_inBuffer input{in.data(), in.size(), 0};
        for (;;) {
            const std::size_t room = room_for(input.size - input.pos);
            ZSTD_outBuffer output{out.prepare(room), room, 0};
            const std::size_t left = ZSTD_compressStream2(c_, &output, &input, mode);
            out.commit(output.pos);
            if (ZSTD_isError(left)) return false;
            if (mode == ZSTD_e_continue ? input.pos == input.size : left == 0) return true;
        }
    }
    bool reset() override {
        return !ZSTD_isError(ZSTD_CCtx_reset(c_, ZSTD_reset_session_only));
    }

private:
    ZSTD_CCtx* c_;
    int level_;
};

template <class Encoder>
encoder_handle made(int level) {
    auto e = std::make_unique<Encoder>(level);
    if (!e->ok()) return nullptr;
    return encoder_handle(e.release());
}

struct encoder_cache {
    std::vector<std::unique_ptr<content_encoder>> idle;
};

encoder_cache& cache() {
    static thread_local encoder_cache c;
    return c;
}

}  // namespace

char* byte_buffer::prepare(std::size_t n) {
    if (capacity_ - size_ < n) {
        const std::size_t grown = std::max(size_ + n, 2 * capacity_);
        auto bigger = std::make_unique_for_overwrite<char[]>(grown);
        if (size_ != 0) std::memcpy(bigger.get(), data_.get(), size_);
        data_ = std::move(bigger);
        capacity_ = grown;
    }
    return data_.get() + size_;
}

void byte_buffer::append(std::string_view s) {
    if (s.empty()) return;
    std::memcpy(prepare(s.size()), s.data(), s.size());
    size_ += s.size();
}

void encoder_release::operator()(content_encoder* e) const {
    std::unique_ptr<content_encoder> owned(e);
    if (!owned->reset()) return;
    auto& idle = cache().idle;
    if (idle.size() >= encoder_cache_size) idle.erase(idle.begin());  // the longest unused
    idle.push_back(std::move(owned));
}

encoder_handle make_encoder(content_coding c, int level) {
    auto& idle = cache().idle;
    for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
        if ((*it)->coding() != c || (*it)->level() != level) continue;
        encoder_handle reused(it->release());
        idle.erase(std::next(it).base());
        return reused;
    }
    switch (c) {
        case content_coding::gzip: return made<gzip_encoder>(level);
        case content_coding::br: return made<brotli_encoder>(level);
        case content_coding::zstd: return made<zstd_encoder>(level);
    }
    return nullptr;
}

}  // namespace porthole::http
