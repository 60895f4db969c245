#include "net/tls.hpp"

#include "protocol/auth.hpp"

#include <boost/asio/ssl/host_name_verification.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <array>
#include <cctype>
#include <memory>

namespace porthole::net {
namespace {

namespace ssl = boost::asio::ssl;

template <class T, void (*Free)(T*)>
using owned = std::unique_ptr<T, decltype([](T* p) { Free(p); })>;

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    if (e == 0) return "unknown TLS error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

void harden(ssl::context& ctx) {
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                    ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);  // idle streams drop buffers
    SSL_CTX_set_num_tickets(ctx.native_handle(), 0);  // no resumption: nothing arrives unasked
    SSL_CTX_set_cipher_list(ctx.native_handle(),
                            "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1");
}

// A self-signed ECDSA P-256 certificate for `names`, valid for a year.
tl::expected<void, std::string> use_self_signed(ssl::context& ctx,
                                                const std::vector<std::string>& names) {
    owned<EVP_PKEY, EVP_PKEY_free> key(EVP_EC_gen("P-256"));
    owned<X509, X509_free> cert(X509_new());
    if (!key || !cert) return tl::unexpected(openssl_error());
    X509_set_version(cert.get(), 2);
    const auto serial = protocol::random_bytes<16>();
    owned<BIGNUM, BN_free> bn(BN_bin2bn(serial.data(), 15, nullptr));
    BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* subject = X509_get_subject_name(cert.get());
    const std::string cn = names.empty() ? "porthole relay" : names.front();
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), subject);
    std::string san;
    for (const auto& n : names) {
        boost::system::error_code ec;
        boost::asio::ip::make_address(n, ec);
        san += fmt::format("{}{}:{}", san.empty() ? "" : ",", ec ? "DNS" : "IP", n);
    }
    if (!san.empty()) {
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
        owned<X509_EXTENSION, X509_EXTENSION_free> ext(
            X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str()));
        if (!ext) return tl::unexpected(openssl_error());
        X509_add_ext(cert.get(), ext.get(), -1);
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return tl::unexpected(openssl_error());
    if (SSL_CTX_use_certificate(ctx.native_handle(), cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx.native_handle(), key.get()) != 1)
        return tl::unexpected(openssl_error());
    return {};
}

}  // namespace

std::string fingerprint_of(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    X509_digest(cert, EVP_sha256(), md, &len);
    return "sha256:" + protocol::to_hex({md, len});
}

std::optional<std::string> normalize_fingerprint(std::string_view text) {
    if (text.starts_with("sha256:")) text.remove_prefix(7);
    std::array<char, 64> hex{};
    std::size_t n = 0;
    for (char c : text) {
        if (c == ':') continue;  // also accept the AA:BB:... form openssl prints
        if (!std::isxdigit(static_cast<unsigned char>(c)) || n == hex.size()) return std::nullopt;
        hex[n++] = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (n != hex.size()) return std::nullopt;
    return std::string(hex.data(), hex.size());
}

tl::expected<server_tls, std::string> make_server_tls(const std::string& cert_file,
                                                      const std::string& key_file,
                                                      const std::vector<std::string>& names) {
    server_tls out{ssl::context(ssl::context::tls_server), {}};
    harden(out.context);
    if (cert_file.empty()) {
        if (auto ok = use_self_signed(out.context, names); !ok)
            return tl::unexpected("cannot create a self-signed certificate: " + ok.error());
    } else {
        if (SSL_CTX_use_certificate_chain_file(out.context.native_handle(), cert_file.c_str()) != 1)
            return tl::unexpected(fmt::format("{}: cannot load the certificate: {}", cert_file,
                                              openssl_error()));
        if (SSL_CTX_use_PrivateKey_file(out.context.native_handle(), key_file.c_str(),
                                        SSL_FILETYPE_PEM) != 1)
            return tl::unexpected(fmt::format("{}: cannot load the private key: {}", key_file,
                                              openssl_error()));
        if (SSL_CTX_check_private_key(out.context.native_handle()) != 1)
            return tl::unexpected(fmt::format("{} does not match {}", key_file, cert_file));
    }
    out.fingerprint = fingerprint_of(SSL_CTX_get0_certificate(out.context.native_handle()));
    return out;
}

tl::expected<ssl::context, std::string> make_client_tls(const client_trust& trust) {
    ssl::context ctx(ssl::context::tls_client);
    harden(ctx);
    if (!trust.ca_file.empty()) {
        boost::system::error_code ec;
        ctx.load_verify_file(trust.ca_file, ec);
        if (ec)
            return tl::unexpected(fmt::format("{}: cannot load the CA file: {}", trust.ca_file,
                                              ec.message()));
    } else {
        ctx.set_default_verify_paths();
    }
    return ctx;
}

void configure_client_stream(ssl::stream<boost::asio::ip::tcp::socket>& s,
                             const client_trust& trust, const std::string& host) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    if (ec) SSL_set_tlsext_host_name(s.native_handle(), host.c_str());  // SNI takes names only
    if (trust.insecure) {
        s.set_verify_mode(ssl::verify_none);
    } else if (!trust.fingerprint.empty()) {
        s.set_verify_mode(ssl::verify_peer);
        s.set_verify_callback([want = trust.fingerprint](bool, ssl::verify_context& vc) {
            // Pinning: the chain does not matter, only that the relay's own certificate matches.
            if (X509_STORE_CTX_get_error_depth(vc.native_handle()) > 0) return true;
            X509* cert = X509_STORE_CTX_get_current_cert(vc.native_handle());
            return cert && fingerprint_of(cert) == "sha256:" + want;
        });
    } else {
        s.set_verify_mode(ssl::verify_peer);
        s.set_verify_callback(ssl::host_name_verification(host));
    }
}

}  // namespace porthole::net
