#include "acme/cert_issuer.hpp"

#include "net/frame_io.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>

#include <random>

namespace porthole::acme {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto first_retry = 1min;
constexpr auto longest_retry = std::chrono::seconds(1h);
constexpr auto shortest_renewal = 1s;  // a renewal is never due sooner after the last one

double epoch_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::chrono::seconds backoff(int failures) {
    const auto wait = first_retry * (1 << std::min(failures - 1, 10));
    return std::min<std::chrono::seconds>(wait, longest_retry);
}

std::string date_of(long long epoch) {
    return fmt::format("{:%Y-%m-%d %H:%M} UTC", fmt::gmtime(static_cast<std::time_t>(epoch)));
}

void log_failure(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::error("acme: an order failed unexpectedly: {}", ex.what());
    }
}

}  // namespace

tl::expected<std::shared_ptr<cert_issuer>, std::string> cert_issuer::make(
    issuer_settings settings) {
    auto ca = make_ca_origin(settings.client.directory_url, settings.ca_root);
    if (!ca) return tl::unexpected(ca.error());
    const std::string folder = ca->origin.port == 443
                                   ? ca->origin.host
                                   : fmt::format("{}_{}", ca->origin.host, ca->origin.port);
    auto store = make_file_store(settings.state_dir, folder);
    std::unique_ptr<dns_publisher> dns;
    if (settings.dns) {
        auto made = make_dns_publisher(*settings.dns);
        if (!made) return tl::unexpected(made.error());
        dns = std::move(*made);
    }
    return std::shared_ptr<cert_issuer>(
        new cert_issuer(std::move(settings), std::move(*ca), std::move(store), std::move(dns)));
}

cert_issuer::cert_issuer(issuer_settings settings, ca_origin ca,
                         std::unique_ptr<certificate_store> store,
                         std::unique_ptr<dns_publisher> dns)
    : settings_(std::move(settings)),
      store_(std::move(store)),
      dns_(std::move(dns)),
      client_(
          https_transport(std::move(ca)),
          [&] {
              auto c = settings_.client;
              c.dns = dns_.get();
              if (settings_.dns) c.dns_wait = settings_.dns->wait;
              return c;
          }(),
          *store_),
      budget_(settings_.budget) {}

void cert_issuer::start(const asio::any_io_executor& ex) {
    ex_ = ex;
    std::size_t installed = 0;
    for (const auto& [name, pem] : store_->load_certificates()) {
        auto facts = read_chain(pem.chain, pem.key);
        if (!facts) {
            spdlog::warn(
                "acme: the stored certificate for {} is unusable ({}); a visitor will "
                "order a new one",
                name, facts.error());
            continue;
        }
        budget_.issued(
            name, std::chrono::system_clock::time_point(std::chrono::seconds(facts->not_before)));
        if (static_cast<double>(facts->not_after) <= epoch_now()) continue;
        if (install(name, pem, false)) {
            ++installed;
            schedule_renewal(name);
        }
    }
    if (installed != 0)
        spdlog::info("acme: {} stored certificate{} in use from {}", installed,
                     installed == 1 ? "" : "s", store_->where());
    // The wildcard serves the domain and every tunnel: got at start, not when a visitor asks.
    if (dns_ && !settings_.domain.empty()) {
        const std::string wildcard = "*." + settings_.domain;
        if (!has_valid(wildcard)) start_order(wildcard);
    }
}

std::string cert_issuer::certificate_name(const std::string& host) const {
    if (!dns_ || settings_.domain.empty()) return host;
    const std::string& d = settings_.domain;
    const bool one_label_under = host.size() > d.size() + 1 && host.ends_with(d) &&
                                 host[host.size() - d.size() - 1] == '.' &&
                                 host.find('.') == host.size() - d.size() - 1;
    return host == d || one_label_under ? "*." + d : host;
}

void cert_issuer::stop() {
    stopped_ = true;
    for (auto& [name, h] : certs_)
        if (h.renewal) h.renewal->cancel();
    for (auto& [name, a] : attempts_) {
        if (a.done) a.done->cancel();
        if (a.retry) a.retry->cancel();
    }
}

