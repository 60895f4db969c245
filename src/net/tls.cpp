#include "net/tls.hpp"

#include "core/openssl_owned.hpp"
#include "protocol/auth.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <cstring>
#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <memory>

namespace porthole::net {
namespace {

namespace ssl = boost::asio::ssl;
using core::openssl_error;
using core::owned;

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

// A fresh P-256 key and an X.509 v3 certificate for it: random serial, valid from an hour ago for
// `days`, subject CN. Issuer and extensions are the caller's.
struct key_and_cert {
    owned<EVP_PKEY, EVP_PKEY_free> key;
    owned<X509, X509_free> cert;
};

tl::expected<key_and_cert, std::string> new_certificate(long days, const std::string& cn) {
    key_and_cert out{owned<EVP_PKEY, EVP_PKEY_free>(EVP_EC_gen("P-256")),
                     owned<X509, X509_free>(X509_new())};
    X509* cert = out.cert.get();
    if (!out.key || !cert) return tl::unexpected(openssl_error());
    X509_set_version(cert, 2);
    const auto serial = protocol::random_bytes<16>();
    owned<BIGNUM, BN_free> bn(BN_bin2bn(serial.data(), 15, nullptr));
    BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert));
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), days * 24 * 3600);
    X509_set_pubkey(cert, out.key.get());
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    return out;
}

// A self-signed ECDSA P-256 certificate for `names`, valid for a year.
tl::expected<void, std::string> use_self_signed(ssl::context& ctx,
                                                const std::vector<std::string>& names) {
    auto made = new_certificate(365, names.empty() ? "porthole relay" : names.front());
    if (!made) return tl::unexpected(made.error());
    auto& [key, cert] = *made;
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
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

std::vector<std::string> dns_names(X509* cert) {
    std::vector<std::string> names;
    auto* sans = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
        if (n->type != GEN_DNS) continue;
        const auto* s = ASN1_STRING_get0_data(n->d.dNSName);
        std::string name(reinterpret_cast<const char*>(s), ASN1_STRING_length(n->d.dNSName));
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        names.push_back(std::move(name));
    }
    GENERAL_NAMES_free(sans);
    return names;
}

bool name_matches(std::string_view pattern, std::string_view host) {
    if (pattern.starts_with("*.")) {
        const auto dot = host.find('.');
        return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
    }
    return pattern == host;
}

