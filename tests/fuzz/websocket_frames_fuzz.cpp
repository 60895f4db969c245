// Any byte stream after an upgrade, split anywhere, with and without permessage-deflate: the reader
// never crashes, keeps at most its limit of each payload, and stops for good once it fails.
#include "http/websocket_frames.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t control = data[0];
    std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    porthole::http::ws_deflate deflate;
    deflate.enabled = (control & 1) != 0;
    deflate.reset_each_message = (control & 2) != 0;
    deflate.window_bits = 8 + (control >> 4) % 8;
    constexpr std::size_t limit = 64;
    porthole::http::ws_frame_reader reader(limit, deflate);
    const std::size_t step = 1 + (control >> 2) % 13;
    bool failed = false;
    while (!bytes.empty()) {
        const auto piece = bytes.substr(0, step);
        bytes.remove_prefix(piece.size());
        auto frames = reader.feed(piece);
        if (failed && !frames.empty()) std::abort();
        for (const auto& f : frames)
            if (f.payload.size() > limit || (!f.compressed && f.payload.size() > f.size)) std::abort();
        failed = reader.failed();
    }
    return 0;
}
