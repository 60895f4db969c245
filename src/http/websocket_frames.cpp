#include "http/websocket_frames.hpp"

#include "http/token_char.hpp"

#include <boost/beast/zlib/inflate_stream.hpp>

#include <algorithm>
#include <cctype>

namespace porthole::http {
namespace {

namespace zlib = boost::beast::zlib;

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// Splits on `sep`, trimming each part.
std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    for (;;) {
        const auto at = s.find(sep);
        parts.push_back(trim_ows(s.substr(0, at)));
        if (at == std::string_view::npos) return parts;
        s.remove_prefix(at + 1);
    }
}

}  // namespace

std::string_view opcode_name(std::uint8_t opcode) {
    switch (opcode) {
    case 0x0: return "continuation";
    case 0x1: return "text";
    case 0x2: return "binary";
    case 0x8: return "close";
    case 0x9: return "ping";
    case 0xA: return "pong";
    default: return "";
    }
}

ws_deflate parse_ws_deflate(std::string_view extensions, bool client_to_server) {
    ws_deflate d;
    for (auto extension : split(extensions, ',')) {
        auto params = split(extension, ';');
        if (!iequal(params.front(), "permessage-deflate")) continue;
        d.enabled = true;
        const std::string_view side = client_to_server ? "client_" : "server_";
        for (std::size_t i = 1; i < params.size(); ++i) {
            const auto eq = params[i].find('=');
            const auto name = trim_ows(params[i].substr(0, eq));
            if (name.substr(0, side.size()) != side) continue;
            const auto rest = name.substr(side.size());
            if (rest == "no_context_takeover") {
                d.reset_each_message = true;
            } else if (rest == "max_window_bits" && eq != std::string_view::npos) {
                auto value = trim_ows(params[i].substr(eq + 1));
                if (!value.empty() && value.front() == '"') value = value.substr(1, value.size() - 2);
                int bits = 0;
                for (char c : value) bits = std::isdigit(static_cast<unsigned char>(c))
                                                ? bits * 10 + (c - '0')
                                                : 99;
                if (bits >= 8 && bits <= 15) d.window_bits = bits;
            }
        }
        return d;  // the first permessage-deflate offer is the one in force
    }
    return d;
}

struct ws_frame_reader::inflater {
    zlib::inflate_stream stream;
};

ws_frame_reader::ws_frame_reader(std::size_t payload_limit, ws_deflate deflate)
    : limit_(payload_limit), deflate_(deflate) {
    if (deflate_.enabled) {
        inflater_ = std::make_unique<inflater>();
        inflater_->stream.reset(deflate_.window_bits);
    }
}
ws_frame_reader::~ws_frame_reader() = default;
ws_frame_reader::ws_frame_reader(ws_frame_reader&&) noexcept = default;
ws_frame_reader& ws_frame_reader::operator=(ws_frame_reader&&) noexcept = default;

std::vector<ws_frame> ws_frame_reader::feed(std::string_view bytes) {
    std::vector<ws_frame> done;
    while (!bytes.empty() && !failed_) {
        if (in_payload_) {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size()));
            payload_bytes(bytes.substr(0, n));
            bytes.remove_prefix(n);
            remaining_ -= n;
            if (remaining_ == 0) finish_frame(done);
            continue;
        }
        header_[header_have_++] = static_cast<std::uint8_t>(bytes.front());
        bytes.remove_prefix(1);
        if (header_have_ < 2) continue;
        const std::uint8_t len7 = header_[1] & 0x7F;
        const std::size_t len_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        const bool masked = (header_[1] & 0x80) != 0;
        const std::size_t need = 2 + len_bytes + (masked ? 4 : 0);
        if (header_have_ < need) continue;
        // A complete header.
        const std::uint8_t opcode = header_[0] & 0x0F;
        const bool rsv1 = (header_[0] & 0x40) != 0;
        if (opcode_name(opcode).empty() || (header_[0] & 0x30) != 0 ||
            (rsv1 && !deflate_.enabled) || (opcode >= 0x8 && ((header_[0] & 0x80) == 0 || len7 > 125))) {
            failed_ = true;
            break;
        }
        std::uint64_t length = len7;
        if (len_bytes != 0) {
            length = 0;
            for (std::size_t i = 0; i < len_bytes; ++i) length = length << 8 | header_[2 + i];
        }
        masked_ = masked;
        if (masked) std::copy_n(header_ + 2 + len_bytes, 4, mask_);
        if (opcode == 0x1 || opcode == 0x2) message_compressed_ = rsv1;
        current_ = ws_frame{};
        current_.fin = (header_[0] & 0x80) != 0;
        current_.opcode = opcode;
        current_.compressed = opcode < 0x8 && message_compressed_;
        current_.size = current_.compressed ? 0 : length;  // inflated bytes are counted as they come
        current_.wire_size = length;
        header_have_ = 0;
        offset_ = 0;
        remaining_ = length;
        in_payload_ = true;
        if (remaining_ == 0) finish_frame(done);
    }
    return done;
}

void ws_frame_reader::payload_bytes(std::string_view bytes) {
    std::string plain;
    std::string_view data = bytes;
    if (masked_) {
        plain.assign(bytes);
        for (std::size_t i = 0; i < plain.size(); ++i) plain[i] ^= static_cast<char>(mask_[(offset_ + i) % 4]);
        data = plain;
    }
    offset_ += bytes.size();
    if (!current_.compressed) {
        if (current_.payload.size() < limit_)
            current_.payload.append(data.substr(0, limit_ - current_.payload.size()));
        if (current_.payload.size() < offset_) current_.truncated = true;  // offset_: bytes so far
        return;
    }
    // Every compressed byte goes through the inflater, so later messages can refer back to it;
    // only the first `limit_` bytes of output are kept.
    char out[16 * 1024];
    zlib::z_params z;
    z.next_in = data.data();
    z.avail_in = data.size();
    boost::system::error_code ec;
    do {
        const std::size_t before = z.avail_in;
        z.next_out = out;
        z.avail_out = sizeof out;
        inflater_->stream.write(z, zlib::Flush::sync, ec);
        const std::size_t produced = sizeof out - z.avail_out;
        current_.size += produced;
        const std::size_t keep = std::min(produced, limit_ - std::min(limit_, current_.payload.size()));
        current_.payload.append(out, keep);
        if (keep < produced) current_.truncated = true;
        if (ec == zlib::error::end_of_stream) {
            // A block marked final ends the stream; a sender may start a new one after it.
            inflater_->stream.reset(deflate_.window_bits);
            ec = {};
        } else if (ec && ec != zlib::error::need_buffers) {
            failed_ = true;
            return;
        } else if (produced == 0 && z.avail_in == before && z.avail_in > 0) {
            failed_ = true;  // input the inflater will not take: stop watching rather than spin
            return;
        }
    } while (z.avail_in > 0 || z.avail_out == 0);
}

void ws_frame_reader::finish_frame(std::vector<ws_frame>& out) {
    in_payload_ = false;
    if (current_.compressed && current_.fin) {
        static constexpr char tail[] = {0x00, 0x00, char(0xFF), char(0xFF)};
        const bool was_masked = masked_;
        masked_ = false;
        const auto offset = offset_;
        payload_bytes({tail, sizeof tail});
        offset_ = offset;
        masked_ = was_masked;
        if (deflate_.reset_each_message) inflater_->stream.reset(deflate_.window_bits);
    }
    if (current_.fin && current_.opcode < 0x8) message_compressed_ = false;
    out.push_back(std::move(current_));
    current_ = ws_frame{};
}

}  // namespace porthole::http
