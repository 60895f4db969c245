// Any bearer token against a jwt policy holding a key of each type and a secret: checked without
// crashing, and nothing passes (the fuzzer holds no private key nor the secret, and the seed
// tokens signed with them have expired).
#include "http/message_head.hpp"
#include "policy/jwt_auth.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>

namespace {

// Public keys only; the seed corpus's tokens are signed by their private halves, and all
// have expired.
constexpr const char* jwks = R"({"keys": [
  {"kty": "RSA", "kid": "r1", "e": "AQAB",
   "n": "oKt0e0VFh26QLJoAxwNVkLXl0kSjT-GN3i2vO-LPSsrL88MJ8YMH3RmoYw1-8I_bzLCiSHMNcrBNvqnx0g8yv6wT8nwjWKFtQaLYt1X2hLcewDxnxmYV3qQLraLm_r71hjN1Lhx5QYzQbOUk0WAkSIFWJtT1h7EnyC5xcUYTcRljTb4h0mlvW31EFG7TF4oIJFi_FpnCFoGNSS0FT9-XK9H8U3FbO3gWm14EaGRrzZc3LsoXrN-r7XKW0fwHpnINb4RbINTkdK_ZTviYShLLWWUZbq2PjxQbVwb8xJMxrExq1K1brxJVKO14dfne_h0RaTOeEwy-tkIUTs2xXRcu8w"},
  {"kty": "EC", "kid": "e1", "crv": "P-256",
   "x": "5pKXsUAElmQEkfSv8-NW1HgFbJLhb37jMXJsGramF4Q",
   "y": "PCtQr13TC0Jr1quFffECX5U35ruCurO3hWxq05sHU_I"},
  {"kty": "OKP", "kid": "d1", "crv": "Ed25519",
   "x": "ay6Z8DGtCmdlZXe_5Hv-IGVdWogu0jr8aJjXKZwNAXY"}]})";

porthole::policy::jwt_auth& the_policy() {
    static porthole::policy::jwt_auth p = [] {
        porthole::config::jwt_settings s;
        s.algorithms = {"RS256", "ES256", "EdDSA", "HS256"};
        s.claims_to_headers = {{"sub", "X-User"}, {"roles", "X-Roles"}};
        auto set = porthole::policy::parse_jwks(jwks);
        if (!set || set->keys.size() != 3) std::abort();
        return porthole::policy::jwt_auth(
            s, std::make_shared<porthole::policy::key_ring>(
                   "a secret the fuzzer does not know, 32+ bytes long", set->keys));
    }();
    return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view token(reinterpret_cast<const char*>(data), size);
    auto& p = the_policy();
    if (p.verify(token)) std::abort();
    const porthole::http::message_head head{
        "GET", "/", 0, 11, {{"Authorization", "Bearer " + std::string(token)}}};
    porthole::policy::request_context r{head,  "a.example", "192.0.2.1",
                                        boost::asio::ip::make_address("192.0.2.1"),
                                        false, 0,  "",          {},
                                        {},    {}, UINT64_MAX};
    auto answer = p.on_request(r);
    if (!answer || answer->status != 401) std::abort();
    (void)porthole::policy::claim_field_value(
        nlohmann::json::parse(token.begin(), token.end(), nullptr, false));
    return 0;
}
