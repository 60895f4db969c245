#include "protocol/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <fmt/format.h>

#include <stdexcept>

namespace porthole::protocol {
namespace {

key32 hmac(std::span<const std::uint8_t> key, std::string_view label,
           std::span<const std::uint8_t> a, std::span<const std::uint8_t> b = {}) {
    std::string msg(label);
    msg.append(reinterpret_cast<const char*>(a.data()), a.size());
    msg.append(reinterpret_cast<const char*>(b.data()), b.size());
    key32 out{};
    unsigned len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), &len);
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

token_key key_of_token(std::string_view token) {
    token_key k{};
    unsigned len = 0;
    EVP_Digest(token.data(), token.size(), k.data(), &len, EVP_sha256(), nullptr);
    return k;
}

std::string group_digest(std::string_view group_key) {
    const std::string input = std::string("porthole-group-v1:").append(group_key);
    return to_hex(key_of_token(input));
}

verifier verifier_of(const token_key& key) {
    verifier v{};
    unsigned len = 0;
    EVP_Digest(key.data(), key.size(), v.data(), &len, EVP_sha256(), nullptr);
    return v;
}

tl::expected<verifier, std::string> parse_token_entry(std::string_view entry) {
    if (entry.empty()) return tl::unexpected(std::string("empty token"));
    const auto colon = entry.find(':');
    const std::string_view kind = entry.substr(0, colon == std::string_view::npos ? 0 : colon);
    if (kind != "sha256" && kind != "verifier") return verifier_of(key_of_token(entry));
    const std::string_view hex = entry.substr(colon + 1);
    if (hex.size() != 64)
        return tl::unexpected(fmt::format("a {}: entry needs exactly 64 hex digits", kind));
    key32 k{};
    for (std::size_t i = 0; i < k.size(); ++i) {
        const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return tl::unexpected(fmt::format("a {}: entry may hold only hex digits", kind));
        k[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return kind == "sha256" ? verifier_of(k) : k;
}

key32 session_proof(const token_key& key, const key32& nonce, const id16& client_id) {
    key32 proof = hmac(verifier_of(key), "porthole-auth-v2", nonce, client_id);
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] ^= key[i];
    return proof;
}

std::optional<token_key> check_session_proof(const verifier& v, const key32& nonce,
                                             const id16& client_id, const key32& proof) {
    token_key key = hmac(v, "porthole-auth-v2", nonce, client_id);
    for (std::size_t i = 0; i < key.size(); ++i) key[i] ^= proof[i];
    if (!equal_constant_time(verifier_of(key), v)) return std::nullopt;
    return key;
}

key32 data_key(const token_key& key, const key32& session_nonce, const id16& client_id) {
    return hmac(key, "porthole-data-key-v2", session_nonce, client_id);
}

key32 data_proof(const key32& data_key, const id16& session_id, const key32& connection_nonce) {
    return hmac(data_key, "porthole-data-v2", session_id, connection_nonce);
}

bool equal_constant_time(const key32& a, const key32& b) {
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

template <std::size_t N>
std::array<std::uint8_t, N> random_bytes() {
    std::array<std::uint8_t, N> out{};
    if (RAND_bytes(out.data(), static_cast<int>(N)) != 1)
        throw std::runtime_error("the system random number generator failed");
    return out;
}
template std::array<std::uint8_t, 16> random_bytes<16>();
template std::array<std::uint8_t, 32> random_bytes<32>();

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 15]);
    }
    return s;
}

}  // namespace porthole::protocol
