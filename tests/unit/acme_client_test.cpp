// The RFC 8555 flow of acme_client against a scripted CA: recorded answers in the shapes Pebble
// and Let's Encrypt send, checked request by request (nonces, kid, URLs), without sockets.
#include "acme/acme_client.hpp"
#include "core/openssl_owned.hpp"
#include "policy/jwks.hpp"

#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>

namespace porthole::acme {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;

class memory_store final : public certificate_store {
public:
    tl::expected<std::optional<stored_account>, std::string> load_account() override {
        return account;
    }
    tl::expected<void, std::string> save_account(const stored_account& a) override {
        account = a;
        return {};
    }
    std::vector<std::pair<std::string, pem_pair>> load_certificates() override { return {}; }
    tl::expected<void, std::string> save_certificate(const std::string&, const pem_pair&) override {
        return {};
    }
    std::string where() const override { return "memory"; }

    std::optional<stored_account> account;
};

std::string from_base64url(const std::string& b64) { return policy::base64url_decode(b64).value_or(""); }

// A certificate for the CSR's key and names, signed by a throwaway CA key: what a CA returns.
std::string issue_for(const std::string& csr_der) {
    const auto* p = reinterpret_cast<const unsigned char*>(csr_der.data());
    core::owned<X509_REQ, X509_REQ_free> csr(
        d2i_X509_REQ(nullptr, &p, static_cast<long>(csr_der.size())));
    if (!csr) return {};
    core::owned<EVP_PKEY, EVP_PKEY_free> ca_key(EVP_EC_gen("P-256"));
    core::owned<X509, X509_free> cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 90L * 24 * 3600);
    X509_set_pubkey(cert.get(), X509_REQ_get0_pubkey(csr.get()));
    X509_set_subject_name(cert.get(), X509_REQ_get_subject_name(csr.get()));
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("Scripted CA"), -1, -1, 0);
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(csr.get());
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); ++i)
        X509_add_ext(cert.get(), sk_X509_EXTENSION_value(exts, i), -1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_sign(cert.get(), ca_key.get(), EVP_sha256());
    return core::pem_text(cert.get());
}

// Answers by path; every answer carries a fresh nonce, and every POST is checked for the
// nonce last handed out, the URL it went to, and a kid once the account exists.
class scripted_ca final : public ca_transport {
public:
    using handler = std::function<ca_reply(const json& payload)>;

    asio::awaitable<tl::expected<ca_reply, std::string>> exchange(const std::string& url,
                                                                  const std::string& body,
                                                                  bool post) override {
        const std::string path = url.substr(std::string("https://ca.test").size());
        requests.push_back((post ? "POST " : "GET ") + path);
        json payload;
        if (post) {
            const auto jws = json::parse(body);
            const auto header = json::parse(from_base64url(jws["protected"]));
            EXPECT_EQ(header["url"], url);
            EXPECT_EQ(header["nonce"], last_nonce) << path;
            EXPECT_EQ(header.contains("kid"), path != "/new-acct") << path;
            const std::string text = from_base64url(jws["payload"]);
            if (!text.empty()) payload = json::parse(text);
        }
        auto it = routes.find(path);
        ca_reply reply = it == routes.end() ? ca_reply{404} : it->second(payload);
        last_nonce = "nonce-" + std::to_string(++nonces);
        reply.nonce = last_nonce;
        co_return reply;
    }

    std::map<std::string, handler> routes;
    std::vector<std::string> requests;
    std::string last_nonce;
    int nonces = 0;
};

ca_reply json_reply(int status, const json& body, std::string location = {}) {
    ca_reply r;
    r.status = status;
    r.body = body.dump();
    r.location = std::move(location);
    return r;
}

json order_json(const std::string& status, bool with_certificate = false) {
    json o = {{"status", status},
              {"identifiers", {{{"type", "dns"}, {"value", "app.porthole.test"}}}},
              {"authorizations", {"https://ca.test/authz/1"}},
              {"finalize", "https://ca.test/finalize/1"}};
    if (with_certificate) o["certificate"] = "https://ca.test/cert/1";
    return o;
}

