#pragma once
// Where the ACME account and the certificates it got are kept, so a restart
// orders nothing that is still valid. An interface: files in state_dir now; a
// store several relays share next.
#include "acme/acme_certs.hpp"

#include <tl/expected.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace porthole::acme {

struct stored_account {
    std::string key_pem;
    std::string url;  // the account's URL at the CA (its "kid"); empty until registered
};

class certificate_store {
public:
    virtual ~certificate_store() = default;
    virtual tl::expected<std::optional<stored_account>, std::string> load_account() = 0;
    virtual tl::expected<void, std::string> save_account(const stored_account& account) = 0;
    // Every stored certificate, by the name it was ordered for ("*.example.com"
    // for a wildcard).
    virtual std::vector<std::pair<std::string, pem_pair>> load_certificates() = 0;
    virtual tl::expected<void, std::string> save_certificate(const std::string& name,
                                                             const pem_pair& pem) = 0;
    virtual std::string where() const = 0;  // for messages: "/var/lib/porthole/acme/ca.example"
};

// DIR/acme/CA/account.key (0600) and account.url; DIR/acme/CA/certs/NAME.pem
// and NAME.key (0600), each written to a temporary file and renamed. CA is the
// CA's host (and port), so accounts at two CAs (staging, production) never mix.
std::unique_ptr<certificate_store> make_file_store(const std::string& state_dir,
                                                   const std::string& ca_host);

}  // namespace porthole::acme
