#include "core/printable.hpp"

namespace porthole::core {

std::string printable(std::string_view peer_text) {
    std::string out;
    out.reserve(peer_text.size());
    append_printable(out, peer_text);
    return out;
}

void append_printable(std::string& out, std::string_view peer_text) {
    static constexpr char digits[] = "0123456789abcdef";
    for (const char c : peer_text) {
        const auto b = static_cast<unsigned char>(c);
        if (b >= 0x20 && b < 0x7f && b != '\\') {
            out.push_back(c);
        } else {
            out.append("\\x");
            out.push_back(digits[b >> 4]);
            out.push_back(digits[b & 15]);
        }
    }
}

}  // namespace porthole::core
