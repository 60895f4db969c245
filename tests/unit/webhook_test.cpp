// verify_webhook: each provider's check against vectors computed apart from this code. The GitHub,
// Slack and Twilio vectors are the providers' own documented examples; every vector was checked
// with Python's hmac module, e.g.
//   hmac.new(b"It's a Secret to Everybody", b"Hello, World!", hashlib.sha256).hexdigest()
// and the others as noted beside them.
#include "config/policy_config.hpp"
#include "config/server_config.hpp"
#include "policy/verify_webhook.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace porthole::policy {
namespace {

using namespace std::chrono_literals;
using webhook::failure;
using provider = config::webhook_settings::provider_kind;

http::message_head post(std::vector<http::field> fields, std::string target = "/hook") {
    http::message_head h;
    h.method = "POST";
    h.target = std::move(target);
    h.fields = std::move(fields);
    return h;
}

// GitHub's documented example ("Validating webhook deliveries").
constexpr std::string_view github_secret = "It's a Secret to Everybody";
constexpr std::string_view github_body = "Hello, World!";
constexpr std::string_view github_signature =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

TEST(WebhookGithub, TheDocumentedExamplePassesAndEveryChangeFails) {
    const auto h = post({{"X-Hub-Signature-256", std::string(github_signature)}});
    EXPECT_EQ(webhook::check_github(github_secret, h, github_body), failure::ok);
    EXPECT_EQ(webhook::check_github(github_secret, h, "Hello, World?"),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_github("It's a Secret to Everybody!", h, github_body),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_github(github_secret, post({}), github_body),
              failure::header_missing);
    // The older SHA-1 field alone is not enough.
    EXPECT_EQ(webhook::check_github(github_secret,
                                    post({{"X-Hub-Signature", "sha1=0123456789abcdef"}}),
                                    github_body),
              failure::header_missing);
    std::string upper(github_signature);
    std::transform(upper.begin() + 7, upper.end(), upper.begin() + 7,
                   [](char c) { return static_cast<char>(std::toupper(c)); });
    EXPECT_EQ(webhook::check_github(github_secret, post({{"x-hub-signature-256", upper}}),
                                    github_body),
              failure::ok);
    for (std::string_view bad : {std::string_view("sha1=757107ea"), github_signature.substr(7),
                                 std::string_view("sha256="), std::string_view("sha256=75710"),
                                 std::string_view("sha256=zz7107ea")})
        EXPECT_EQ(webhook::check_github(github_secret,
                                        post({{"X-Hub-Signature-256", std::string(bad)}}),
                                        github_body),
                  failure::header_malformed)
            << bad;
    // A signature one byte short is a mismatch, not a read past its end.
    EXPECT_EQ(webhook::check_github(github_secret,
                                    post({{"X-Hub-Signature-256", std::string(github_signature)
                                                                      .substr(0, 69)}}),
                                    github_body),
              failure::signature_mismatch);
}

// hmac.new(b"whsec_test_secret", b"1700000000." + body, hashlib.sha256).hexdigest()
constexpr std::string_view stripe_secret = "whsec_test_secret";
constexpr std::string_view stripe_body = R"({"id":"evt_test_webhook","object":"event"})";
constexpr std::string_view stripe_v1 =
    "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
constexpr std::int64_t stripe_t = 1700000000;

failure stripe(std::string header, std::string_view body = stripe_body,
               std::int64_t now = stripe_t, std::string_view secret = stripe_secret) {
    return webhook::check_stripe(secret, post({{"Stripe-Signature", std::move(header)}}), body,
                                 now, 300s);
}

TEST(WebhookStripe, AnyV1MatchesWithinTheTolerance) {
    const std::string good = "t=1700000000,v1=" + std::string(stripe_v1);
    EXPECT_EQ(stripe(good), failure::ok);
    EXPECT_EQ(stripe(good, stripe_body, stripe_t + 300), failure::ok);
    EXPECT_EQ(stripe(good, stripe_body, stripe_t - 300), failure::ok);
    EXPECT_EQ(stripe(good, stripe_body, stripe_t + 301), failure::timestamp_outside);
    EXPECT_EQ(stripe(good, stripe_body, stripe_t - 301), failure::timestamp_outside);
    // Secret rolling: two v1 signatures, either may be the right one; v0 is not read.
    EXPECT_EQ(stripe("t=1700000000,v1=" + std::string(64, '0') + ",v1=" + std::string(stripe_v1) +
                     ",v0=" + std::string(64, 'f')),
              failure::ok);
    EXPECT_EQ(stripe("v1=" + std::string(stripe_v1) + ", t=1700000000"), failure::ok);
    EXPECT_EQ(stripe(good, R"({"id":"evt_test_webhook","object":"evil"})"),
              failure::signature_mismatch);
    EXPECT_EQ(stripe(good, stripe_body, stripe_t, "whsec_other"), failure::signature_mismatch);
    // The timestamp is signed: moving it breaks the signature.
    EXPECT_EQ(stripe("t=1700000001,v1=" + std::string(stripe_v1)), failure::signature_mismatch);
    EXPECT_EQ(stripe("t=1700000000,v0=" + std::string(stripe_v1)), failure::header_malformed);
    EXPECT_EQ(stripe("v1=" + std::string(stripe_v1)), failure::timestamp_missing);
    EXPECT_EQ(stripe("t=17e8,v1=" + std::string(stripe_v1)), failure::timestamp_malformed);
    EXPECT_EQ(stripe("t=-5,v1=" + std::string(stripe_v1)), failure::timestamp_malformed);
    EXPECT_EQ(stripe("t=1700000000,v1=nothex"), failure::signature_mismatch);
    EXPECT_EQ(webhook::check_stripe(stripe_secret, post({}), stripe_body, stripe_t, 300s),
              failure::header_missing);
}

TEST(WebhookStripe, TheHeaderParser) {
    const auto s = webhook::parse_stripe_signature("t=12,v1=ab, v1=cd ,v0=ef,junk,t=99,=x,");
    ASSERT_TRUE(s.timestamp);
    EXPECT_EQ(*s.timestamp, 12);  // the first t counts
    EXPECT_FALSE(s.timestamp_malformed);
    EXPECT_EQ(s.v1, (std::vector<std::string_view>{"ab", "cd"}));
    EXPECT_FALSE(webhook::parse_stripe_signature("").timestamp);
    EXPECT_TRUE(webhook::parse_stripe_signature("t=1234567890123456789").timestamp_malformed);
    EXPECT_TRUE(webhook::parse_stripe_signature("t=").timestamp_malformed);
}

// Slack's documented example ("Verifying requests from Slack").
constexpr std::string_view slack_secret = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr std::string_view slack_body =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
    "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c";
constexpr std::string_view slack_signature =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
constexpr std::int64_t slack_t = 1531420618;

TEST(WebhookSlack, TheDocumentedExampleWithinFiveMinutes) {
    const auto h = post({{"X-Slack-Request-Timestamp", "1531420618"},
                         {"X-Slack-Signature", std::string(slack_signature)}});
    EXPECT_EQ(webhook::check_slack(slack_secret, h, slack_body, slack_t, 300s), failure::ok);
    EXPECT_EQ(webhook::check_slack(slack_secret, h, slack_body, slack_t + 300, 300s), failure::ok);
    EXPECT_EQ(webhook::check_slack(slack_secret, h, slack_body, slack_t + 301, 300s),
              failure::timestamp_outside);
    EXPECT_EQ(webhook::check_slack(slack_secret, h, slack_body, slack_t - 301, 300s),
              failure::timestamp_outside);
    EXPECT_EQ(webhook::check_slack(slack_secret, h, std::string(slack_body) + "&x=1", slack_t,
                                   300s),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_slack("8f742231b10e8888abcd99yyyzzz85a6", h, slack_body, slack_t,
                                   300s),
              failure::signature_mismatch);
    // The timestamp is signed too.
    const auto moved = post({{"X-Slack-Request-Timestamp", "1531420619"},
                             {"X-Slack-Signature", std::string(slack_signature)}});
    EXPECT_EQ(webhook::check_slack(slack_secret, moved, slack_body, slack_t, 300s),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_slack(slack_secret,
                                   post({{"X-Slack-Signature", std::string(slack_signature)}}),
                                   slack_body, slack_t, 300s),
              failure::timestamp_missing);
    EXPECT_EQ(webhook::check_slack(slack_secret,
                                   post({{"X-Slack-Request-Timestamp", "soon"},
                                         {"X-Slack-Signature", std::string(slack_signature)}}),
                                   slack_body, slack_t, 300s),
              failure::timestamp_malformed);
    EXPECT_EQ(webhook::check_slack(slack_secret, post({{"X-Slack-Request-Timestamp", "1"}}),
                                   slack_body, slack_t, 300s),
              failure::header_missing);
    EXPECT_EQ(webhook::check_slack(slack_secret,
                                   post({{"X-Slack-Request-Timestamp", "1531420618"},
                                         {"X-Slack-Signature", "v1=a2114d57"}}),
                                   slack_body, slack_t, 300s),
              failure::header_malformed);
}

// base64.b64encode(hmac.new(b"hush", body, hashlib.sha256).digest())
TEST(WebhookShopify, Base64OfTheBodysHmac) {
    const std::string_view body = R"({"id":820982911946154508,"email":"jon@doe.ca"})";
    const auto h =
        post({{"X-Shopify-Hmac-Sha256", "fp5HwmAHEVGQQwJU1KRpk57Ts2YHF6/TLOCczCtB5bs="}});
    EXPECT_EQ(webhook::check_shopify("hush", h, body), failure::ok);
    EXPECT_EQ(webhook::check_shopify("hush!", h, body), failure::signature_mismatch);
    const std::string_view other = R"({"id":820982911946154509,"email":"jon@doe.ca"})";
    EXPECT_EQ(webhook::check_shopify("hush", h, other), failure::signature_mismatch);
    EXPECT_EQ(webhook::check_shopify("hush", post({}), body), failure::header_missing);
    for (std::string bad : {"fp5HwmAHEVGQQwJU1KRpk57Ts2YHF6/TLOCczCtB5bs", "not base64!",
                            "fp5HwmAHEVGQQwJU1KRpk57Ts2YHF6_TLOCczCtB5bs="})
        EXPECT_EQ(webhook::check_shopify("hush", post({{"X-Shopify-Hmac-Sha256", bad}}), body),
                  failure::header_malformed)
            << bad;
}

// Twilio's documented example ("Webhooks security"): auth token 12345,
// base64(hmac.new(b"12345", (url + "".join(k + v for k, v in sorted(params))).encode(),
// hashlib.sha1).digest()).
constexpr std::string_view twilio_url = "https://mycompany.com/myapp.php?foo=1&bar=2";
constexpr std::string_view twilio_form =
    "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To="
    "%2B18005551212";

http::message_head twilio_post(std::string signature,
                               std::string type = "application/x-www-form-urlencoded") {
    return post({{"Content-Type", std::move(type)}, {"X-Twilio-Signature", std::move(signature)}});
}

TEST(WebhookTwilio, TheDocumentedExampleSignsTheUrlAndTheSortedParameters) {
    EXPECT_EQ(webhook::twilio_signed_text(twilio_url, twilio_form),
              "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller"
              "+12349013030Digits1234From+12349013030To+18005551212");
    const auto h = twilio_post("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    EXPECT_EQ(webhook::check_twilio("12345", h, twilio_form, twilio_url), failure::ok);
    // The parameters' order in the body does not matter.
    EXPECT_EQ(webhook::check_twilio("12345", h,
                                    "To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE&"
                                    "From=%2B12349013030&Caller=%2B12349013030",
                                    twilio_url),
              failure::ok);
    EXPECT_EQ(webhook::check_twilio("12345", h, std::string(twilio_form) + "&Extra=1", twilio_url),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_twilio("12346", h, twilio_form, twilio_url),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_twilio("12345", h, twilio_form,
                                    "https://mycompany.com/myapp.php?foo=1&bar=3"),
              failure::signature_mismatch);
    // Not a form: the body is not part of what was signed.
    EXPECT_EQ(webhook::check_twilio("12345", twilio_post("0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
                                                         "text/plain"),
                                    twilio_form, twilio_url),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_twilio("12345", post({}), twilio_form, twilio_url),
              failure::header_missing);
}

TEST(WebhookTwilio, WithOrWithoutTheDefaultPort) {
    // ... with url "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    const auto signed_with_port = twilio_post("EpDEmp1PyjDYp77YxYU3GILBWzE=");
    EXPECT_EQ(webhook::check_twilio("12345", signed_with_port, twilio_form, twilio_url),
              failure::ok);
    EXPECT_EQ(webhook::check_twilio("12345", twilio_post("0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
                                    twilio_form, "https://mycompany.com:443/myapp.php?foo=1&bar=2"),
              failure::ok);
    EXPECT_EQ(webhook::other_port_form("https://a.example/x?y"), "https://a.example:443/x?y");
    EXPECT_EQ(webhook::other_port_form("http://a.example"), "http://a.example:80");
    EXPECT_EQ(webhook::other_port_form("https://a.example:8443/x"), "https://a.example/x");
    EXPECT_EQ(webhook::other_port_form("https://u:p@[::1]/x"), "https://u:p@[::1]:443/x");
    EXPECT_EQ(webhook::other_port_form("https://u:p@[::1]:9/x"), "https://u:p@[::1]/x");
}

TEST(WebhookTwilio, AJsonBodyIsSignedThroughBodySha256) {
    // hashlib.sha256(body).hexdigest(); then the URL alone is signed.
    const std::string_view body = R"({"property": "value", "boolean": true})";
    const std::string url = "https://mycompany.com/myapp.php?bodySHA256="
                            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const auto h = twilio_post("y77kIzt2vzLz71DgmJGsen2scGs=", "application/json");
    EXPECT_EQ(webhook::check_twilio("12345", h, body, url), failure::ok);
    EXPECT_EQ(webhook::check_twilio("12345", h, R"({"property": "value", "boolean": false})", url),
              failure::body_hash_mismatch);
    EXPECT_EQ(webhook::check_twilio("54321", h, body, url), failure::signature_mismatch);
}

TEST(WebhookTwilio, RepeatedNamesSortTheirValuesOnce) {
    // 'https://example.com/sms' + 'Ab' + 'MediaUrl' + 'x' + 'MediaUrl' + 'y' + 'Space' + 'a b'
    const std::string_view body = "MediaUrl=y&Space=a+b&MediaUrl=x&Ab=&MediaUrl=y&&";
    EXPECT_EQ(webhook::twilio_signed_text("https://example.com/sms", body),
              "https://example.com/smsAbMediaUrlxMediaUrlySpacea b");
    EXPECT_EQ(webhook::check_twilio("12345", twilio_post("I4hOPrajgxjBwsf0dYo9BDFEQGw="), body,
                                    "https://example.com/sms"),
              failure::ok);
}

TEST(WebhookTwilio, FormFieldsAndTheRequestUrl) {
    const auto f = webhook::form_fields("a=1&b&c=%41%2b+%zz%4&=e&&d=x=y");
    const std::vector<std::pair<std::string, std::string>> want{
        {"a", "1"}, {"b", ""}, {"c", "A+ %zz%4"}, {"", "e"}, {"d", "x=y"}};
    EXPECT_EQ(f, want);
    EXPECT_EQ(webhook::request_url(true, "hooks.example", "/sms?x=1", ""),
              "https://hooks.example/sms?x=1");
    EXPECT_EQ(webhook::request_url(false, "hooks.example:8080", "/sms", ""),
              "http://hooks.example:8080/sms");
    EXPECT_EQ(webhook::request_url(false, "h", "http://hooks.example/sms?x", ""),
              "http://hooks.example/sms?x");
    EXPECT_EQ(webhook::request_url(false, "h", "/internal/sms?x=1", "https://hooks.example/sms"),
              "https://hooks.example/sms?x=1");
    EXPECT_EQ(webhook::request_url(false, "h", "/sms?x=1", "https://hooks.example/sms?y=2"),
              "https://hooks.example/sms?y=2");
}

TEST(WebhookHmac, TheHeaderTheDigestTheEncodingAndThePrefix) {
    using d = webhook::digest;
    using e = webhook::encoding;
    // hmac.new(b"k3y", b"payload", hashlib.sha1).hexdigest()
    const webhook::hmac_scheme sha1_hex{"X-Signature", d::sha1, e::hex, "sha1="};
    const std::string sha1 = "e10dd497e214d3c12496ef4a215a79532e324e2a";
    EXPECT_EQ(webhook::check_hmac("k3y", sha1_hex, post({{"x-signature", "sha1=" + sha1}}),
                                  "payload"),
              failure::ok);
    EXPECT_EQ(webhook::check_hmac("k3y", sha1_hex, post({{"X-Signature", sha1}}), "payload"),
              failure::header_malformed);
    // base64.b64encode(hmac.new(b"k3y", b"payload", hashlib.sha512).digest())
    const webhook::hmac_scheme sha512_b64{"X-Sig", d::sha512, e::base64, ""};
    const auto h512 = post({{"X-Sig", "JuSf83Z2yw25qDKLDtJMsChhbbZ15zML629Z6xWJDKTf6zK9vvXWciALB0Ll"
                                      "hDZNrys3VCgMkuMmfyycxz/+QA=="}});
    EXPECT_EQ(webhook::check_hmac("k3y", sha512_b64, h512, "payload"), failure::ok);
    EXPECT_EQ(webhook::check_hmac("k3y", sha512_b64, h512, "payloaD"),
              failure::signature_mismatch);
    EXPECT_EQ(webhook::check_hmac("k3y", {"X-Other", d::sha512, e::base64, ""}, h512, "payload"),
              failure::header_missing);
    // The same MAC under another digest's name never passes.
    EXPECT_EQ(webhook::check_hmac("k3y", {"X-Sig", d::sha256, e::base64, ""}, h512, "payload"),
              failure::signature_mismatch);
    // base64.b64encode(hmac.new(b"k3y", b"payload", hashlib.sha256).digest())
    const auto h256 = post({{"X-Sig", "hmac 9TnjJm9ESCJnalPlGJspsCPUAd20TGpju9vL/g7iHMs="}});
    EXPECT_EQ(webhook::check_hmac("k3y", {"X-Sig", d::sha256, e::base64, "HMAC "}, h256, "payload"),
              failure::ok);
}

TEST(WebhookPolicy, HeadChecksComeFirstThenTheBody) {
    config::webhook_settings s;
    s.provider = provider::slack;
    s.secret = std::string(slack_secret);
    std::int64_t now = slack_t + 10;
    verify_webhook p(s, [&] { return now; });
    EXPECT_EQ(p.body_needed(), 1u << 20);
    const auto h = post({{"X-Slack-Request-Timestamp", "1531420618"},
                         {"X-Slack-Signature", std::string(slack_signature)}});
    request_context r{h, "hooks.example", "192.0.2.7", {}, false, 0, "", {}, {}, {}, UINT64_MAX, 0, {}};
    EXPECT_FALSE(p.on_request(r));
    EXPECT_FALSE(p.on_body(r, slack_body));
    const auto refused = p.on_body(r, "tampered");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 401u);
    EXPECT_EQ(refused->body,
              "porthole: the webhook signature check failed: signature does not match\n");
    EXPECT_EQ(refused->body.find(slack_secret), std::string::npos);
    now = slack_t + 3600;
    const auto stale = p.on_request(r);
    ASSERT_TRUE(stale);
    EXPECT_NE(stale->body.find("timestamp outside the tolerance"), std::string::npos);

    const auto big = post({{"Content-Length", "1048577"}});
    request_context b{big, "hooks.example", "192.0.2.7", {}, false, 0, "", {}, {}, {}, UINT64_MAX, 0, {}};
    const auto too_large = p.on_request(b);
    ASSERT_TRUE(too_large);
    EXPECT_EQ(too_large->status, 413u);
}

TEST(WebhookPolicy, TwilioSignsThePublicUrl) {
    config::webhook_settings s;
    s.provider = provider::twilio;
    s.secret = "12345";
    verify_webhook p(s);
    const auto h = post({{"Content-Type", "application/x-www-form-urlencoded"},
                         {"X-Twilio-Signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}},
                        "/myapp.php?foo=1&bar=2");
    request_context r{h, "mycompany.com", "192.0.2.7", {}, true, 0, "", {}, {}, {}, UINT64_MAX, 0, {}};
    EXPECT_FALSE(p.on_body(r, twilio_form));
    r.https = false;  // http://mycompany.com/... is another URL
    EXPECT_TRUE(p.on_body(r, twilio_form));
    s.url = "https://mycompany.com/myapp.php";
    verify_webhook configured(s);
    EXPECT_FALSE(configured.on_body(r, twilio_form));
}

// -- config ----------------------------------------------------------------------------------

struct loaded {
    std::string error;
    config::webhook_settings settings;
};

loaded load(const std::string& policy_table, const std::string& path = "w.toml") {
    config::server_config cfg;
    const std::string text =
        "[[sites]]\nhosts = [\"a.example\"]\nupstream = [\"http://127.0.0.1:9\"]\n"
        "[[sites.policies]]\ntype = \"verify_webhook\"\n" +
        policy_table;
    auto r = config::load_server_text(text, path, cfg);
    if (!r) return {r.error(), {}};
    return {"", std::get<config::webhook_settings>(cfg.sites.sites.at(0).policies.at(0).settings)};
}

TEST(WebhookConfig, DefaultsAndEveryKey) {
    auto l = load("provider = \"github\"\nsecret = \"s3\"\n");
    ASSERT_EQ(l.error, "");
    EXPECT_EQ(l.settings.provider, provider::github);
    EXPECT_EQ(l.settings.secret, "s3");
    EXPECT_EQ(l.settings.max_body, 1u << 20);
    EXPECT_EQ(l.settings.tolerance, 300s);
    l = load("provider = \"stripe\"\nsecret = \"whsec_x\"\ntolerance = \"10m\"\n"
             "max_body = \"64KiB\"\n");
    ASSERT_EQ(l.error, "");
    EXPECT_EQ(l.settings.tolerance, 600s);
    EXPECT_EQ(l.settings.max_body, 65536u);
    EXPECT_EQ(load("provider = \"slack\"\nsecret = \"x\"\ntolerance = 90\n").settings.tolerance,
              90s);
    l = load("provider = \"hmac\"\nsecret = \"x\"\nheader = \"X-Sig\"\nalgorithm = \"sha512\"\n"
             "encoding = \"base64\"\nprefix = \"sha512=\"\n");
    ASSERT_EQ(l.error, "");
    EXPECT_EQ(l.settings.header, "X-Sig");
    EXPECT_EQ(l.settings.algorithm, webhook::digest::sha512);
    EXPECT_EQ(l.settings.encoding, webhook::encoding::base64);
    EXPECT_EQ(l.settings.prefix, "sha512=");
    l = load("provider = \"twilio\"\nsecret = \"x\"\nurl = \"https://hooks.example.com/sms\"\n");
    ASSERT_EQ(l.error, "");
    EXPECT_EQ(l.settings.url, "https://hooks.example.com/sms");
}

TEST(WebhookConfig, ASecretFileIsReadBesideTheConfigWithoutItsLineBreak) {
    const auto dir = std::filesystem::temp_directory_path() / "porthole-webhook-test";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "github.secret") << "from-a-file\r\n";
    std::ofstream(dir / "empty.secret") << "\n";
    const std::string config = (dir / "relay.toml").string();
    auto l = load("provider = \"github\"\nsecret_file = \"github.secret\"\n", config);
    ASSERT_EQ(l.error, "");
    EXPECT_EQ(l.settings.secret, "from-a-file");
    EXPECT_NE(load("provider = \"github\"\nsecret_file = \"empty.secret\"\n", config)
                  .error.find(config + ":7: the secret file"),
              std::string::npos);
    EXPECT_NE(load("provider = \"github\"\nsecret_file = \"missing.secret\"\n", config)
                  .error.find("missing.secret: cannot open the secret file"),
              std::string::npos);
    l = load("provider = \"github\"\nsecret = \"inline\"\nsecret_file = \"github.secret\"\n",
             config);
    EXPECT_NE(l.error.find(config + ":8: give the secret once"), std::string::npos) << l.error;
    std::filesystem::remove_all(dir);
}

TEST(WebhookConfig, ErrorsNameTheLineAndNeverTheSecret) {
    const auto error = [](const std::string& table) { return load(table).error; };
    EXPECT_NE(error("provider = \"gitlab\"\nsecret = \"hunter2\"\n")
                  .find("w.toml:6: 'provider' = \"gitlab\" is not one of \"github\""),
              std::string::npos);
    EXPECT_NE(error("provider = \"github\"\n").find("w.toml:4: this verify_webhook policy needs "
                                                    "secret"),
              std::string::npos);
    EXPECT_NE(error("secret = \"hunter2\"\n").find("w.toml:4: this verify_webhook policy needs "
                                                   "provider"),
              std::string::npos);
    EXPECT_NE(error("provider = \"github\"\nsecret = \"\"\n").find("w.toml:7: 'secret' must be"),
              std::string::npos);
    EXPECT_NE(error("provider = \"hmac\"\nsecret = \"hunter2\"\n")
                  .find("w.toml:4: a verify_webhook policy with provider = \"hmac\" needs header"),
              std::string::npos);
    EXPECT_NE(error("provider = \"hmac\"\nsecret = \"hunter2\"\nheader = \"X-S\"\nencoding = "
                    "\"base32\"\n")
                  .find("w.toml:9: 'encoding' = \"base32\" is not one of \"hex\", \"base64\""),
              std::string::npos);
    EXPECT_NE(error("provider = \"hmac\"\nsecret = \"hunter2\"\nheader = \"X-S\"\nalgorithm = "
                    "\"md5\"\n")
                  .find("w.toml:9: 'algorithm' = \"md5\""),
              std::string::npos);
    EXPECT_NE(error("provider = \"hmac\"\nsecret = \"hunter2\"\nheader = \"X S\"\n")
                  .find("w.toml:8: 'header' must be a header field name"),
              std::string::npos);
    EXPECT_NE(error("provider = \"github\"\nsecret = \"hunter2\"\nheader = \"X-S\"\n")
                  .find("w.toml:8: 'header' is only for provider = \"hmac\""),
              std::string::npos);
    EXPECT_NE(error("provider = \"github\"\nsecret = \"hunter2\"\ntolerance = \"1m\"\n")
                  .find("w.toml:8: 'tolerance' is only for provider = \"stripe\" and \"slack\""),
              std::string::npos);
    EXPECT_NE(error("provider = \"stripe\"\nsecret = \"hunter2\"\ntolerance = \"5 minutes\"\n")
                  .find("w.toml:8: 'tolerance' must be a duration"),
              std::string::npos);
    EXPECT_NE(error("provider = \"github\"\nsecret = \"hunter2\"\nurl = \"https://x.example/\"\n")
                  .find("w.toml:8: 'url' is only for provider = \"twilio\""),
              std::string::npos);
    EXPECT_NE(error("provider = \"twilio\"\nsecret = \"hunter2\"\nurl = \"/sms\"\n")
                  .find("w.toml:8: 'url' must be the public URL"),
              std::string::npos);
    EXPECT_NE(error("provider = \"github\"\nsecret = \"hunter2\"\nmax_body = \"1GiB\"\n")
                  .find("w.toml:8: 'max_body' = \"1GiB\" is not a size from 1 byte to 64MiB"),
              std::string::npos);
    EXPECT_NE(error("provider = \"github\"\nsecret = \"hunter2\"\nsecrets = \"x\"\n")
                  .find("w.toml:8: unknown key 'secrets' in a verify_webhook policy"),
              std::string::npos);
    for (const char* table :
         {"provider = \"gitlab\"\nsecret = \"hunter2\"\n",
          "provider = \"hmac\"\nsecret = \"hunter2\"\n",
          "provider = \"github\"\nsecret = \"hunter2\"\nheader = \"X-S\"\n",
          "provider = \"github\"\nsecret = \"hunter2\"\nsecrets = \"x\"\n"})
        EXPECT_EQ(error(table).find("hunter2"), std::string::npos) << error(table);
}

}  // namespace
}  // namespace porthole::policy
