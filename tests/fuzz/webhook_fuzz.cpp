// verify_webhook's parsers over any bytes: the Stripe-Signature items stay inside the value and
// its timestamp is what the digits say; a decoded hex or base64 signature re-encodes to what was
// sent; Twilio's signed text is the URL and then exactly the distinct form fields, sorted; and
// every provider's whole check runs on the input as header values and as the body.
#include "policy/verify_webhook.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <set>

namespace webhook = porthole::policy::webhook;
using porthole::config::webhook_settings;

namespace {

void check_stripe_parser(std::string_view input) {
    const auto s = webhook::parse_stripe_signature(input);
    for (std::string_view v1 : s.v1)
        if (v1.data() < input.data() || v1.data() + v1.size() > input.data() + input.size())
            std::abort();
    if (s.timestamp && (*s.timestamp < 0 || *s.timestamp > 999999999999999999)) std::abort();
    if (s.timestamp && s.timestamp_malformed) std::abort();
}

void check_decoding(std::string_view input) {
    if (const auto bytes = webhook::decode_signature(input, "sha256=", webhook::encoding::hex)) {
        static constexpr char digits[] = "0123456789abcdef";
        std::string hex;
        for (unsigned char c : *bytes) hex.append({digits[c >> 4], digits[c & 15]});
        std::string sent(input.substr(7));
        std::transform(sent.begin(), sent.end(), sent.begin(),
                       [](char c) { return c >= 'A' && c <= 'F' ? static_cast<char>(c + 32) : c; });
        if (hex != sent) std::abort();
    }
    if (const auto bytes = webhook::decode_signature(input, "", webhook::encoding::base64)) {
        std::string again(4 * ((bytes->size() + 2) / 3) + 1, '\0');
        const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(again.data()),
                                      reinterpret_cast<const unsigned char*>(bytes->data()),
                                      static_cast<int>(bytes->size()));
        again.resize(static_cast<std::size_t>(n));
        // Bits a padded group leaves over are not kept, so only the length must agree exactly.
        if (again.size() != input.size()) std::abort();
    }
}

void check_twilio_text(std::string_view input) {
    constexpr std::string_view url = "https://hooks.example.com/sms?x=1";
    const std::string text = webhook::twilio_signed_text(url, input);
    if (!text.starts_with(url)) std::abort();
    const auto fields = webhook::form_fields(input);
    const std::set<std::pair<std::string, std::string>> distinct(fields.begin(), fields.end());
    std::size_t size = url.size();
    for (const auto& [name, value] : distinct) size += name.size() + value.size();
    if (text.size() != size) std::abort();
    for (const auto& [name, value] : fields)
        if (name.size() + value.size() > input.size()) std::abort();
}

void check_every_provider(std::string_view input) {
    // The input's first line is every signature field's value; the rest is the body.
    const auto eol = input.find('\n');
    const std::string value(input.substr(0, eol));
    const std::string_view body = eol == std::string_view::npos ? "" : input.substr(eol + 1);
    porthole::http::message_head head;
    head.method = "POST";
    head.target = "/hook?bodySHA256=" + value;
    for (const char* name : {"X-Hub-Signature-256", "Stripe-Signature", "X-Slack-Signature",
                             "X-Slack-Request-Timestamp", "X-Shopify-Hmac-Sha256",
                             "X-Twilio-Signature", "X-Signature"})
        head.fields.push_back({name, value});
    head.fields.push_back({"Content-Type", "application/x-www-form-urlencoded"});
    webhook_settings s;
    s.secret = "fuzz";
    s.header = "X-Signature";
    s.prefix = "sha1=";
    s.algorithm = webhook_settings::digest_kind::sha1;
    using p = webhook_settings::provider_kind;
    for (p provider : {p::github, p::stripe, p::slack, p::shopify, p::twilio, p::hmac}) {
        s.provider = provider;
        const std::string url = webhook::request_url(false, value, head.target, "");
        (void)webhook::check_head(s, head, 1700000000);
        // Nothing passes without the MAC of the secret "fuzz": in particular an HMAC that failed
        // must never equal a signature that decodes to nothing.
        if (webhook::check(s, head, body, 1700000000, url) == webhook::failure::ok) std::abort();
        (void)webhook::other_port_form(value);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_stripe_parser(input);
    check_decoding(input);
    check_twilio_text(input);
    check_every_provider(input);
    return 0;
}
