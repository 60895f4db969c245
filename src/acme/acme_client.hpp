#pragma once
// The RFC 8555 flow against one CA: the directory, a nonce kept from each
// answer, the account (made once, stored, found again after a restart), then an
// order per certificate: its authorizations answered by the first offered
// challenge the relay is set to use, finalized with a fresh key's CSR, polled
// until the certificate can be downloaded.
#include "acme/acme_certs.hpp"
#include "acme/acme_http.hpp"
#include "acme/acme_messages.hpp"
#include "acme/certificate_store.hpp"
#include "acme/challenge_answers.hpp"
#include "acme/dns_publisher.hpp"
#include "acme/jws.hpp"

#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace porthole::acme {

struct client_settings {
    std::string email;
    std::string directory_url;
    std::vector<std::string> challenges{"http-01", "tls-alpn-01"};  // in order of preference
    std::string eab_kid;
    std::string eab_hmac;
    dns_publisher* dns = nullptr;           // DNS-01's records; nullptr: no DNS-01
    std::chrono::milliseconds dns_wait{0};  // after publishing, before telling the CA
    std::string dns_domain{};  // DNS-01 only for this domain and names under it (its zone)
};

struct order_failure {
    std::string text;
    bool authorization_failed = false;    // a challenge was tried and failed (counted per name)
    std::chrono::seconds retry_after{0};  // the CA's Retry-After on a rate limit
};

class acme_client {
public:
    acme_client(std::unique_ptr<ca_transport> ca, client_settings settings,
                certificate_store& store);

    // The directory read and the account known (registered on first use); an
    // error says why not.
    boost::asio::awaitable<tl::expected<void, std::string>> ready();

    // One certificate for `names`: chain and key, or why not.
    boost::asio::awaitable<tl::expected<pem_pair, order_failure>> order(
        const std::vector<std::string>& names, challenge_answers& answers);

    const std::string& account_url() const { return kid_; }

private:
    // A signed POST (payload nullptr: POST-as-GET); a badNonce is retried with a
    // fresh nonce.
    boost::asio::awaitable<tl::expected<ca_reply, std::string>> post(const std::string& url,
                                                                     const std::string* payload);
    boost::asio::awaitable<tl::expected<std::string, std::string>> take_nonce();
    boost::asio::awaitable<tl::expected<void, std::string>> register_account();
    // Answers one authorization; an order_failure when it ends invalid or times
    // out.
    boost::asio::awaitable<tl::expected<void, order_failure>> authorize(const std::string& url,
                                                                        challenge_answers& answers);
    // Until the order is past its authorizations (ready, processing or valid), or
    // with `issued` until it is valid.
    // Tells the CA the challenge is ready and polls the authorization until it is decided.
    boost::asio::awaitable<tl::expected<void, order_failure>> validate(const std::string& url,
                                                                       const challenge& ch,
                                                                       const std::string& name);
    boost::asio::awaitable<tl::expected<acme::order, order_failure>> poll_order(
        const std::string& url, bool issued);

    std::unique_ptr<ca_transport> ca_;
    client_settings settings_;
    certificate_store& store_;
    std::optional<directory> directory_;
    std::optional<account_key> key_;
    std::string kid_;
    std::string nonce_;  // the last Replay-Nonce, used once
};

// The error text of a non-2xx answer: its problem document, else its status.
std::string describe_failure(const ca_reply& reply);

}  // namespace porthole::acme