json authz_json(const std::string& status, const std::string& challenge_status = "pending") {
    return {{"status", status},
            {"identifier", {{"type", "dns"}, {"value", "app.porthole.test"}}},
            {"challenges",
             {{{"type", "tls-alpn-01"},
               {"url", "https://ca.test/chall/2"},
               {"token", "tok2"},
               {"status", "pending"}},
              {{"type", "http-01"},
               {"url", "https://ca.test/chall/1"},
               {"token", "tok1"},
               {"status", challenge_status}}}}};
}

struct fixture {
    scripted_ca* ca = nullptr;
    memory_store store;
    challenge_answers answers;
    std::unique_ptr<acme_client> client;
    bool challenge_answered = false;
    bool finalized = false;
    int authz_polls = 0;
    int order_polls = 0;

    fixture() {
        auto transport = std::make_unique<scripted_ca>();
        ca = transport.get();
        client_settings settings;
        settings.email = "ops@porthole.test";
        settings.directory_url = "https://ca.test/dir";
        client = std::make_unique<acme_client>(std::move(transport), settings, store);
        auto& r = ca->routes;
        r["/dir"] = [](const json&) {
            return json_reply(200, {{"newNonce", "https://ca.test/nonce"},
                                    {"newAccount", "https://ca.test/new-acct"},
                                    {"newOrder", "https://ca.test/new-order"}});
        };
        r["/nonce"] = [](const json&) { return ca_reply{200}; };
        r["/new-acct"] = [](const json& p) {
            EXPECT_EQ(p["termsOfServiceAgreed"], true);
            EXPECT_EQ(p["contact"][0], "mailto:ops@porthole.test");
            return json_reply(201, {{"status", "valid"}}, "https://ca.test/acct/1");
        };
        r["/new-order"] = [](const json& p) {
            EXPECT_EQ(p["identifiers"][0]["value"], "app.porthole.test");
            return json_reply(201, order_json("pending"), "https://ca.test/order/1");
        };
        r["/authz/1"] = [this](const json&) {
            if (!challenge_answered) return json_reply(200, authz_json("pending"));
            return json_reply(200, authz_json(++authz_polls < 2 ? "pending" : "valid"));
        };
        r["/chall/1"] = [this](const json& p) {
            EXPECT_TRUE(p.is_object() && p.empty());  // "{}": the answer is ready
            // While the CA validates, the relay serves the key authorization for the token.
            const std::string* served = answers.http_answer("tok1");
            EXPECT_NE(served, nullptr);
            if (served) {
                EXPECT_TRUE(served->starts_with("tok1."));
            }
            challenge_answered = true;
            return json_reply(200, {{"type", "http-01"}, {"status", "processing"}});
        };
        r["/order/1"] = [this](const json&) {
            if (!finalized) return json_reply(200, order_json("ready"));
            return json_reply(
                200, ++order_polls < 2 ? order_json("processing") : order_json("valid", true));
        };
        r["/finalize/1"] = [this](const json& p) {
            certificate = issue_for(from_base64url(p["csr"]));
            finalized = true;
            return json_reply(200, order_json("processing"));
        };
        r["/cert/1"] = [this](const json&) {
            ca_reply reply{200};
            reply.body = certificate;
            return reply;
        };
    }

    tl::expected<pem_pair, order_failure> order() {
        asio::io_context io;
        std::optional<tl::expected<pem_pair, order_failure>> result;
        const std::vector<std::string> names{"app.porthole.test"};
        asio::co_spawn(io, client->order(names, answers),
                       [&](std::exception_ptr e, tl::expected<pem_pair, order_failure> r) {
                           EXPECT_FALSE(e);
                           result = std::move(r);
                       });
        io.run();
        return result.value_or(tl::unexpected(order_failure{"did not finish"}));
    }

