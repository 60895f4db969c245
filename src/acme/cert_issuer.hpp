#pragma once
// Which names get a certificate from the CA, and when: on demand, the first
// time a visitor's ClientHello names one the relay serves (its domain, a site's
// host, a tunnel a client holds); one order per name at a time, within the
// issuance budget; renewed after `renew_after` of its lifetime; installed for
// the HTTPS edge's SNI without a restart, the old certificate serving until the
// new one is in. Stored certificates still valid are installed at start.
#include "acme/acme_client.hpp"
#include "acme/certificate_store.hpp"
#include "acme/challenge_answers.hpp"
#include "acme/dns_publisher.hpp"
#include "acme/issuance_budget.hpp"
#include "net/tls.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace porthole::acme {

struct issuer_settings {
    client_settings client;
    std::string state_dir;
    std::string ca_root;
    double renew_after = 2.0 / 3.0;  // of a certificate's lifetime
    budget_limits budget{};
    // DNS-01: where its records go; with it, DOMAIN and *.DOMAIN are one certificate, ordered
    // at start, that serves the domain and every name one label under it.
    std::optional<config::acme_dns_config> dns{};
    std::string domain{};
};

struct issuer_counters {
    std::uint64_t issued = 0;
    std::uint64_t renewed = 0;
    std::uint64_t failed = 0;
    std::uint64_t over_budget = 0;
};

class cert_issuer final : public net::certificate_source,
                          public std::enable_shared_from_this<cert_issuer> {
public:
    // Resolves the CA's host (blocking, at start) and opens the store.
    static tl::expected<std::shared_ptr<cert_issuer>, std::string> make(issuer_settings settings);

    // Whether a name may get a certificate (the relay's domain, a site's host, a
    // held tunnel).
    void set_wanted(std::function<bool(const std::string&)> wanted) { wanted_ = std::move(wanted); }
    // Installs the stored certificates and schedules their renewals, on `ex`.
    void start(const boost::asio::any_io_executor& ex);
    void stop();

    // From any event loop's handshake: the certificates installed, under a lock of their own.
    bool use_for(SSL* ssl, const std::string& host) override;
    // Whether a valid certificate serves `host` now (a map lookup: asked per connection, from
    // any event loop).
    bool serves(const std::string& host) const override;
    // Returns once `host` (lowercase) has a certificate, or its order failed or
    // is refused, or `deadline` passed; starts the order when the name qualifies
    // and none is under way.
    boost::asio::awaitable<void> ensure(std::string host,
                                        std::chrono::steady_clock::time_point deadline);

    challenge_answers& answers() { return answers_; }
    const issuer_counters& counters() const { return counters_; }
    // Each certificate's name and when it expires (seconds since the epoch).
    std::vector<std::pair<std::string, double>> expiries() const;

private:
    explicit cert_issuer(issuer_settings settings, ca_origin ca,
                         std::unique_ptr<certificate_store> store,
                         std::unique_ptr<dns_publisher> dns);

    struct held {
        std::shared_ptr<boost::asio::ssl::context> context;
        certificate_facts facts;
        std::shared_ptr<boost::asio::steady_timer> renewal;
        int failures = 0;  // renewals that failed in a row
    };
    struct attempt {
        std::shared_ptr<boost::asio::steady_timer> done;   // cancelled when the order ends
        std::shared_ptr<boost::asio::steady_timer> retry;  // the wildcard's next try
        std::chrono::steady_clock::time_point retry_at{};  // after a failure: no order before
        int failures = 0;
        bool running = false;
    };

    static boost::asio::awaitable<void> run_order(std::shared_ptr<cert_issuer> self,
                                                  std::string name);
    static boost::asio::awaitable<void> renew_when_due(
        std::shared_ptr<cert_issuer> self, std::string name,
        std::shared_ptr<boost::asio::steady_timer> timer);
    // After a failed order of the wildcard: another when `timer` expires.
    static boost::asio::awaitable<void> retry_when_due(
        std::shared_ptr<cert_issuer> self, std::string name,
        std::shared_ptr<boost::asio::steady_timer> timer);
    bool install(const std::string& name, const pem_pair& pem, bool announce);
    // The name whose certificate serves `host`: "*.DOMAIN" for DOMAIN and NAME.DOMAIN when
    // DNS-01 gets the wildcard, else `host` itself.
    std::string certificate_name(const std::string& host) const;
    // Starts an order for `name` unless one runs, its retry time has not come, or the budget
    // says no; false when none runs after the call.
    bool start_order(const std::string& name);
    void schedule_renewal(const std::string& name);
    bool has_valid(const std::string& name) const;

    issuer_settings settings_;
    std::unique_ptr<certificate_store> store_;
    std::unique_ptr<dns_publisher> dns_;
    acme_client client_;
    challenge_answers answers_;
    issuance_budget budget_;
    issuer_counters counters_;
    std::function<bool(const std::string&)> wanted_;
    std::map<std::string, held> certs_;
    // What handshakes on every event loop use: each name's context and when it expires, written
    // by install() on the issuer's loop, read under the lock anywhere. A context replaced while
    // a handshake switches to it stays alive: SSL_set_SSL_CTX takes its reference under the lock.
    struct served {
        std::shared_ptr<boost::asio::ssl::context> context;
        double not_after = 0;
    };
    mutable std::mutex served_mutex_;
    std::map<std::string, served> served_;
    std::map<std::string, attempt> attempts_;
    std::optional<boost::asio::any_io_executor> ex_;
    bool stopped_ = false;
};

}  // namespace porthole::acme
