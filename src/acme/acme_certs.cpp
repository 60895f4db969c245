#include "acme/acme_certs.hpp"

#include "acme/jws.hpp"
#include "core/openssl_owned.hpp"
#include "core/sha256.hpp"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>

namespace porthole::acme {

using core::openssl_error;
using core::owned;

namespace {

std::string san_of(const std::vector<std::string>& names) {
    std::string san;
    for (const auto& n : names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
    return san;
}

long long epoch_of(const ASN1_TIME* t) {
    struct tm parts = {};
    if (!t || ASN1_TIME_to_tm(t, &parts) != 1) return 0;
    return static_cast<long long>(timegm(&parts));
}

}  // namespace

tl::expected<certificate_request, std::string> make_certificate_request(
    const std::vector<std::string>& names) {
    if (names.empty()) return tl::unexpected(std::string("a certificate needs a name"));
    const owned<EVP_PKEY, EVP_PKEY_free> key(EVP_EC_gen("P-256"));
    const owned<X509_REQ, X509_REQ_free> req(X509_REQ_new());
    if (!key || !req) return tl::unexpected("cannot make a key: " + openssl_error());
    X509_NAME* subject = X509_REQ_get_subject_name(req.get());
    const std::string san = san_of(names);
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
    const bool listed = exts && ext && sk_X509_EXTENSION_push(exts, ext) > 0;
    if (!listed && ext) X509_EXTENSION_free(ext);
    const bool ok =
        listed && X509_REQ_set_version(req.get(), 0) == 1 &&
        (names.front().size() > 64 ||  // a common name has at most 64 characters
         X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                    reinterpret_cast<const unsigned char*>(names.front().c_str()),
                                    -1, -1, 0) == 1) &&
        X509_REQ_add_extensions(req.get(), exts) == 1 &&
        X509_REQ_set_pubkey(req.get(), key.get()) == 1 &&
        X509_REQ_sign(req.get(), key.get(), EVP_sha256()) > 0;
    if (exts) sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (!ok) return tl::unexpected("cannot make the certificate request: " + openssl_error());
    unsigned char* der = nullptr;
    const int len = i2d_X509_REQ(req.get(), &der);
    if (len <= 0)
        return tl::unexpected("cannot encode the certificate request: " + openssl_error());
    certificate_request out{
        core::pem_text(key.get()),
        std::string(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len))};
    OPENSSL_free(der);
    return out;
}

tl::expected<certificate_facts, std::string> read_chain(std::string_view chain_pem,
                                                        std::string_view key_pem) {
    const owned<BIO, BIO_free> bio(
        BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
    const owned<X509, X509_free> leaf(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)
                                          : nullptr);
    if (!leaf) {
        ERR_clear_error();
        return tl::unexpected(std::string("no PEM certificate"));
    }
    certificate_facts facts;
    facts.not_before = epoch_of(X509_get0_notBefore(leaf.get()));
    facts.not_after = epoch_of(X509_get0_notAfter(leaf.get()));
    const owned<GENERAL_NAMES, GENERAL_NAMES_free> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), i);
        if (g->type != GEN_DNS) continue;
        const auto* s = g->d.dNSName;
        std::string name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<std::size_t>(ASN1_STRING_length(s)));
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        facts.names.push_back(std::move(name));
    }
    if (!key_pem.empty()) {
        const owned<BIO, BIO_free> kbio(
            BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
        const owned<EVP_PKEY, EVP_PKEY_free> key(
            kbio ? PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr) : nullptr);
        if (!key || X509_check_private_key(leaf.get(), key.get()) != 1) {
            ERR_clear_error();
            return tl::unexpected(std::string("the key is not the certificate's"));
        }
    }
    return facts;
}

tl::expected<pem_pair, std::string> tls_alpn_certificate(const std::string& name,
                                                         std::string_view key_authorization) {
    const owned<EVP_PKEY, EVP_PKEY_free> key(EVP_EC_gen("P-256"));
    const owned<X509, X509_free> cert(X509_new());
    if (!key || !cert) return tl::unexpected("cannot make a key: " + openssl_error());
    std::array<unsigned char, 16> serial{};
    RAND_bytes(serial.data(), serial.size());
    serial[0] &= 0x7f;
    const owned<BIGNUM, BN_free> bn(BN_bin2bn(serial.data(), serial.size(), nullptr));
    // RFC 8737 section 3: extnValue is the DER of an OCTET STRING of the 32-byte
    // digest.
    const std::string digest = core::sha256_bytes(key_authorization);
    std::string der_value = std::string("\x04\x20", 2) + digest;
    const owned<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free> value(ASN1_OCTET_STRING_new());
    const owned<ASN1_OBJECT, ASN1_OBJECT_free> oid(OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
    const std::string san = "DNS:" + name;
    const owned<X509_EXTENSION, X509_EXTENSION_free> san_ext(
        X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str()));
    const bool set =
        bn && value && oid && san_ext &&
        ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>(der_value.data()),
                              static_cast<int>(der_value.size())) == 1 &&
        X509_set_version(cert.get(), 2) == 1 &&
        BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) &&
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) &&
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600) &&
        X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("ACME challenge"), -1, -1,
                                   0) == 1 &&
        X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) == 1 &&
        X509_set_pubkey(cert.get(), key.get()) == 1 && X509_add_ext(cert.get(), san_ext.get(), -1);
    if (!set) return tl::unexpected("cannot make the challenge certificate: " + openssl_error());
    const owned<X509_EXTENSION, X509_EXTENSION_free> id_ext(
        X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get()));
    if (!id_ext || !X509_add_ext(cert.get(), id_ext.get(), -1) ||
        X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
        return tl::unexpected("cannot make the challenge certificate: " + openssl_error());
    return pem_pair{core::pem_text(cert.get()), core::pem_text(key.get())};
}

}  // namespace porthole::acme