    std::string certificate;
};

TEST(AcmeClientFlow, RegistersOrdersAnswersFinalizesAndDownloads) {
    fixture f;
    auto got = f.order();
    ASSERT_TRUE(got) << got.error().text;
    auto facts = read_chain(got->chain, got->key);
    ASSERT_TRUE(facts) << facts.error();  // the certificate is for the key the client made
    EXPECT_EQ(facts->names, std::vector<std::string>{"app.porthole.test"});
    ASSERT_TRUE(f.store.account);
    EXPECT_EQ(f.store.account->url, "https://ca.test/acct/1");
    EXPECT_TRUE(f.answers.empty());  // nothing is served once the authorization is decided
    const std::vector<std::string> expected{
        "GET /dir",      "GET /nonce",    "POST /new-acct", "POST /new-order", "POST /authz/1",
        "POST /chall/1", "POST /authz/1", "POST /authz/1",  "POST /order/1",   "POST /finalize/1",
        "POST /order/1", "POST /order/1", "POST /cert/1"};
    EXPECT_EQ(f.ca->requests, expected);
}

TEST(AcmeClientFlow, ABadNonceIsRetriedWithTheNonceItBrought) {
    fixture f;
    int refused = 0;
    auto order = f.ca->routes["/new-order"];
    f.ca->routes["/new-order"] = [&](const json& p) {
        if (refused++ == 0)
            return json_reply(400, {{"type", "urn:ietf:params:acme:error:badNonce"},
                                    {"detail", "JWS has an invalid anti-replay nonce"}});
        return order(p);
    };
    auto got = f.order();
    ASSERT_TRUE(got) << got.error().text;
    EXPECT_EQ(refused, 2);
    // No extra trip for a nonce: the refusal's own Replay-Nonce was used.
    EXPECT_EQ(std::count(f.ca->requests.begin(), f.ca->requests.end(), "GET /nonce"), 1);
}

TEST(AcmeClientFlow, AFailedChallengeIsAnAuthorizationFailure) {
    fixture f;
    f.ca->routes["/authz/1"] = [&](const json&) {
        if (!f.challenge_answered) return json_reply(200, authz_json("pending"));
        json a = authz_json("invalid", "invalid");
        a["challenges"][1]["error"] = {{"type", "urn:ietf:params:acme:error:connection"},
                                       {"detail", "127.0.0.1: Connection refused"}};
        return json_reply(200, a);
    };
    auto got = f.order();
    ASSERT_FALSE(got);
    EXPECT_TRUE(got.error().authorization_failed);
    EXPECT_NE(got.error().text.find("connection: 127.0.0.1: Connection refused"), std::string::npos)
        << got.error().text;
    EXPECT_TRUE(f.answers.empty());
}

TEST(AcmeClientFlow, ARateLimitCarriesTheCasRetryAfter) {
    fixture f;
    f.ca->routes["/new-order"] = [](const json&) {
        auto r = json_reply(429, {{"type", "urn:ietf:params:acme:error:rateLimited"},
                                  {"detail", "too many certificates already issued"}});
        r.retry_after = 3600;
        return r;
    };
    auto got = f.order();
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().retry_after, std::chrono::seconds(3600));
    EXPECT_NE(got.error().text.find("rateLimited"), std::string::npos);
}

TEST(AcmeClientFlow, AStoredAccountIsUsedWithoutRegistering) {
    fixture f;
    auto key = account_key::generate();
    ASSERT_TRUE(key);
    f.store.account = stored_account{key->pem(), "https://ca.test/acct/9"};
    auto got = f.order();
    ASSERT_TRUE(got) << got.error().text;
    EXPECT_EQ(std::count(f.ca->requests.begin(), f.ca->requests.end(), "POST /new-acct"), 0);
}

}  // namespace
}  // namespace porthole::acme
