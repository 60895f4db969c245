#include "core/sha256.hpp"

#include <openssl/sha.h>

#include <algorithm>

namespace porthole::core {

sha256_digest sha256(std::string_view text) {
    sha256_digest out{};
    SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
    return out;
}

std::string sha256_bytes(std::string_view text) {
    const auto md = sha256(text);
    return {reinterpret_cast<const char*>(md.data()), md.size()};
}

std::string sha256_hex(std::string_view text, std::size_t chars) {
    static constexpr char digits[] = "0123456789abcdef";
    const auto md = sha256(text);
    std::string out(std::min(chars, 2 * md.size()), '0');
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = digits[i % 2 == 0 ? md[i / 2] >> 4 : md[i / 2] & 15];
    return out;
}

}  // namespace porthole::core
