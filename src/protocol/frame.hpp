#pragma once
// Wire frames of the client-relay protocol (docs/protocol.md): pure encode/decode, no sockets.
#include <tl/expected.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

namespace porthole::protocol {

// 2: data connections answer a challenge of their own (DATA_CHALLENGE, DATA_AUTH).
// 3: OPEN_TUNNEL carries the owner's policies. 4: POLICY_ANSWERED.
inline constexpr std::uint16_t protocol_version = 4;
// The oldest version still spoken: version 2 lacks OPEN_TUNNEL's policies.
inline constexpr std::uint16_t oldest_protocol_version = 2;
inline constexpr std::size_t header_size = 4;
inline constexpr std::size_t max_frame_body = 65536;
// Every string field; with at most four per message a frame always fits in max_frame_body.
inline constexpr std::size_t max_string = 4096;
// Before a connection has authenticated, a frame may be no larger than this (HELLO with an agent
// string of up to 1,000 bytes fits): a stranger's partial frame costs little.
inline constexpr std::size_t max_handshake_frame_body = 1024;

using id16 = std::array<std::uint8_t, 16>;
using key32 = std::array<std::uint8_t, 32>;

enum class frame_type : std::uint8_t {
    hello = 1,
    challenge = 2,
    auth = 3,
    welcome = 4,
    error = 5,
    open_tunnel = 6,
    tunnel_opened = 7,
    tunnel_refused = 8,
    pool_want = 9,
    ping = 10,
    pong = 11,
    goaway = 12,
    policy_answered = 13,  // version 4
    data_hello = 20,
    stream_start = 21,
    stream_ready = 22,
    stream_failed = 23,
    data_challenge = 24,
    data_auth = 25,
    link_open = 30,  // relay to relay, on the cluster link
    link_ready = 31,
};

enum class error_code : std::uint16_t {
    unsupported_version = 1,
    unauthorized = 2,
    bad_name = 3,
    name_taken = 4,
    port_unavailable = 5,
    limit = 6,
    protocol = 7,
    shutting_down = 8,
    bad_policy = 9,  // a tunnel's policies were refused (version 3)
};

enum class tunnel_kind : std::uint8_t { http = 1, tcp = 2, tls = 3 };  // tls: passthrough by SNI

struct hello {
    std::uint16_t min_version = protocol_version;
    std::uint16_t max_version = protocol_version;
    id16 client_id{};
    std::string agent;
};
struct challenge {
    std::uint16_t version = protocol_version;
    key32 nonce{};
};
struct auth {
    key32 proof{};
};
struct welcome {
    id16 session_id{};
    std::uint32_t heartbeat_ms = 0;
    std::uint16_t pool_size = 0;
    // Zeros from a relay with tokens (both sides derive the data key from the token); a relay
    // without tokens has no secret to derive it from and sends the key itself.
    key32 open_data_key{};
};
struct error {
    error_code code{};
    std::string message;
};
struct open_tunnel {
    std::uint32_t request_id = 0;
    tunnel_kind kind = tunnel_kind::http;
    std::string name;
    std::uint16_t port = 0;
    std::string target;
    std::string host_header;
    // Optional, last on the wire (absent when empty): the group the tunnel joins, as
    // group_digest() of its key, so the relay never learns the key itself.
    std::string group;
    // Optional after `group` (version 3): the tunnel owner's policies, as [[policies]] TOML
    // tables; when present, `group` is present too (empty when the tunnel joins no group).
    std::string policies;
};
struct tunnel_opened {
    std::uint32_t request_id = 0;
    std::uint32_t tunnel_id = 0;
    std::string url;
};
struct tunnel_refused {
    std::uint32_t request_id = 0;
    error_code code{};
    std::string message;
};
struct pool_want {
    std::uint16_t count = 0;
};
struct ping {
    std::uint64_t opaque = 0;
};
struct pong {
    std::uint64_t opaque = 0;
};
struct goaway {
    std::string reason;
};
// Relay -> client (version 4): a policy of the relay answered a visitor of one of the client's
// tunnels itself, so the client's inspector and request events show the request although it
// never reached the client. Heads as the relay read and answered them, credentials redacted,
// each cut at max_string; the body's first bytes.
struct policy_answered {
    std::uint32_t tunnel_id = 0;
    std::uint16_t status = 0;
    std::string policy;  // its type: "rate_limit", "basic_auth", ...
    std::string visitor;  // the visitor's address
    std::string request_head;
    std::string response_head;
    std::string response_body;
};
struct data_hello {
    id16 session_id{};
};
struct data_challenge {
    key32 nonce{};  // fresh for each data connection
};
struct data_auth {
    key32 proof{};
};
struct stream_start {
    std::uint32_t tunnel_id = 0;
    std::string visitor;
};
struct stream_ready {};
struct stream_failed {
    std::string message;
};

// Relay -> relay, on a cluster link connection: carry this visitor to the tunnel serving `name`
// (http, tls) or `port` (tcp) on the relay that holds it. Answered LINK_READY once the client has
// reached its service (the bytes that follow are the visitor's), or STREAM_FAILED.
struct link_open {
    tunnel_kind kind = tunnel_kind::http;
    std::string name;
    std::uint16_t port = 0;
    std::string visitor;
};
struct link_ready {
    std::string host_header;  // the tunnel's, for the edge that forwards the request
    std::string target;
};

using message = std::variant<hello, challenge, auth, welcome, error, open_tunnel, tunnel_opened,
                             tunnel_refused, pool_want, ping, pong, goaway, data_hello, stream_start,
                             stream_ready, stream_failed, data_challenge, data_auth,
                             policy_answered, link_open, link_ready>;

// Whole frame: 4-byte length, type, payload. Strings longer than max_string bytes are truncated.
std::string encode(const message& m);

// Length field of a frame header -> size of the body (type + payload) that follows.
tl::expected<std::size_t, std::string> decode_length(std::span<const std::uint8_t, header_size> h);

// Body (type + payload) -> message; any missing, trailing or unknown byte is an error.
tl::expected<message, std::string> decode_body(std::span<const std::uint8_t> body);

std::string_view name_of(error_code c);
std::string_view name_of(tunnel_kind k);  // "http", "tcp", "tls"

}  // namespace porthole::protocol
