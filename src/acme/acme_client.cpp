#include "acme/acme_client.hpp"

#include "core/sha256.hpp"
#include "net/frame_io.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>

namespace porthole::acme {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto request_timeout = 30s;          // connect, request and the whole answer
constexpr auto authorization_patience = 120s;  // a CA validating a challenge
constexpr auto order_patience = 120s;          // a CA issuing after finalize
constexpr int nonce_retries = 5;
const std::string no_body;  // a GET's: named, as coroutine arguments must be (GCC 12)

bool success(const ca_reply& r) { return r.status >= 200 && r.status < 300; }

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::chrono::milliseconds poll_interval(const ca_reply& r, int round) {
    if (r.retry_after > 0)
        return std::min<std::chrono::milliseconds>(std::chrono::seconds(r.retry_after), 10s);
    // 250 ms, doubling to 5 s: a quick CA answers the first poll, a slow one is
    // not hammered.
    return std::min<std::chrono::milliseconds>(250ms * (1 << std::min(round, 5)), 5s);
}

}  // namespace

std::string describe_failure(const ca_reply& reply) {
    if (auto p = parse_problem(reply.body)) return fmt::format("{} ({})", p->text(), reply.status);
    return fmt::format("the CA answered {}", reply.status);
}

acme_client::acme_client(std::unique_ptr<ca_transport> ca, client_settings settings,
                         certificate_store& store)
    : ca_(std::move(ca)), settings_(std::move(settings)), store_(store) {}

asio::awaitable<tl::expected<void, std::string>> acme_client::ready() {
    if (!directory_) {
        auto got = co_await net::within(ca_->exchange(settings_.directory_url, no_body, false),
                                        request_timeout);
        if (!got) co_return tl::unexpected(std::string("the directory: timed out"));
        if (!*got) co_return tl::unexpected("the directory: " + got->error());
        if (!success(**got)) co_return tl::unexpected("the directory: " + describe_failure(**got));
        auto dir = parse_directory((*got)->body);
        if (!dir) co_return tl::unexpected(dir.error());
        if (dir->external_account_required &&
            (settings_.eab_kid.empty() || settings_.eab_hmac.empty()))
            co_return tl::unexpected(
                std::string("this CA requires External Account Binding: set acme "
                            "eab_kid and eab_hmac"));
        directory_ = std::move(*dir);
    }
    if (!key_) {
        auto stored = store_.load_account();
        if (!stored) co_return tl::unexpected(stored.error());
        if (*stored) {
            auto key = account_key::from_pem((*stored)->key_pem);
            if (!key)
                co_return tl::unexpected(
                    fmt::format("{}/account.key: {}", store_.where(), key.error()));
            key_ = std::move(*key);
            kid_ = (*stored)->url;
        } else {
            auto key = account_key::generate();
            if (!key) co_return tl::unexpected(key.error());
            key_ = std::move(*key);
            // Stored before it is registered: a crash in between registers the same
            // key again.
            if (auto saved = store_.save_account({key_->pem(), {}}); !saved)
                co_return tl::unexpected(saved.error());
        }
    }
    if (kid_.empty()) {
        auto registered = co_await register_account();
        if (!registered) co_return registered;
    }
    co_return tl::expected<void, std::string>();
}

asio::awaitable<tl::expected<void, std::string>> acme_client::register_account() {
    nlohmann::json payload = {{"termsOfServiceAgreed", true}};
    if (!settings_.email.empty())
        payload["contact"] = nlohmann::json::array({"mailto:" + settings_.email});
    if (!settings_.eab_kid.empty()) {
        auto eab = external_account_binding(*key_, settings_.eab_kid, settings_.eab_hmac,
                                            directory_->new_account);
        if (!eab) co_return tl::unexpected(eab.error());
        payload["externalAccountBinding"] = nlohmann::json::parse(*eab);
    }
    const std::string body = payload.dump();
    auto reply = co_await post(directory_->new_account, &body);
    if (!reply) co_return tl::unexpected("registering the account: " + reply.error());
    if (!success(*reply))
        co_return tl::unexpected("registering the account: " + describe_failure(*reply));
    if (reply->location.empty())
        co_return tl::unexpected(std::string("registering the account: no account URL came back"));
    kid_ = reply->location;
    if (auto saved = store_.save_account({key_->pem(), kid_}); !saved)
        co_return tl::unexpected(saved.error());
    spdlog::info("acme: account {} registered{}", kid_,
                 settings_.email.empty() ? "" : " for " + settings_.email);
    co_return tl::expected<void, std::string>();
}

asio::awaitable<tl::expected<std::string, std::string>> acme_client::take_nonce() {
    if (!nonce_.empty()) co_return std::exchange(nonce_, {});
    auto got =
        co_await net::within(ca_->exchange(directory_->new_nonce, no_body, false), request_timeout);
    if (!got) co_return tl::unexpected(std::string("a nonce: timed out"));
    if (!*got) co_return tl::unexpected("a nonce: " + got->error());
    if ((*got)->nonce.empty()) co_return tl::unexpected(std::string("the CA gave no nonce"));
    co_return std::move((*got)->nonce);
}

