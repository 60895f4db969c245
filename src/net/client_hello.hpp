#pragma once
// The server name (SNI) in the first bytes of a TLS connection, read without terminating TLS so
// the relay can route a passthrough tunnel, and whether its ALPN says an ACME TLS-ALPN-01
// validation or a porthole client.
// Pure: bytes in, verdict out.
#include <cstdint>
#include <span>
#include <string>

namespace porthole::net {

struct client_hello_sni {
    enum class status { need_more, found, absent, not_tls } what;
    std::string name;  // lowercase, when found
    bool acme_tls = false;  // ALPN offers acme-tls/1 (a TLS-ALPN-01 validation, RFC 8737)
    bool control = false;  // ALPN offers porthole/1: a client, not a visitor
};

// `bytes` is what the visitor sent so far (the ClientHello may span several TLS records only in
// theory; a hello over 16 KiB is treated as absent).
client_hello_sni find_sni(std::span<const std::uint8_t> bytes);

}  // namespace porthole::net