bool cert_issuer::has_valid(const std::string& name) const {
    const auto it = certs_.find(name);
    return it != certs_.end() && static_cast<double>(it->second.facts.not_after) > epoch_now();
}

bool cert_issuer::use_for(SSL* ssl, const std::string& host) {
    const std::string name = certificate_name(host);
    const std::lock_guard lock(served_mutex_);
    const auto it = served_.find(name);
    if (it == served_.end() || it->second.not_after <= epoch_now()) return false;
    SSL_set_SSL_CTX(ssl, it->second.context->native_handle());
    return true;
}

bool cert_issuer::serves(const std::string& host) const {
    const std::string name = certificate_name(host);
    const std::lock_guard lock(served_mutex_);
    const auto it = served_.find(name);
    return it != served_.end() && it->second.not_after > epoch_now();
}

std::vector<std::pair<std::string, double>> cert_issuer::expiries() const {
    std::vector<std::pair<std::string, double>> out;
    for (const auto& [name, h] : certs_)
        out.emplace_back(name, static_cast<double>(h.facts.not_after));
    return out;
}

bool cert_issuer::install(const std::string& name, const pem_pair& pem, bool announce) {
    auto facts = read_chain(pem.chain, pem.key);
    if (!facts) {
        spdlog::warn("acme: the certificate for {} is unusable: {}", name, facts.error());
        return false;
    }
    auto ctx = net::https_context_from_pem(pem.chain, pem.key);
    if (!ctx) {
        spdlog::warn("acme: the certificate for {}: {}", name, ctx.error());
        return false;
    }
    auto& h = certs_[name];
    h.context = std::make_shared<asio::ssl::context>(std::move(*ctx));
    h.facts = std::move(*facts);
    h.failures = 0;
    {
        const std::lock_guard lock(served_mutex_);
        served_[name] = served{h.context, static_cast<double>(h.facts.not_after)};
    }
    if (announce)
        spdlog::info("acme: certificate for {} installed, valid until {}", name,
                     date_of(h.facts.not_after));
    return true;
}

void cert_issuer::schedule_renewal(const std::string& name) {
    if (!ex_ || stopped_) return;
    auto& h = certs_[name];
    const double lifetime =
        static_cast<double>(h.facts.not_after) - static_cast<double>(h.facts.not_before);
    const double interval = std::max(lifetime * settings_.renew_after, 0.0);
    // Up to 1% of the interval earlier, so certificates got together are not
    // renewed together.
    static std::mt19937_64 random{std::random_device{}()};
    const double jitter = std::uniform_real_distribution<double>(0, interval / 100)(random);
    double delay = static_cast<double>(h.facts.not_before) + interval - jitter - epoch_now();
    if (h.failures > 0) delay = std::max(delay, static_cast<double>(backoff(h.failures).count()));
    delay = std::max(delay, std::chrono::duration<double>(shortest_renewal).count());
    auto timer = std::make_shared<asio::steady_timer>(*ex_);
    timer->expires_after(std::chrono::duration_cast<steady::duration>(
        std::chrono::duration<double>(std::min(delay, 365.0 * 86400))));
    if (h.renewal) h.renewal->cancel();
    h.renewal = timer;
    auto self = shared_from_this();
    asio::co_spawn(*ex_, renew_when_due(self, name, timer), log_failure);
}

asio::awaitable<void> cert_issuer::renew_when_due(std::shared_ptr<cert_issuer> self,
                                                  std::string name,
                                                  std::shared_ptr<asio::steady_timer> timer) {
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    if (self->stopped_) co_return;
    const auto it = self->certs_.find(name);
    if (it == self->certs_.end() || it->second.renewal != timer) co_return;  // superseded
    if (!name.starts_with("*.") && self->wanted_ && !self->wanted_(name)) {
        spdlog::info(
            "acme: the certificate for {} is not renewed: nothing on this relay serves that name "
            "any more (it is valid until {})",
            name, date_of(it->second.facts.not_after));
        co_return;
    }
    auto& a = self->attempts_[name];
    if (a.running) co_return;  // an order under way installs and schedules
    a.running = true;
    a.done = std::make_shared<asio::steady_timer>(*self->ex_, steady::time_point::max());
    co_await run_order(self, name);
}

