#pragma once
// Token handling and the proofs of docs/protocol.md#authentication. Tokens never leave the
// process. A client holds key = SHA-256(token); a relay needs only verifier = SHA-256(key), which
// checks a proof but cannot make one (SCRAM's StoredKey and ClientKey, RFC 5802).
#include "protocol/frame.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace porthole::protocol {

using token_key = key32;  // SHA-256(token): what a client proves it holds
using verifier = key32;  // SHA-256(token_key): what a relay keeps

token_key key_of_token(std::string_view token);
verifier verifier_of(const token_key& key);
// A tokens-file entry -> the verifier a relay keeps: a plain token, "verifier:" and 64 hex digits
// (what `porthole token verifier` prints; reading it does not let anyone log in), or "sha256:"
// and 64 hex digits of SHA-256(token) (as good as the token itself; kept for older files).
tl::expected<verifier, std::string> parse_token_entry(std::string_view entry);

// AUTH's proof: key XOR HMAC-SHA256(verifier, "porthole-auth-v2" || nonce || client_id).
key32 session_proof(const token_key& key, const key32& nonce, const id16& client_id);
// The key behind a proof when it matches `v`, else nullopt; the same work either way.
std::optional<token_key> check_session_proof(const verifier& v, const key32& nonce,
                                             const id16& client_id, const key32& proof);
// The key data connections prove themselves with: from the token, never from anything that
// crossed the wire, so a captured handshake does not give it away.
key32 data_key(const token_key& key, const key32& session_nonce, const id16& client_id);
// A data connection's answer to its own DATA_CHALLENGE nonce: a captured one is worth nothing.
key32 data_proof(const key32& data_key, const id16& session_id, const key32& connection_nonce);

bool equal_constant_time(const key32& a, const key32& b);

// What OPEN_TUNNEL carries for a tunnel group's key: hex SHA-256("porthole-group-v1:" || key),
// apart from the token's own digest even when the two strings are the same.
std::string group_digest(std::string_view group_key);

template <std::size_t N>
std::array<std::uint8_t, N> random_bytes();
extern template std::array<std::uint8_t, 16> random_bytes<16>();
extern template std::array<std::uint8_t, 32> random_bytes<32>();

std::string to_hex(std::span<const std::uint8_t> bytes);

}  // namespace porthole::protocol
