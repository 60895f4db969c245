#include "acme/acme_certs.hpp"
#include "acme/acme_http.hpp"
#include "acme/acme_messages.hpp"
#include "acme/certificate_store.hpp"
#include "acme/dns_publisher.hpp"
#include "acme/issuance_budget.hpp"
#include "acme/jws.hpp"
#include "core/sha256.hpp"
#include "policy/jwks.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
// <stdbool.h> first: without it ldns/common.h defines bool, true and false as macros.
#include <stdbool.h>  // NOLINT(modernize-deprecated-headers)
#include <ldns/ldns.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <cstring>
#include <fstream>

namespace porthole::acme {
namespace {

using json = nlohmann::json;

std::string decode(const std::string& b64) {
    auto d = policy::base64url_decode(b64);
    EXPECT_TRUE(d.has_value()) << b64;
    return d.value_or("");
}

// Checks an ES256 JWS signature (r || s) over `input` with `key`.
bool verifies(const account_key& key, const std::string& input, const std::string& rs) {
    if (rs.size() != 64) return false;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(rs.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(rs.data()) + 32, 32, nullptr));
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    const bool ok =
        EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
        EVP_DigestVerify(md, der, static_cast<std::size_t>(len),
                         reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

TEST(AcmeJws, Base64urlHasNoPadding) {
    EXPECT_EQ(base64url(""), "");
    EXPECT_EQ(base64url("f"), "Zg");
    EXPECT_EQ(base64url("fo"), "Zm8");
    EXPECT_EQ(base64url("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64url(std::string("\xfb\xff\xfe", 3)), "-__-");
}

TEST(AcmeJws, KeyRoundTripsThroughPemWithTheSameThumbprint) {
    auto key = account_key::generate();
    ASSERT_TRUE(key) << key.error();
    const auto jwk = json::parse(key->jwk());
    EXPECT_EQ(jwk["kty"], "EC");
    EXPECT_EQ(jwk["crv"], "P-256");
    EXPECT_EQ(decode(jwk["x"]).size(), 32u);
    // RFC 7638: members in lexicographic order, no whitespace.
    EXPECT_EQ(key->jwk().find("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\""), 0u);
    EXPECT_EQ(key->thumbprint(), base64url(core::sha256_bytes(key->jwk())));
    auto again = account_key::from_pem(key->pem());
    ASSERT_TRUE(again) << again.error();
    EXPECT_EQ(again->thumbprint(), key->thumbprint());
    EXPECT_EQ(key_authorization("tok", *key), "tok." + key->thumbprint());
}

TEST(AcmeJws, RefusesAKeyThatIsNotP256) {
    EXPECT_FALSE(account_key::from_pem("not a key"));
    EVP_PKEY* rsa = EVP_RSA_gen(2048);
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, rsa, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    const auto refused = account_key::from_pem(std::string(data, static_cast<std::size_t>(len)));
    BIO_free(bio);
    EVP_PKEY_free(rsa);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("P-256"), std::string::npos);
}

TEST(AcmeJws, SignedRequestCarriesNonceUrlAndKeyOrKid) {
    auto key = account_key::generate();
    ASSERT_TRUE(key);
    const std::string payload = R"({"termsOfServiceAgreed":true})";
    auto signed_body = sign_request(*key, "", "nonce-1", "https://ca.test/new-acct", payload);
    ASSERT_TRUE(signed_body);
    auto jws = json::parse(*signed_body);
    auto header = json::parse(decode(jws["protected"]));
    EXPECT_EQ(header["alg"], "ES256");
    EXPECT_EQ(header["nonce"], "nonce-1");
    EXPECT_EQ(header["url"], "https://ca.test/new-acct");
    EXPECT_EQ(header["jwk"].dump(), key->jwk());
    EXPECT_FALSE(header.contains("kid"));
    EXPECT_EQ(decode(jws["payload"]), payload);
    EXPECT_TRUE(verifies(
        *key, jws["protected"].get<std::string>() + "." + jws["payload"].get<std::string>(),
        decode(jws["signature"])));

    // With an account URL: kid, and POST-as-GET has an empty payload.
    signed_body =
        sign_request(*key, "https://ca.test/acct/7", "n2", "https://ca.test/order/1", std::nullopt);
    ASSERT_TRUE(signed_body);
    jws = json::parse(*signed_body);
    header = json::parse(decode(jws["protected"]));
    EXPECT_EQ(header["kid"], "https://ca.test/acct/7");
    EXPECT_FALSE(header.contains("jwk"));
    EXPECT_EQ(jws["payload"], "");
    EXPECT_TRUE(
        verifies(*key, jws["protected"].get<std::string>() + ".", decode(jws["signature"])));
    // A signature over other bytes does not verify: the check above can fail.
    EXPECT_FALSE(
        verifies(*key, jws["protected"].get<std::string>() + ".x", decode(jws["signature"])));
}

TEST(AcmeJws, ExternalAccountBindingIsAnHmacOverTheAccountKey) {
    auto key = account_key::generate();
    ASSERT_TRUE(key);
    const std::string mac_key = "secret-key-bytes-from-the-ca-123";
    auto eab = external_account_binding(*key, "kid-1", base64url(mac_key), "https://ca.test/na");
    ASSERT_TRUE(eab) << eab.error();
    const auto jws = json::parse(*eab);
    const auto header = json::parse(decode(jws["protected"]));
    EXPECT_EQ(header["alg"], "HS256");
    EXPECT_EQ(header["kid"], "kid-1");
    EXPECT_EQ(header["url"], "https://ca.test/na");
    EXPECT_EQ(decode(jws["payload"]), key->jwk());
    const std::string input =
        jws["protected"].get<std::string>() + "." + jws["payload"].get<std::string>();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), mac_key.data(), static_cast<int>(mac_key.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    EXPECT_EQ(decode(jws["signature"]), std::string(reinterpret_cast<char*>(mac), len));
    EXPECT_FALSE(external_account_binding(*key, "kid-1", "not base64!", "https://ca.test/na"));
}

// Answers as Pebble and Let's Encrypt send them.
constexpr const char* directory_json = R"({
  "keyChange": "https://ca.test/rollover-account-key",
  "meta": {"externalAccountRequired": false, "termsOfService": "data:text/plain,Do what thou wilt"},
  "newAccount": "https://ca.test/sign-me-up",
  "newNonce": "https://ca.test/nonce-plz",
  "newOrder": "https://ca.test/order-plz",
  "renewalInfo": "https://ca.test/draft-ietf-acme-ari-03/renewalInfo/",
  "revokeCert": "https://ca.test/revoke-cert"
})";

TEST(AcmeMessages, ReadsTheDirectory) {
    auto d = parse_directory(directory_json);
    ASSERT_TRUE(d) << d.error();
    EXPECT_EQ(d->new_nonce, "https://ca.test/nonce-plz");
    EXPECT_EQ(d->new_account, "https://ca.test/sign-me-up");
    EXPECT_EQ(d->new_order, "https://ca.test/order-plz");
    EXPECT_FALSE(d->external_account_required);
    EXPECT_FALSE(parse_directory(R"({"newNonce":"https://a","newAccount":"https://b"})"));
    EXPECT_FALSE(parse_directory(
        R"({"newNonce":"http://a","newAccount":"https://b","newOrder":"https://c"})"));
    EXPECT_FALSE(parse_directory("[]"));
    EXPECT_FALSE(parse_directory("{"));
}

TEST(AcmeMessages, ReadsOrdersThroughTheirStates) {
    auto pending = parse_order(R"({
      "status": "pending", "expires": "2026-12-07T18:21:00Z",
      "identifiers": [{"type": "dns", "value": "app.porthole.test"}],
      "finalize": "https://ca.test/finalize-order/x",
      "authorizations": ["https://ca.test/authZ/a1"]})");
    ASSERT_TRUE(pending) << pending.error();
    EXPECT_EQ(pending->status, "pending");
    EXPECT_EQ(pending->authorizations, std::vector<std::string>{"https://ca.test/authZ/a1"});
    EXPECT_TRUE(pending->certificate.empty());
    auto valid = parse_order(R"({"status": "valid", "finalize": "https://ca.test/f",
      "authorizations": [], "certificate": "https://ca.test/certZ/1"})");
    ASSERT_TRUE(valid);
    EXPECT_EQ(valid->certificate, "https://ca.test/certZ/1");
    // Valid without a certificate URL, an unknown status, a bad authorization:
    // refused.
    EXPECT_FALSE(parse_order(R"({"status":"valid","finalize":"https://f","authorizations":[]})"));
    EXPECT_FALSE(parse_order(R"({"status":"done","finalize":"https://f","authorizations":[]})"));
    EXPECT_FALSE(
        parse_order(R"({"status":"pending","finalize":"https://f","authorizations":[1]})"));
    auto invalid = parse_order(
        R"({"status":"invalid","finalize":"https://f","authorizations":[],
      "error":{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no"}})");
    ASSERT_TRUE(invalid);
    ASSERT_TRUE(invalid->error);
    EXPECT_EQ(invalid->error->text(), "unauthorized: no");
}

TEST(AcmeMessages, ReadsAuthorizationsAndRefusesOddTokens) {
    auto a = parse_authorization(R"({
      "status": "pending", "identifier": {"type": "dns", "value": "app.porthole.test"},
      "challenges": [
        {"type": "http-01", "url": "https://ca.test/chalZ/1", "token": "AbC-_9", "status": "pending"},
        {"type": "tls-alpn-01", "url": "https://ca.test/chalZ/2", "token": "xyz", "status": "pending"},
        {"type": "dns-01", "url": "https://ca.test/chalZ/3", "token": "q", "status": "pending"}],
      "expires": "2026-12-07T18:21:00Z"})");
    ASSERT_TRUE(a) << a.error();
    EXPECT_EQ(a->identifier, "app.porthole.test");
    ASSERT_EQ(a->challenges.size(), 3u);
    EXPECT_EQ(a->challenges[0].token, "AbC-_9");
    EXPECT_EQ(a->challenges[1].type, "tls-alpn-01");
    // A token that could smuggle bytes into a response or a path is refused.
    EXPECT_FALSE(parse_authorization(
        R"({"status":"pending","identifier":{"type":"dns","value":"a"},
      "challenges":[{"type":"http-01","url":"https://c","token":"../x\r\n","status":"pending"}]})"));
    EXPECT_FALSE(parse_authorization(
        R"({"status":"pending","identifier":{"type":"ip","value":"1"},
      "challenges":[]})"));
    auto failed = parse_authorization(R"({"status":"invalid",
      "identifier":{"type":"dns","value":"a.test"},"challenges":[{"type":"http-01",
      "url":"https://c","token":"t","status":"invalid","error":{
      "type":"urn:ietf:params:acme:error:connection","detail":"refused"}}]})");
    ASSERT_TRUE(failed);
    ASSERT_TRUE(failed->challenges[0].error);
    EXPECT_EQ(failed->challenges[0].error->type, "connection");
}

TEST(AcmeMessages, ReadsProblemsWithSubproblems) {
    auto p = parse_problem(R"({"type":"urn:ietf:params:acme:error:rejectedIdentifier",
      "detail":"Some identifiers were rejected","subproblems":[{"type":
      "urn:ietf:params:acme:error:malformed","detail":"Invalid underscore in DNS name",
      "identifier":{"type":"dns","value":"_example.org"}}]})");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->type, "rejectedIdentifier");
    EXPECT_EQ(p->text(),
              "rejectedIdentifier: Some identifiers were rejected; _example.org: "
              "Invalid underscore in DNS name");
    EXPECT_FALSE(parse_problem("<html>"));
    EXPECT_FALSE(parse_problem("{}"));
    EXPECT_EQ(
        new_order_payload({"a.test", "b.test"}),
        R"({"identifiers":[{"type":"dns","value":"a.test"},{"type":"dns","value":"b.test"}]})");
}

TEST(AcmeHttp, ReadsTheHeadersAnOrderNeeds) {
    const std::string reply =
        "HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nLocation: "
        "https://ca.test/order/9\r\n"
        "Retry-After: 3\r\nContent-Type: application/json\r\nTransfer-Encoding: "
        "chunked\r\n\r\n"
        "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
    for (std::size_t cut = 0; cut < reply.size(); ++cut) {
        auto partial = read_reply(std::string_view(reply).substr(0, cut), false);
        ASSERT_TRUE(partial) << cut;
        EXPECT_FALSE(*partial) << cut;
    }
    auto whole = read_reply(reply, false);
    ASSERT_TRUE(whole && *whole);
    EXPECT_EQ((*whole)->status, 201);
    EXPECT_EQ((*whole)->nonce, "abc");
    EXPECT_EQ((*whole)->location, "https://ca.test/order/9");
    EXPECT_EQ((*whole)->retry_after, 3);
    EXPECT_EQ((*whole)->body, "{\"a\":1}");
    EXPECT_FALSE(read_reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true));
    EXPECT_FALSE(read_reply("garbage\r\n\r\n", false));
}

TEST(AcmeCerts, RequestNamesEveryNameAndIsSigned) {
    auto req = make_certificate_request({"app.porthole.test", "www.porthole.test"});
    ASSERT_TRUE(req) << req.error();
    const auto* p = reinterpret_cast<const unsigned char*>(req->csr_der.data());
    X509_REQ* csr = d2i_X509_REQ(nullptr, &p, static_cast<long>(req->csr_der.size()));
    ASSERT_NE(csr, nullptr);
    EVP_PKEY* pub = X509_REQ_get0_pubkey(csr);
    EXPECT_EQ(X509_REQ_verify(csr, pub), 1);
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(csr);
    ASSERT_NE(exts, nullptr);
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
    ASSERT_NE(sans, nullptr);
    EXPECT_EQ(sk_GENERAL_NAME_num(sans), 2);
    GENERAL_NAMES_free(sans);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(csr);
    EXPECT_NE(req->key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
    EXPECT_FALSE(make_certificate_request({}));
}

TEST(AcmeCerts, TlsAlpnCertificateCarriesTheDigestCritically) {
    auto pem = tls_alpn_certificate("app.porthole.test", "token.thumb");
    ASSERT_TRUE(pem) << pem.error();
    auto facts = read_chain(pem->chain, pem->key);
    ASSERT_TRUE(facts) << facts.error();
    EXPECT_EQ(facts->names, std::vector<std::string>{"app.porthole.test"});
    BIO* bio = BIO_new_mem_buf(pem->chain.data(), static_cast<int>(pem->chain.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ASSERT_NE(cert, nullptr);
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    const int at = X509_get_ext_by_OBJ(cert, oid, -1);
    ASSERT_GE(at, 0);
    X509_EXTENSION* ext = X509_get_ext(cert, at);
    EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
    const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
    const std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                            static_cast<std::size_t>(ASN1_STRING_length(data)));
    EXPECT_EQ(value, std::string("\x04\x20", 2) + core::sha256_bytes("token.thumb"));
    ASN1_OBJECT_free(oid);
    X509_free(cert);
}

TEST(AcmeCerts, ReadChainRefusesAKeyThatIsNotItsOwn) {
    auto one = tls_alpn_certificate("a.test", "x");
    auto two = tls_alpn_certificate("b.test", "y");
    ASSERT_TRUE(one && two);
    auto facts = read_chain(one->chain);
    ASSERT_TRUE(facts);
    EXPECT_GT(facts->not_after, facts->not_before);
    EXPECT_FALSE(read_chain(one->chain, two->key));
    EXPECT_FALSE(read_chain("no pem here"));
}

TEST(AcmeBudget, KeepsBelowTheCaLimits) {
    issuance_budget budget({3, 2, 2});
    const auto t0 = std::chrono::system_clock::now();
    EXPECT_FALSE(budget.refusal("a.example.co.uk", t0));
    // Certificates per registered domain: the public suffix list decides what is
    // one.
    budget.issued("a.example.co.uk", t0);
    budget.issued("b.example.co.uk", t0);
    EXPECT_TRUE(budget.refusal("c.example.co.uk", t0));
    EXPECT_FALSE(budget.refusal("c.other.co.uk", t0));
    EXPECT_FALSE(budget.refusal("c.example.co.uk", t0 + std::chrono::hours(7 * 24 + 1)));
    // Failed authorizations per name, for an hour.
    budget.failed("x.test", t0);
    budget.failed("x.test", t0);
    EXPECT_TRUE(budget.refusal("x.test", t0));
    EXPECT_FALSE(budget.refusal("y.test", t0));
    EXPECT_FALSE(budget.refusal("x.test", t0 + std::chrono::minutes(61)));
    // Orders per account, for three hours.
    for (int i = 0; i < 3; ++i) budget.ordered(t0);
    auto why = budget.refusal("z.test", t0);
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("3 orders"), std::string::npos);
    EXPECT_FALSE(budget.refusal("z.test", t0 + std::chrono::hours(3) + std::chrono::seconds(1)));
    EXPECT_EQ(registered_domain("a.b.example.co.uk"), "example.co.uk");
    EXPECT_EQ(registered_domain("*.tunnels.example.com"), "example.com");
}

TEST(AcmeStore, KeepsTheAccountAndCertificatesWithPrivateKeys) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("porthole-acme-store-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    auto store = make_file_store(dir.string(), "ca.test_14000");
    auto none = store->load_account();
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    ASSERT_TRUE(store->save_account({"KEY PEM", "https://ca.test/acct/1"}));
    auto account = store->load_account();
    ASSERT_TRUE(account && *account);
    EXPECT_EQ((*account)->key_pem, "KEY PEM");
    EXPECT_EQ((*account)->url, "https://ca.test/acct/1");
    ASSERT_TRUE(store->save_certificate("app.porthole.test", {"CHAIN", "KEY"}));
    ASSERT_TRUE(store->save_certificate("*.porthole.test", {"WCHAIN", "WKEY"}));
    auto certs = store->load_certificates();
    ASSERT_EQ(certs.size(), 2u);
    std::sort(certs.begin(), certs.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    EXPECT_EQ(certs[0].first, "*.porthole.test");
    EXPECT_EQ(certs[0].second.chain, "WCHAIN");
    EXPECT_EQ(certs[1].first, "app.porthole.test");
    EXPECT_EQ(certs[1].second.key, "KEY");
    const auto key_file = dir / "acme" / "ca.test_14000" / "certs" / "app.porthole.test.key";
    const auto mode = std::filesystem::status(key_file).permissions();
    EXPECT_EQ(mode & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
              std::filesystem::perms::none);
    EXPECT_FALSE(std::filesystem::exists(key_file.string() + ".tmp"));
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace porthole::acme

namespace porthole::acme {
namespace {

config::rfc2136_config test_server() {
    config::rfc2136_config c;
    c.server = "127.0.0.1:53";
    c.zone = "porthole.test";
    c.tsig_name = "acme";
    c.tsig_secret = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGhlLXRlc3QtMTIzNA==";
    return c;
}

// A reply as the server would sign it (or not), to the request `request`.
std::vector<std::uint8_t> reply_to(const signed_update& request, ldns_pkt_rcode rcode,
                                   const std::string& secret, bool sign = true) {
    ldns_pkt* asked = nullptr;
    EXPECT_EQ(ldns_wire2pkt(&asked, request.wire.data(), request.wire.size()), LDNS_STATUS_OK);
    ldns_pkt* p = ldns_pkt_new();
    ldns_pkt_set_id(p, ldns_pkt_id(asked));
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_opcode(p, LDNS_PACKET_UPDATE);
    ldns_pkt_set_rcode(p, static_cast<std::uint8_t>(rcode));
    ldns_pkt_free(asked);
    ldns_rdf* mac = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, request.mac.size(),
                                          request.mac.data());
    if (sign) {
        EXPECT_EQ(ldns_pkt_tsig_sign(p, "acme.", secret.c_str(), 300, "hmac-sha256.", mac),
                  LDNS_STATUS_OK);
    }
    ldns_rdf_deep_free(mac);
    std::uint8_t* wire = nullptr;
    std::size_t size = 0;
    EXPECT_EQ(ldns_pkt2wire(&wire, p, &size), LDNS_STATUS_OK);
    std::vector<std::uint8_t> out(size);
    std::memcpy(out.data(), wire, size);
    std::free(wire);
    ldns_pkt_free(p);
    return out;
}

TEST(AcmeDnsUpdate, AddsAndDeletesOneTxtRecordSignedWithTsig) {
    const auto server = test_server();
    auto add = txt_update(server, "_acme-challenge.porthole.test", "abc-_123", true, 4242);
    ASSERT_TRUE(add) << add.error();
    ldns_pkt* p = nullptr;
    ASSERT_EQ(ldns_wire2pkt(&p, add->wire.data(), add->wire.size()), LDNS_STATUS_OK);
    EXPECT_EQ(ldns_pkt_get_opcode(p), LDNS_PACKET_UPDATE);
    EXPECT_EQ(ldns_pkt_id(p), 4242);
    ASSERT_NE(ldns_pkt_tsig(p), nullptr);
    // The update section (the authority section's place) holds the one TXT record.
    ASSERT_EQ(ldns_rr_list_rr_count(ldns_pkt_authority(p)), 1u);
    const ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_authority(p), 0);
    EXPECT_EQ(ldns_rr_get_type(rr), LDNS_RR_TYPE_TXT);
    EXPECT_EQ(ldns_rr_get_class(rr), LDNS_RR_CLASS_IN);
    EXPECT_EQ(ldns_rr_ttl(rr), 60u);
    ldns_pkt_free(p);
    auto del = txt_update(server, "_acme-challenge.porthole.test", "abc-_123", false, 7);
    ASSERT_TRUE(del);
    ASSERT_EQ(ldns_wire2pkt(&p, del->wire.data(), del->wire.size()), LDNS_STATUS_OK);
    rr = ldns_rr_list_rr(ldns_pkt_authority(p), 0);
    EXPECT_EQ(ldns_rr_get_class(rr), LDNS_RR_CLASS_NONE);  // delete this RR (RFC 2136 2.5.4)
    EXPECT_EQ(ldns_rr_ttl(rr), 0u);
    ldns_pkt_free(p);
    // Nothing that could break out of the TXT string is sent.
    EXPECT_FALSE(txt_update(server, "_acme-challenge.porthole.test", "a\" b", true, 1));
}

TEST(AcmeDnsUpdate, TrustsOnlyASignedNoerrorReplyToThisRequest) {
    const auto server = test_server();
    auto request = txt_update(server, "_acme-challenge.porthole.test", "v", true, 99);
    ASSERT_TRUE(request);
    EXPECT_TRUE(check_update_reply(server, reply_to(*request, LDNS_RCODE_NOERROR,
                                                    server.tsig_secret),
                                   *request));
    auto refused = check_update_reply(
        server, reply_to(*request, LDNS_RCODE_REFUSED, server.tsig_secret), *request);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("REFUSED"), std::string::npos) << refused.error();
    auto notauth = check_update_reply(
        server, reply_to(*request, LDNS_RCODE_NOTAUTH, server.tsig_secret, false), *request);
    ASSERT_FALSE(notauth);
    EXPECT_NE(notauth.error().find("refused TSIG key acme"), std::string::npos);
    // Signed with another key, or not signed: not trusted even when it says NOERROR.
    EXPECT_FALSE(check_update_reply(
        server, reply_to(*request, LDNS_RCODE_NOERROR, "b3RoZXIta2V5LW90aGVyLWtleQ=="),
        *request));
    EXPECT_FALSE(check_update_reply(
        server, reply_to(*request, LDNS_RCODE_NOERROR, server.tsig_secret, false), *request));
    auto other = txt_update(server, "_acme-challenge.porthole.test", "v", true, 100);
    ASSERT_TRUE(other);
    EXPECT_FALSE(check_update_reply(
        server, reply_to(*other, LDNS_RCODE_NOERROR, server.tsig_secret), *request));
    EXPECT_FALSE(check_update_reply(server, {1, 2, 3}, *request));
}

}  // namespace
}  // namespace porthole::acme
