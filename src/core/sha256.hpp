#pragma once
// SHA-256 of a text, whole or as the first hex digits: what keys, cache entries and Redis fields
// are named by. OpenSSL's, one call each.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace porthole::core {

using sha256_digest = std::array<unsigned char, 32>;

sha256_digest sha256(std::string_view text);

// The digest's 32 bytes as a string (a map key, a base64url input).
std::string sha256_bytes(std::string_view text);

// The digest's first `chars` hex digits (all 64 by default), lower case.
std::string sha256_hex(std::string_view text, std::size_t chars = 64);

}  // namespace porthole::core
