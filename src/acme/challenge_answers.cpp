#include "acme/challenge_answers.hpp"

#include "acme/acme_certs.hpp"
#include "net/tls.hpp"

namespace porthole::acme {

void challenge_answers::add_http(const std::string& token, const std::string& key_authorization) {
    http_[token] = key_authorization;
}

void challenge_answers::remove_http(const std::string& token) { http_.erase(token); }

const std::string* challenge_answers::http_answer(std::string_view token) const {
    const auto it = http_.find(token);
    return it == http_.end() ? nullptr : &it->second;
}

tl::expected<void, std::string> challenge_answers::add_tls_alpn(
    const std::string& name, const std::string& key_authorization) {
    auto pem = tls_alpn_certificate(name, key_authorization);
    if (!pem) return tl::unexpected(pem.error());
    auto ctx = net::acme_challenge_context(pem->chain, pem->key);
    if (!ctx) return tl::unexpected(ctx.error());
    tls_alpn_[name] = std::make_shared<boost::asio::ssl::context>(std::move(*ctx));
    return {};
}

void challenge_answers::remove_tls_alpn(const std::string& name) { tls_alpn_.erase(name); }

std::shared_ptr<boost::asio::ssl::context> challenge_answers::tls_alpn_context(
    const std::string& name) const {
    const auto it = tls_alpn_.find(name);
    return it == tls_alpn_.end() ? nullptr : it->second;
}

}  // namespace porthole::acme