asio::awaitable<void> cert_issuer::run_order(std::shared_ptr<cert_issuer> self, std::string name) {
    self->budget_.ordered(std::chrono::system_clock::now());
    const bool renewal = self->certs_.contains(name);
    // A wildcard comes with its base name: one certificate for DOMAIN and *.DOMAIN.
    const std::vector<std::string> names = name.starts_with("*.")
                                               ? std::vector<std::string>{name.substr(2), name}
                                               : std::vector<std::string>{name};
    spdlog::info("acme: ordering a certificate for {}{}", name, renewal ? " (renewal)" : "");
    auto got = co_await self->client_.order(names, self->answers_);
    auto& a = self->attempts_[name];
    if (!self->stopped_) {
        if (got && self->install(name, *got, true)) {
            ++(renewal ? self->counters_.renewed : self->counters_.issued);
            self->budget_.issued(name, std::chrono::system_clock::now());
            if (auto saved = self->store_->save_certificate(name, *got); !saved)
                spdlog::warn("acme: the certificate for {} is in use but not stored: {}", name,
                             saved.error());
            a.failures = 0;
            a.retry_at = {};
            self->schedule_renewal(name);
        } else {
            ++self->counters_.failed;
            const order_failure failure =
                got ? order_failure{"the issued certificate did not load"} : got.error();
            if (failure.authorization_failed)
                self->budget_.failed(name, std::chrono::system_clock::now());
            ++a.failures;
            auto wait = std::max(backoff(a.failures), failure.retry_after);
            a.retry_at = steady::now() + wait;
            spdlog::warn(
                "acme: no certificate for {}: {}; {}", name, failure.text,
                renewal ? fmt::format("the current one serves until {}; trying again in {} s",
                                      date_of(self->certs_[name].facts.not_after), wait.count())
                        : fmt::format("visitors get the fallback certificate; trying "
                                      "again after {} s",
                                      wait.count()));
            if (renewal) {
                auto& h = self->certs_[name];
                h.failures = a.failures;
                self->schedule_renewal(name);
            } else if (name.starts_with("*.")) {
                // The wildcard is the relay's own: tried again without waiting for a visitor.
                auto timer = std::make_shared<asio::steady_timer>(*self->ex_, wait);
                a.retry = timer;
                asio::co_spawn(*self->ex_, retry_when_due(self, name, timer), log_failure);
            }
        }
    }
    a.running = false;
    if (a.done) a.done->cancel();
}

asio::awaitable<void> cert_issuer::retry_when_due(std::shared_ptr<cert_issuer> self,
                                                  std::string name,
                                                  std::shared_ptr<asio::steady_timer> timer) {
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    if (!self->stopped_ && !self->has_valid(name)) self->start_order(name);
}

bool cert_issuer::start_order(const std::string& name) {
    auto& a = attempts_[name];
    if (a.running) return true;
    if (steady::now() < a.retry_at) return false;
    if (auto why = budget_.refusal(name, std::chrono::system_clock::now())) {
        ++counters_.over_budget;
        a.retry_at = steady::now() + first_retry;  // said once a minute, not per visitor
        spdlog::warn(
            "acme: no order for {}: over the issuance budget ({}); visitors get the "
            "fallback certificate",
            name, *why);
        return false;
    }
    a.running = true;
    a.done = std::make_shared<asio::steady_timer>(*ex_, steady::time_point::max());
    auto self = shared_from_this();
    asio::co_spawn(*ex_, run_order(self, name), log_failure);
    return true;
}

asio::awaitable<void> cert_issuer::ensure(std::string host, steady::time_point deadline) {
    if (stopped_ || !ex_) co_return;
    const std::string name = certificate_name(host);
    if (has_valid(name) || !wanted_ || !wanted_(host)) co_return;
    if (!start_order(name)) co_return;
    const auto done = attempts_[name].done;
    const auto left = deadline - steady::now();
    if (left <= steady::duration::zero()) co_return;
    co_await net::within(done->async_wait(asio::as_tuple(asio::use_awaitable)), left);
}

}  // namespace porthole::acme