asio::awaitable<tl::expected<ca_reply, std::string>> acme_client::post(const std::string& url,
                                                                       const std::string* payload) {
    for (int attempt = 0;; ++attempt) {
        auto nonce = co_await take_nonce();
        if (!nonce) co_return tl::unexpected(nonce.error());
        const std::string kid = url == directory_->new_account ? std::string() : kid_;
        auto body =
            sign_request(*key_, kid, *nonce, url,
                         payload ? std::optional<std::string_view>(*payload) : std::nullopt);
        if (!body) co_return tl::unexpected(body.error());
        auto got = co_await net::within(ca_->exchange(url, *body, true), request_timeout);
        if (!got) co_return tl::unexpected(std::string("timed out"));
        if (!*got) co_return tl::unexpected(got->error());
        nonce_ = (*got)->nonce;
        if ((*got)->status == 400 && attempt < nonce_retries)
            if (auto p = parse_problem((*got)->body); p && p->type == "badNonce") continue;
        co_return std::move(**got);
    }
}

asio::awaitable<tl::expected<void, order_failure>> acme_client::authorize(
    const std::string& url, challenge_answers& answers) {
    auto reply = co_await post(url, nullptr);
    if (!reply) co_return tl::unexpected(order_failure{"an authorization: " + reply.error()});
    if (!success(*reply))
        co_return tl::unexpected(order_failure{"an authorization: " + describe_failure(*reply)});
    auto authz = parse_authorization(reply->body);
    if (!authz) co_return tl::unexpected(order_failure{authz.error()});
    if (authz->status == "valid") co_return tl::expected<void, order_failure>();
    if (authz->status != "pending")
        co_return tl::unexpected(order_failure{
            fmt::format("the authorization of {} is {}", authz->identifier, authz->status)});
    const challenge* chosen = nullptr;
    for (const auto& wanted : settings_.challenges) {
        // DNS-01 publishes in the relay's own zone: for its domain and the names under it.
        if (wanted == "dns-01" &&
            (!settings_.dns ||
             (!settings_.dns_domain.empty() && authz->identifier != settings_.dns_domain &&
              !authz->identifier.ends_with("." + settings_.dns_domain))))
            continue;
        // A wildcard is proven only by DNS-01 (RFC 8555 section 7.1.3).
        if (authz->wildcard && wanted != "dns-01") continue;
        for (const auto& c : authz->challenges)
            if (c.type == wanted) {
                chosen = &c;
                break;
            }
        if (chosen) break;
    }
    if (!chosen)
        co_return tl::unexpected(order_failure{
            fmt::format("{}{}: the CA offers none of the challenges the relay is set to use",
                        authz->wildcard ? "*." : "", authz->identifier)});
    const std::string name = authz->identifier;
    const challenge ch = *chosen;
    const std::string key_auth = key_authorization(ch.token, *key_);
    if (ch.type == "http-01") {
        answers.add_http(ch.token, key_auth);
    } else if (ch.type == "tls-alpn-01") {
        if (auto ok = answers.add_tls_alpn(name, key_auth); !ok)
            co_return tl::unexpected(order_failure{ok.error()});
    } else if (ch.type != "dns-01") {
        co_return tl::unexpected(
            order_failure{fmt::format("{}: the {} challenge is not supported", name, ch.type)});
    }
    // RFC 8555 section 8.4: the TXT record holds the digest of the key authorization.
    const std::string record = "_acme-challenge." + name;
    const std::string txt = base64url(core::sha256_bytes(key_auth));
    if (ch.type == "dns-01") {
        auto published = co_await settings_.dns->add(record, txt);
        if (!published)
            co_return tl::unexpected(order_failure{fmt::format(
                "{}: publishing the DNS-01 record failed: {}", name, published.error())});
        if (settings_.dns_wait.count() > 0) co_await pause(settings_.dns_wait);
    }
    auto verdict = co_await validate(url, ch, name);
    if (ch.type == "http-01") {
        answers.remove_http(ch.token);
    } else if (ch.type == "tls-alpn-01") {
        answers.remove_tls_alpn(name);
    } else {
        auto removed = co_await settings_.dns->remove(record, txt);
        if (!removed) spdlog::warn("acme: the DNS-01 record {} stays: {}", record, removed.error());
    }
    co_return verdict;
}

