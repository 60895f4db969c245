#pragma once
// Token handling and the HMAC proofs of docs/protocol.md#authentication. Tokens never leave the
// process; only SHA-256(token) is kept and keyed into HMACs.
#include "protocol/frame.hpp"

#include <string>
#include <string_view>

namespace porthole::protocol {

using token_key = key32;

token_key key_of_token(std::string_view token);
// A tokens-file entry: a plain token, or "sha256:" and 64 hex digits of its digest.
tl::expected<token_key, std::string> parse_token_entry(std::string_view entry);

key32 session_proof(const token_key& key, const key32& nonce, const id16& client_id);
// The key data connections prove themselves with: from the token, never from anything that
// crossed the wire, so a captured handshake does not give it away.
key32 data_key(const token_key& key, const key32& session_nonce, const id16& client_id);
// A data connection's answer to its own DATA_CHALLENGE nonce: a captured one is worth nothing.
key32 data_proof(const key32& data_key, const id16& session_id, const key32& connection_nonce);

bool equal_constant_time(const key32& a, const key32& b);

template <std::size_t N>
std::array<std::uint8_t, N> random_bytes();
extern template std::array<std::uint8_t, 16> random_bytes<16>();
extern template std::array<std::uint8_t, 32> random_bytes<32>();

std::string to_hex(std::span<const std::uint8_t> bytes);

}  // namespace porthole::protocol
