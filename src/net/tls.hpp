#pragma once
// TLS contexts for the client-relay transport: the relay's certificate (given, or self-signed at
// start), and the client's verification (system trust, a CA file, or a pinned fingerprint).
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <tl/expected.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
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

// The certificate and private key of `tls` as PEM, to hand to a process that replaces this one
// (so clients that pinned a self-signed certificate's fingerprint still trust it); and back.
tl::expected<std::pair<std::string, std::string>, std::string> pem_of(server_tls& tls);
tl::expected<server_tls, std::string> server_tls_from_pem(const std::string& cert_pem,
                                                          const std::string& key_pem);

// HTTPS for visitors: one context per certificate, picked by SNI (exact or wildcard name), the
// first as default; ALPN http/1.1.
class https_certificates {
public:
    // From PEM chain/key pairs, or from a local CA kept in `self_signed_dir` (made on first use)
    // that signs a fresh certificate for DOMAIN and *.DOMAIN.
    static tl::expected<std::unique_ptr<https_certificates>, std::string> load(
        const std::vector<std::string>& certs, const std::vector<std::string>& keys,
        const std::string& self_signed_dir, const std::string& domain);

    boost::asio::ssl::context& context() { return entries_.front().context; }
    const std::string& ca_file() const { return ca_file_; }  // set for self-signed
    // Each certificate's first DNS name and when it expires (seconds since the epoch), for
    // the first 100.
    std::vector<std::pair<std::string, double>> expiries() const;

private:
    struct entry {
        boost::asio::ssl::context context;
        std::vector<std::string> names;  // DNS names of the certificate, lowercase
    };
    struct local_ca;
    static int on_server_name(SSL* ssl, int* alert, void* self);
    // Self-signed mode: a certificate for exactly these names, signed by the local CA.
    tl::expected<void, std::string> mint(const std::vector<std::string>& names);

    std::deque<entry> entries_;
    std::shared_ptr<local_ca> ca_;
    std::string domain_;
    std::string ca_file_;
};

struct client_trust {
    std::string ca_file;  // empty: the system trust store
    std::string fingerprint;  // "sha256:HEX" or bare HEX: pin the relay's certificate instead
    bool insecure = false;  // verify nothing (warns loudly)
};

tl::expected<boost::asio::ssl::context, std::string> make_client_tls(const client_trust& trust);

// Sets SNI and how the relay is verified (its name, or the pinned fingerprint) on a new
// connection. `trust` must outlive its handshake.
void configure_client_stream(SSL* ssl, const client_trust& trust, const std::string& host);

// When the certificate a context serves expires, in seconds since the epoch; 0 without one.
double not_after(SSL_CTX* ctx);

// "sha256:HEX" of a certificate.
std::string fingerprint_of(X509* cert);

// "sha256:HEX" -> lowercase HEX; nullopt if malformed.
std::optional<std::string> normalize_fingerprint(std::string_view text);

}  // namespace porthole::net