asio::awaitable<tl::expected<void, order_failure>> acme_client::validate(const std::string& url,
                                                                         const challenge& ch,
                                                                         const std::string& name) {
    const std::string empty_object = "{}";
    auto accepted = co_await post(ch.url, &empty_object);
    if (!accepted)
        co_return tl::unexpected(order_failure{"answering the challenge: " + accepted.error()});
    if (!success(*accepted))
        co_return tl::unexpected(
            order_failure{"answering the challenge: " + describe_failure(*accepted)});
    const auto give_up = std::chrono::steady_clock::now() + authorization_patience;
    for (int round = 0; std::chrono::steady_clock::now() < give_up; ++round) {
        auto polled = co_await post(url, nullptr);
        if (!polled) co_return tl::unexpected(order_failure{"an authorization: " + polled.error()});
        if (!success(*polled))
            co_return tl::unexpected(
                order_failure{"an authorization: " + describe_failure(*polled)});
        auto now = parse_authorization(polled->body);
        if (!now) co_return tl::unexpected(order_failure{now.error()});
        if (now->status == "valid") co_return tl::expected<void, order_failure>();
        if (now->status != "pending") {
            std::string why = fmt::format("{}: {} failed", name, ch.type);
            for (const auto& c : now->challenges)
                if (c.type == ch.type && c.error) why += ": " + c.error->text();
            co_return tl::unexpected(order_failure{why, true});
        }
        const auto wait = poll_interval(*polled, round);
        co_await pause(wait);
    }
    co_return tl::unexpected(order_failure{
        fmt::format("{}: the CA did not decide the {} challenge in time", name, ch.type), true});
}

asio::awaitable<tl::expected<acme::order, order_failure>> acme_client::poll_order(
    const std::string& url, bool issued) {
    const auto give_up = std::chrono::steady_clock::now() + order_patience;
    for (int round = 0; std::chrono::steady_clock::now() < give_up; ++round) {
        auto polled = co_await post(url, nullptr);
        if (!polled) co_return tl::unexpected(order_failure{"the order: " + polled.error()});
        if (!success(*polled))
            co_return tl::unexpected(order_failure{"the order: " + describe_failure(*polled)});
        auto o = parse_order(polled->body);
        if (!o) co_return tl::unexpected(order_failure{o.error()});
        if (o->status == "invalid")
            co_return tl::unexpected(order_failure{
                "the order became invalid" + (o->error ? ": " + o->error->text() : std::string())});
        if (o->status == "valid" || (!issued && o->status != "pending")) co_return std::move(*o);
        const auto wait = poll_interval(*polled, round);
        co_await pause(wait);
    }
    co_return tl::unexpected(order_failure{"the CA did not finish the order in time"});
}

asio::awaitable<tl::expected<pem_pair, order_failure>> acme_client::order(
    const std::vector<std::string>& names, challenge_answers& answers) {
    auto is_ready = co_await ready();
    if (!is_ready) co_return tl::unexpected(order_failure{is_ready.error()});
    const std::string new_order = new_order_payload(names);
    auto placed = co_await post(directory_->new_order, &new_order);
    if (!placed) co_return tl::unexpected(order_failure{"a new order: " + placed.error()});
    if (placed->status == 400 || placed->status == 401 || placed->status == 403)
        if (auto p = parse_problem(placed->body); p && p->type == "accountDoesNotExist") {
            kid_.clear();  // the CA forgot the account (a test CA restarted): register
                           // again
            co_return tl::unexpected(
                order_failure{"the account is unknown to the CA; "
                              "registering again on the next try"});
        }
    if (!success(*placed)) {
        order_failure failure{"a new order: " + describe_failure(*placed)};
        if (auto p = parse_problem(placed->body); p && p->type == "rateLimited")
            failure.retry_after = std::chrono::seconds(placed->retry_after);
        co_return tl::unexpected(failure);
    }
    auto o = parse_order(placed->body);
    if (!o) co_return tl::unexpected(order_failure{o.error()});
    const std::string order_url = placed->location;
    if (order_url.empty()) co_return tl::unexpected(order_failure{"the CA gave no order URL"});
    for (const auto& authz : o->authorizations) {
        auto done = co_await authorize(authz, answers);
        if (!done) co_return tl::unexpected(done.error());
    }
    auto ready_order = co_await poll_order(order_url, false);
    if (!ready_order) co_return tl::unexpected(ready_order.error());
    auto request = make_certificate_request(names);
    if (!request) co_return tl::unexpected(order_failure{request.error()});
    if (ready_order->status == "ready") {
        const std::string payload = nlohmann::json{{"csr", base64url(request->csr_der)}}.dump();
        auto finalized = co_await post(ready_order->finalize, &payload);
        if (!finalized) co_return tl::unexpected(order_failure{"finalizing: " + finalized.error()});
        if (!success(*finalized))
            co_return tl::unexpected(order_failure{"finalizing: " + describe_failure(*finalized)});
    }
    auto issued = co_await poll_order(order_url, true);
    if (!issued) co_return tl::unexpected(issued.error());
    auto chain = co_await post(issued->certificate, nullptr);
    if (!chain) co_return tl::unexpected(order_failure{"the certificate: " + chain.error()});
    if (!success(*chain))
        co_return tl::unexpected(order_failure{"the certificate: " + describe_failure(*chain)});
    pem_pair out{std::move(chain->body), std::move(request->key_pem)};
    if (auto facts = read_chain(out.chain, out.key); !facts)
        co_return tl::unexpected(order_failure{"the certificate the CA sent: " + facts.error()});
    co_return out;
}

}  // namespace porthole::acme
