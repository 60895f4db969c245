// Any JWK Set text: parsed without crashing, every key kept is a PEM that OpenSSL reads back as a
// key of the type it was taken as, and any HTTP response around it is read without crashing.
#include "policy/jwks.hpp"
#include "policy/jwks_fetch.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>

namespace {

int pkey_type(porthole::policy::jwk::type t) {
    using type = porthole::policy::jwk::type;
    return t == type::rsa ? EVP_PKEY_RSA : t == type::ec_p256 ? EVP_PKEY_EC : EVP_PKEY_ED25519;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto set = porthole::policy::parse_jwks(text)) {
        for (const auto& key : set->keys) {
            BIO* in = BIO_new_mem_buf(key.pem.data(), static_cast<int>(key.pem.size()));
            EVP_PKEY* read = PEM_read_bio_PUBKEY(in, nullptr, nullptr, nullptr);
            if (!read || EVP_PKEY_get_base_id(read) != pkey_type(key.kind) ||
                EVP_PKEY_eq(read, key.key.get()) != 1)
                std::abort();
            EVP_PKEY_free(read);
            BIO_free(in);
        }
    }
    (void)porthole::policy::base64url_decode(text);
    for (const bool eof : {false, true}) {
        auto body = porthole::policy::fetched_body(text, eof, 4096);
        if (body && *body && (*body)->size() > 4096) std::abort();
    }
    return 0;
}
