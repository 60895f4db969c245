#pragma once
// The answers to the challenges of orders under way: HTTP-01 key authorizations
// by token (the HTTP edge serves them at /.well-known/acme-challenge/TOKEN) and
// TLS-ALPN-01 certificates by name (the HTTPS edge hands them to a ClientHello
// offering acme-tls/1). Each lives from the moment its challenge is accepted
// until its authorization is decided.
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace boost::asio::ssl {
class context;
}

namespace porthole::acme {

class challenge_answers {
public:
    void add_http(const std::string& token, const std::string& key_authorization);
    void remove_http(const std::string& token);
    // The body to answer GET /.well-known/acme-challenge/TOKEN with, or nullptr.
    const std::string* http_answer(std::string_view token) const;

    // Makes the RFC 8737 certificate for `name` from the key authorization.
    tl::expected<void, std::string> add_tls_alpn(const std::string& name,
                                                 const std::string& key_authorization);
    void remove_tls_alpn(const std::string& name);
    // The context answering an acme-tls/1 ClientHello for `name` (lowercase), or
    // nullptr.
    std::shared_ptr<boost::asio::ssl::context> tls_alpn_context(const std::string& name) const;

    bool empty() const { return http_.empty() && tls_alpn_.empty(); }

private:
    std::map<std::string, std::string, std::less<>> http_;
    std::map<std::string, std::shared_ptr<boost::asio::ssl::context>> tls_alpn_;
};

}  // namespace porthole::acme