int select_http11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                  unsigned inlen, void*) {
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, http11, sizeof http11, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;  // no ALPN match: carry on without ALPN
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

// The CA of --tls-self-signed: read from `dir`, or made there (key readable by the owner only).
constexpr std::size_t max_minted = 4096;  // names with a certificate of their own, at most

tl::expected<std::pair<owned<X509, X509_free>, owned<EVP_PKEY, EVP_PKEY_free>>, std::string>
load_local_ca(const std::string& dir) {
    const std::string cert_path = dir + "/ca.pem", key_path = dir + "/ca.key";
    if (FILE* f = std::fopen(cert_path.c_str(), "r")) {
        owned<X509, X509_free> cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
        std::fclose(f);
        FILE* k = std::fopen(key_path.c_str(), "r");
        if (!k) return tl::unexpected(key_path + ": cannot open the CA key");
        owned<EVP_PKEY, EVP_PKEY_free> key(PEM_read_PrivateKey(k, nullptr, nullptr, nullptr));
        std::fclose(k);
        if (!cert || !key) return tl::unexpected(dir + ": cannot read the CA: " + openssl_error());
        return std::pair{std::move(cert), std::move(key)};
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return tl::unexpected(dir + ": cannot create the directory: " + std::strerror(errno));
    auto made = new_certificate(10 * 365, "porthole local CA");
    if (!made) return tl::unexpected(made.error());
    auto& [key, cert] = *made;
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                              std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"}}) {
        owned<X509_EXTENSION, X509_EXTENSION_free> ext(X509V3_EXT_conf_nid(nullptr, &v3, nid, value));
        X509_add_ext(cert.get(), ext.get(), -1);
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return tl::unexpected(openssl_error());
    const int fd = ::open(key_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE* k = fd >= 0 ? ::fdopen(fd, "w") : nullptr;
    FILE* c = std::fopen(cert_path.c_str(), "w");
    const bool written = k && c && PEM_write_PrivateKey(k, key.get(), nullptr, nullptr, 0, nullptr,
                                                        nullptr) == 1 &&
                         PEM_write_X509(c, cert.get()) == 1;
    if (k) std::fclose(k);
    if (c) std::fclose(c);
    if (!written) return tl::unexpected(dir + ": cannot write the CA files");
    return std::pair{std::move(cert), std::move(key)};
}

}  // namespace

struct https_certificates::local_ca {
    owned<X509, X509_free> cert;
    owned<EVP_PKEY, EVP_PKEY_free> key;
};

tl::expected<std::unique_ptr<https_certificates>, std::string> https_certificates::load(
    const std::vector<std::string>& certs, const std::vector<std::string>& keys,
    const std::string& self_signed_dir, const std::string& domain) {
    auto out = std::unique_ptr<https_certificates>(new https_certificates());
    auto add = [&](ssl::context ctx) {
        harden(ctx);
        SSL_CTX_set_alpn_select_cb(ctx.native_handle(), select_http11, nullptr);
        auto names = dns_names(SSL_CTX_get0_certificate(ctx.native_handle()));
        out->entries_.push_back(entry{std::move(ctx), std::move(names)});
    };
    for (std::size_t i = 0; i < certs.size(); ++i) {
        auto loaded = make_server_tls(certs[i], keys[i], {});
        if (!loaded) return tl::unexpected(loaded.error());
        add(std::move(loaded->context));
    }
    if (!self_signed_dir.empty()) {
        auto ca = load_local_ca(self_signed_dir);
        if (!ca) return tl::unexpected(ca.error());
        out->ca_ = std::make_shared<local_ca>(local_ca{std::move(ca->first), std::move(ca->second)});
        out->ca_file_ = self_signed_dir + "/ca.pem";
        // *.DOMAIN serves most clients; names it cannot cover (one-label domains such as
        // localhost, where clients refuse the wildcard) get their own certificate on first use.
        if (auto ok = out->mint({domain, "*." + domain}); !ok) return tl::unexpected(ok.error());
    }
    if (out->entries_.empty()) {
        auto fallback = make_server_tls("", "", {domain, "*." + domain});
        if (!fallback) return tl::unexpected(fallback.error());
        add(std::move(fallback->context));
        out->fallback_ = true;
    }
    out->domain_ = domain;
    // Always: a certificate_source may be set later.
    SSL_CTX_set_tlsext_servername_callback(out->context().native_handle(), on_server_name);
    SSL_CTX_set_tlsext_servername_arg(out->context().native_handle(), out.get());
    return out;
}

int https_certificates::on_server_name(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<https_certificates*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;
    std::string host(name);
    for (auto& ch : host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto use = [&](entry& e) { SSL_set_SSL_CTX(ssl, e.context.native_handle()); };
    if (self->source_ && self->source_->use_for(ssl, host)) return SSL_TLSEXT_ERR_OK;
    const std::lock_guard lock(self->mutex_);
    // Exact names first (minted ones), then wildcards.
    for (auto& e : self->entries_)
        if (std::find(e.names.begin(), e.names.end(), host) != e.names.end()) {
            use(e);
            return SSL_TLSEXT_ERR_OK;
        }
    const bool under_domain = host.size() > self->domain_.size() + 1 &&
                              host.ends_with("." + self->domain_) &&
                              host.find('.') == host.size() - self->domain_.size() - 1;
    if (self->ca_ && under_domain && self->entries_.size() < max_minted) {
        if (self->mint({host})) use(self->entries_.back());
        return SSL_TLSEXT_ERR_OK;
    }
    for (auto& e : self->entries_)
        for (const auto& pattern : e.names)
            if (name_matches(pattern, host)) {
                use(e);
                return SSL_TLSEXT_ERR_OK;
            }
    return SSL_TLSEXT_ERR_OK;  // the default certificate
}

tl::expected<void, std::string> https_certificates::mint(const std::vector<std::string>& names) {
    ssl::context ctx(ssl::context::tls_server);
    harden(ctx);
    SSL_CTX_set_alpn_select_cb(ctx.native_handle(), select_http11, nullptr);
    auto made = new_certificate(90, names.front());
    if (!made) return tl::unexpected(made.error());
    auto& [key, cert] = *made;
    X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_->cert.get()));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, ca_->cert.get(), cert.get(), nullptr, nullptr, 0);
    std::string san;
    for (const auto& n : names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, san.c_str()},
                              std::pair{NID_ext_key_usage, "serverAuth"},
                              std::pair{NID_basic_constraints, "critical,CA:FALSE"}}) {
        owned<X509_EXTENSION, X509_EXTENSION_free> ext(
            X509V3_EXT_conf_nid(nullptr, &v3, nid, value));
        X509_add_ext(cert.get(), ext.get(), -1);
    }
    if (X509_sign(cert.get(), ca_->key.get(), EVP_sha256()) == 0 ||
        SSL_CTX_use_certificate(ctx.native_handle(), cert.get()) != 1 ||
        SSL_CTX_add1_chain_cert(ctx.native_handle(), ca_->cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx.native_handle(), key.get()) != 1)
        return tl::unexpected("cannot make a certificate: " + openssl_error());
    entries_.push_back(entry{std::move(ctx), names});
    return {};
}

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

