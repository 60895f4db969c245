#pragma once
// A passive reader of WebSocket framing (RFC 6455 section 5.2): it watches the bytes of one
// direction of an upgraded connection go by and reports each frame, unmasked, without changing
// anything. Messages compressed with permessage-deflate (RFC 7692) are inflated for display.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::http {

struct ws_frame {
    bool fin = false;
    std::uint8_t opcode = 0;
    bool compressed = false;  // RSV1 on the message's first frame, with permessage-deflate on
    std::uint64_t size = 0;  // payload length: inflated, when the message was compressed
    std::uint64_t wire_size = 0;  // payload length on the wire
    std::string payload;  // unmasked (and inflated), up to the reader's limit
    bool truncated = false;  // payload holds less than the whole frame
};

std::string_view opcode_name(std::uint8_t opcode);  // "text", "binary", ... or "" when unknown

// permessage-deflate as agreed in the 101 response's Sec-WebSocket-Extensions.
struct ws_deflate {
    bool enabled = false;
    bool reset_each_message = false;  // this direction's sender uses no_context_takeover
    int window_bits = 15;
};
// `client_to_server` picks the client's or the server's parameters.
ws_deflate parse_ws_deflate(std::string_view extensions, bool client_to_server);

class ws_frame_reader {
public:
    explicit ws_frame_reader(std::size_t payload_limit, ws_deflate deflate = {});
    ~ws_frame_reader();
    ws_frame_reader(ws_frame_reader&&) noexcept;
    ws_frame_reader& operator=(ws_frame_reader&&) noexcept;

    // Reads the next bytes of the stream; returns the frames they complete. Once the bytes are
    // not WebSocket framing, `failed()` turns true and nothing more is reported.
    std::vector<ws_frame> feed(std::string_view bytes);
    bool failed() const { return failed_; }

private:
    void payload_bytes(std::string_view bytes);
    void finish_frame(std::vector<ws_frame>& out);

    std::size_t limit_;
    ws_deflate deflate_;
    struct inflater;
    std::unique_ptr<inflater> inflater_;
    bool failed_ = false;
    bool message_compressed_ = false;
    // The header being read.
    std::uint8_t header_[14]{};
    std::size_t header_have_ = 0;
    // The payload being read.
    bool in_payload_ = false;
    std::uint64_t remaining_ = 0;
    std::uint64_t offset_ = 0;
    std::uint8_t mask_[4]{};
    bool masked_ = false;
    ws_frame current_;
};

}  // namespace porthole::http
