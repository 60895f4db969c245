#pragma once
// TLS contexts for the client-relay transport: the relay's certificate (given, or self-signed at
// start), and the client's verification (system trust, a CA file, or a pinned fingerprint).
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <tl/expected.hpp>

#include <optional>
#include <string>
#include <vector>

namespace porthole::net {

struct server_tls {
    boost::asio::ssl::context context;
    std::string fingerprint;  // "sha256:HEX" of the certificate clients see
};

// With an empty cert path, a fresh self-signed certificate for `names` (DNS names or IPs).
tl::expected<server_tls, std::string> make_server_tls(const std::string& cert_file,
                                                      const std::string& key_file,
                                                      const std::vector<std::string>& names);

struct client_trust {
    std::string ca_file;  // empty: the system trust store
    std::string fingerprint;  // "sha256:HEX" or bare HEX: pin the relay's certificate instead
    bool insecure = false;  // verify nothing (warns loudly)
};

tl::expected<boost::asio::ssl::context, std::string> make_client_tls(const client_trust& trust);

// Sets SNI and how the relay is verified (its name, or the pinned fingerprint) on a new stream.
void configure_client_stream(boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& s,
                             const client_trust& trust, const std::string& host);

// "sha256:HEX" of a certificate.
std::string fingerprint_of(X509* cert);

// "sha256:HEX" -> lowercase HEX; nullopt if malformed.
std::optional<std::string> normalize_fingerprint(std::string_view text);

}  // namespace porthole::net