tl::expected<std::pair<std::string, std::string>, std::string> pem_of(server_tls& tls) {
    SSL_CTX* ctx = tls.context.native_handle();
    X509* cert = SSL_CTX_get0_certificate(ctx);
    EVP_PKEY* key = SSL_CTX_get0_privatekey(ctx);
    const std::unique_ptr<BIO, decltype(&BIO_free)> cert_out(BIO_new(BIO_s_mem()), BIO_free);
    const std::unique_ptr<BIO, decltype(&BIO_free)> key_out(BIO_new(BIO_s_mem()), BIO_free);
    if (!cert || !key || !cert_out || !key_out ||
        PEM_write_bio_X509(cert_out.get(), cert) != 1 ||
        PEM_write_bio_PrivateKey(key_out.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return tl::unexpected("cannot write the certificate as PEM: " + openssl_error());
    const auto text = [](BIO* b) {
        char* data = nullptr;
        const long n = BIO_get_mem_data(b, &data);
        return std::string(data, static_cast<std::size_t>(n));
    };
    return std::pair{text(cert_out.get()), text(key_out.get())};
}

tl::expected<server_tls, std::string> server_tls_from_pem(const std::string& cert_pem,
                                                          const std::string& key_pem) {
    server_tls out{ssl::context(ssl::context::tls_server), {}};
    harden(out.context);
    boost::system::error_code ec;
    out.context.use_certificate_chain(boost::asio::buffer(cert_pem), ec);
    if (!ec) out.context.use_private_key(boost::asio::buffer(key_pem), ssl::context::pem, ec);
    if (ec || SSL_CTX_check_private_key(out.context.native_handle()) != 1)
        return tl::unexpected("the handed-over control certificate does not load: " +
                              (ec ? ec.message() : openssl_error()));
    out.fingerprint = fingerprint_of(SSL_CTX_get0_certificate(out.context.native_handle()));
    return out;
}

namespace {

using alpn_select = int (*)(SSL*, const unsigned char**, unsigned char*, const unsigned char*,
                            unsigned, void*);

// A hardened server context serving the PEM chain and key, choosing ALPN with `select`.
tl::expected<ssl::context, std::string> server_context_from_pem(const std::string& chain_pem,
                                                                const std::string& key_pem,
                                                                alpn_select select) {
    ssl::context ctx(ssl::context::tls_server);
    harden(ctx);
    SSL_CTX_set_alpn_select_cb(ctx.native_handle(), select, nullptr);
    boost::system::error_code ec;
    ctx.use_certificate_chain(boost::asio::buffer(chain_pem), ec);
    if (!ec) ctx.use_private_key(boost::asio::buffer(key_pem), ssl::context::pem, ec);
    if (ec || SSL_CTX_check_private_key(ctx.native_handle()) != 1)
        return tl::unexpected("the certificate does not load: " +
                              (ec ? ec.message() : openssl_error()));
    return ctx;
}

int select_acme_tls(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                    unsigned inlen, void*) {
    static const unsigned char acme_tls[] = {10, 'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, acme_tls, sizeof acme_tls, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;  // RFC 8737 section 3: acme-tls/1 or nothing
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace

tl::expected<ssl::context, std::string> https_context_from_pem(const std::string& chain_pem,
                                                              const std::string& key_pem) {
    return server_context_from_pem(chain_pem, key_pem, select_http11);
}

tl::expected<ssl::context, std::string> acme_challenge_context(const std::string& cert_pem,
                                                              const std::string& key_pem) {
    return server_context_from_pem(cert_pem, key_pem, select_acme_tls);
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

namespace {

// Where a connection's pinned fingerprint is kept for the verify callback.
int pin_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// Pinning: the chain does not matter, only that the relay's own certificate matches.
int verify_pinned(int, X509_STORE_CTX* store) {
    if (X509_STORE_CTX_get_error_depth(store) > 0) return 1;
    auto* ssl = static_cast<SSL*>(
        X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    const auto* want = static_cast<const std::string*>(SSL_get_ex_data(ssl, pin_index()));
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    const bool match = want && cert && fingerprint_of(cert) == "sha256:" + *want;
    X509_STORE_CTX_set_error(store, match ? X509_V_OK : X509_V_ERR_CERT_REJECTED);
    return match ? 1 : 0;
}

}  // namespace

void configure_client_stream(SSL* ssl, const client_trust& trust, const std::string& host) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    const bool is_ip = !ec;
    if (!is_ip) SSL_set_tlsext_host_name(ssl, host.c_str());  // SNI takes names only
    if (trust.insecure) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    } else if (!trust.fingerprint.empty()) {
        SSL_set_ex_data(ssl, pin_index(), const_cast<std::string*>(&trust.fingerprint));
        SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_pinned);
    } else {
        SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
        else
            SSL_set1_host(ssl, host.c_str());
    }
}

void offer_control_alpn(SSL* ssl) {
    static const unsigned char protos[] = {10, 'p', 'o', 'r', 't', 'h', 'o', 'l', 'e', '/', '1'};
    SSL_set_alpn_protos(ssl, protos, sizeof protos);
}

double not_after(SSL_CTX* ctx) {
    X509* cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) return 0;
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
    return static_cast<double>(timegm(&tm));
}

bool https_certificates::covers(const std::string& host) const {
    if (ca_) return false;  // self-signed is for development: a real certificate is better
    const std::lock_guard lock(mutex_);
    for (const auto& e : entries_) {
        if (fallback_ && &e == &entries_.front()) continue;
        for (const auto& pattern : e.names)
            if (pattern == host || name_matches(pattern, host)) return true;
    }
    return false;
}

std::vector<std::pair<std::string, double>> https_certificates::expiries() const {
    std::vector<std::pair<std::string, double>> out;
    const std::lock_guard lock(mutex_);
    for (const auto& e : entries_) {
        // Self-signed mode mints one per name visitors ask for: the labels stay bounded.
        if (out.size() == 100) break;
        if (fallback_ && &e == &entries_.front()) continue;  // made at load, never presented as real
        out.emplace_back(e.names.empty() ? std::string("default") : e.names.front(),
                         not_after(const_cast<boost::asio::ssl::context&>(e.context)
                                       .native_handle()));
    }
    return out;
}

}  // namespace porthole::net
