#pragma once
// TLS contexts for the client-relay transport: the relay's certificate (given, or self-signed at
// start), and the client's verification (system trust, a CA file, or a pinned fingerprint).
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <tl/expected.hpp>

#include <deque>
#include <memory>
#include <mutex>
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

// Certificates got while the relay runs (ACME), consulted by SNI before the configured ones.
// Every event loop asks, each in its own handshakes: both calls are safe from any thread.
class certificate_source {
public:
    virtual ~certificate_source() = default;
    // Switches `ssl` to the context serving `host` (lowercase); false when none does.
    virtual bool use_for(SSL* ssl, const std::string& host) = 0;
    // Whether a valid certificate serves `host` now.
    virtual bool serves(const std::string& host) const = 0;
};

// A context for visitors' HTTPS from a PEM chain and key: hardened, ALPN http/1.1.
tl::expected<boost::asio::ssl::context, std::string> https_context_from_pem(
    const std::string& chain_pem, const std::string& key_pem);
// The context a TLS-ALPN-01 challenge is answered with (RFC 8737): ALPN acme-tls/1 only.
tl::expected<boost::asio::ssl::context, std::string> acme_challenge_context(
    const std::string& cert_pem, const std::string& key_pem);

// HTTPS for visitors: one context per certificate, picked by SNI (exact or wildcard name), the
// first as default; ALPN http/1.1. With neither certificates nor a self-signed directory, the
// default is a self-signed certificate for DOMAIN and *.DOMAIN made at load (a fallback for
// names a certificate_source has nothing for yet).
class https_certificates {
public:
    // From PEM chain/key pairs, or from a local CA kept in `self_signed_dir` (made on first use)
    // that signs a fresh certificate for DOMAIN and *.DOMAIN.
    static tl::expected<std::unique_ptr<https_certificates>, std::string> load(
        const std::vector<std::string>& certs, const std::vector<std::string>& keys,
        const std::string& self_signed_dir, const std::string& domain);

    boost::asio::ssl::context& context() {
        const std::lock_guard lock(mutex_);  // a handshake on another loop may be adding one
        return entries_.front().context;
    }
    const std::string& ca_file() const { return ca_file_; }  // set for self-signed
    // Whether a configured certificate (not the fallback, not self-signed) serves `host`.
    bool covers(const std::string& host) const;
    // Whether the certificate_source (ACME) has a valid certificate for `host` now.
    bool source_serves(const std::string& host) const { return source_ && source_->serves(host); }
    // Asked first for every server name; `source` outlives this.
    void set_source(certificate_source* source) { source_ = source; }
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
    certificate_source* source_ = nullptr;
    bool fallback_ = false;  // the default entry is the self-signed fallback
    // The relay's event loops all handshake with this set, and self-signed mode adds to it
    // during a handshake: entries_ is read and written under this lock, once per handshake.
    mutable std::mutex mutex_;
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

// ALPN "porthole/1": a client's connection to the relay, which the relay's HTTPS port tells from a
// visitor's by it.
inline constexpr std::string_view control_alpn = "porthole/1";
void offer_control_alpn(SSL* ssl);

// When the certificate a context serves expires, in seconds since the epoch; 0 without one.
double not_after(SSL_CTX* ctx);

// "sha256:HEX" of a certificate.
std::string fingerprint_of(X509* cert);

// "sha256:HEX" -> lowercase HEX; nullopt if malformed.
std::optional<std::string> normalize_fingerprint(std::string_view text);

}  // namespace porthole::net
