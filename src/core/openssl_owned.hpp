#pragma once
// OpenSSL objects held by std::unique_ptr with their own free function, the
// last OpenSSL error as text, and PEM text of a key or certificate.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

namespace porthole::core {

template <auto Free>
struct free_with {
    template <class T>
    void operator()(T* p) const {
        Free(p);
    }
};
template <class T, auto Free>
using owned = std::unique_ptr<T, free_with<Free>>;

// The oldest queued OpenSSL error, and the queue cleared.
inline std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "an unknown OpenSSL error";
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    return text;
}

// A private key as PKCS#8 PEM, or a certificate as PEM; "" if OpenSSL cannot
// write it.
inline std::string pem_text(EVP_PKEY* key) {
    const owned<BIO, BIO_free> bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return {};
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return {data, static_cast<std::size_t>(len)};
}
inline std::string pem_text(X509* cert) {
    const owned<BIO, BIO_free> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return {data, static_cast<std::size_t>(len)};
}

}  // namespace porthole::core
