#pragma once
// The certificates of an order: the key and CSR sent to finalize it, what a PEM
// chain the CA issued says about itself, and the self-signed certificate a
// TLS-ALPN-01 challenge is answered with (RFC 8737). Pure: OpenSSL builds and
// reads, nothing touches a file or a socket.
#include <tl/expected.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace porthole::acme {

struct pem_pair {
    std::string chain;  // certificate(s)
    std::string key;    // PKCS#8 private key
};

struct certificate_request {
    std::string key_pem;  // the new certificate's private key (ECDSA P-256)
    std::string csr_der;  // the CSR, DER, to base64url into the finalize request
};

// A fresh key and a CSR naming `names` (subjectAltName; the first is also the
// common name).
tl::expected<certificate_request, std::string> make_certificate_request(
    const std::vector<std::string>& names);

struct certificate_facts {
    std::vector<std::string> names;  // DNS names of the leaf, lowercase
    long long not_before = 0;        // seconds since the epoch
    long long not_after = 0;
};

// What the first certificate of a PEM chain says; an error when there is none,
// when `key_pem` (if given) is not its key, or when the chain's PEM is
// malformed.
tl::expected<certificate_facts, std::string> read_chain(std::string_view chain_pem,
                                                        std::string_view key_pem = {});

// The TLS-ALPN-01 answer for `name`: self-signed, that one DNS name, and the
// critical acmeIdentifier extension holding SHA-256 of the key authorization.
tl::expected<pem_pair, std::string> tls_alpn_certificate(const std::string& name,
                                                         std::string_view key_authorization);

}  // namespace porthole::acme
