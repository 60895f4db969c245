#include "policy/verify_webhook.hpp"

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <charconv>
#include <memory>

namespace porthole::policy {

namespace webhook {

namespace {

using provider = config::webhook_settings::provider_kind;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> from_hex(std::string_view text) {
    if (text.empty() || text.size() % 2 != 0) return std::nullopt;
    std::string out(text.size() / 2, '\0');
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = hex_digit(text[2 * i]);
        const int lo = hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<char>(hi * 16 + lo);
    }
    return out;
}

bool base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

std::optional<std::string> from_base64(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) return std::nullopt;
    std::size_t padding = 0;
    while (padding < 2 && text[text.size() - 1 - padding] == '=') ++padding;
    if (!std::all_of(text.begin(), text.end() - static_cast<std::ptrdiff_t>(padding), base64_char))
        return std::nullopt;
    std::string out(text.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0 || static_cast<std::size_t>(n) < padding) return std::nullopt;
    out.resize(static_cast<std::size_t>(n) - padding);  // EVP_DecodeBlock counts the padding
    return out;
}

bool same_bytes(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const char* digest_name(digest d) {
    switch (d) {
    case digest::sha1: return "SHA1";
    case digest::sha512: return "SHA512";
    case digest::sha256: break;
    }
    return "SHA256";
}

// |now - t| within the tolerance.
bool in_time(std::int64_t t, std::int64_t now, std::chrono::seconds tolerance) {
    const std::int64_t skew = now > t ? now - t : t - now;
    return skew <= tolerance.count();
}

std::string percent_decoded(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 &&
                   hex_digit(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2])));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// The query of a URL (after '?', before '#'), without the '?'.
std::string_view query_of(std::string_view url) {
    const auto q = url.find('?');
    if (q == std::string_view::npos) return {};
    const std::string_view rest = url.substr(q + 1);
    return rest.substr(0, rest.find('#'));
}

// The value of query parameter `name`, decoded; nullopt when absent.
std::optional<std::string> query_value(std::string_view url, std::string_view name) {
    for (auto& [k, v] : form_fields(query_of(url)))
        if (k == name) return std::move(v);
    return std::nullopt;
}

bool form_encoded(const http::message_head& head) {
    const std::string* type = head.find("content-type");
    if (!type) return false;
    std::string_view media = std::string_view(*type).substr(0, type->find(';'));
    while (media.ends_with(' ') || media.ends_with('\t')) media.remove_suffix(1);
    return iequal(media, "application/x-www-form-urlencoded");
}

failure timestamp_check(std::string_view text, std::int64_t now, std::chrono::seconds tolerance) {
    const auto t = parse_timestamp(text);
    if (!t) return failure::timestamp_malformed;
    return in_time(*t, now, tolerance) ? failure::ok : failure::timestamp_outside;
}

// A signature field, decoded; or why not.
struct presented {
    failure problem = failure::ok;
    std::string bytes;
};
presented signature_field(const http::message_head& head, std::string_view name,
                          std::string_view prefix, encoding e) {
    const std::string* value = head.find(name);
    if (!value) return {failure::header_missing, {}};
    auto bytes = decode_signature(*value, prefix, e);
    if (!bytes) return {failure::header_malformed, {}};
    return {failure::ok, std::move(*bytes)};
}

failure stripe_head(const http::message_head& head, std::int64_t now,
                    std::chrono::seconds tolerance, stripe_signature& out) {
    const std::string* value = head.find("stripe-signature");
    if (!value) return failure::header_missing;
    out = parse_stripe_signature(*value);
    if (out.timestamp_malformed) return failure::timestamp_malformed;
    if (!out.timestamp) return failure::timestamp_missing;
    if (out.v1.empty()) return failure::header_malformed;
    return in_time(*out.timestamp, now, tolerance) ? failure::ok : failure::timestamp_outside;
}

failure slack_head(const http::message_head& head, std::int64_t now,
                   std::chrono::seconds tolerance, presented& signature) {
    signature = signature_field(head, "x-slack-signature", "v0=", encoding::hex);
    if (signature.problem != failure::ok) return signature.problem;
    const std::string* timestamp = head.find("x-slack-request-timestamp");
    if (!timestamp) return failure::timestamp_missing;
    return timestamp_check(*timestamp, now, tolerance);
}

}  // namespace

std::string_view reason(failure f) {
    switch (f) {
    case failure::ok: return "the signature matches";
    case failure::header_missing: return "signature header missing";
    case failure::header_malformed: return "signature header malformed";
    case failure::timestamp_missing: return "timestamp missing";
    case failure::timestamp_malformed: return "timestamp malformed";
    case failure::timestamp_outside: return "timestamp outside the tolerance";
    case failure::body_hash_mismatch: return "body hash does not match";
    case failure::signature_mismatch: break;
    }
    return "signature does not match";
}

std::string hmac(digest d, std::string_view key, std::initializer_list<std::string_view> parts) {
    // Fetched once: fetching looks the algorithm up in the provider tables.
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    const std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_new(mac),
                                                                       EVP_MAC_CTX_free);
    char name[8] = {};
    std::string_view(digest_name(d)).copy(name, sizeof name - 1);
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, name, 0),
                                 OSSL_PARAM_construct_end()};
    static const unsigned char no_key = 0;  // a null key would mean "the previous key"
    const auto* k = key.empty() ? &no_key : reinterpret_cast<const unsigned char*>(key.data());
    unsigned char out[EVP_MAX_MD_SIZE];
    std::size_t size = 0;
    if (!ctx || EVP_MAC_init(ctx.get(), k, key.size(), params) != 1) return {};
    for (std::string_view part : parts)
        if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(part.data()),
                           part.size()) != 1)
            return {};
    if (EVP_MAC_final(ctx.get(), out, &size, sizeof out) != 1) return {};
    return std::string(reinterpret_cast<const char*>(out), size);
}

std::optional<std::string> decode_signature(std::string_view value, std::string_view prefix,
                                            encoding e) {
    if (value.size() < prefix.size() || !iequal(value.substr(0, prefix.size()), prefix))
        return std::nullopt;
    value.remove_prefix(prefix.size());
    return e == encoding::hex ? from_hex(value) : from_base64(value);
}

std::optional<std::int64_t> parse_timestamp(std::string_view text) {
    std::int64_t t = 0;
    if (text.empty() || text.size() > 18 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::from_chars(text.data(), text.data() + text.size(), t);
    return t;
}

stripe_signature parse_stripe_signature(std::string_view value) {
    stripe_signature out;
    while (!value.empty()) {
        const auto comma = value.find(',');
        std::string_view item = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        while (item.starts_with(' ') || item.starts_with('\t')) item.remove_prefix(1);
        while (item.ends_with(' ') || item.ends_with('\t')) item.remove_suffix(1);
        const auto equals = item.find('=');
        if (equals == std::string_view::npos) continue;
        const std::string_view key = item.substr(0, equals);
        const std::string_view text = item.substr(equals + 1);
        if (key == "t" && !out.timestamp && !out.timestamp_malformed) {
            out.timestamp = parse_timestamp(text);
            out.timestamp_malformed = !out.timestamp;
        } else if (key == "v1") {
            out.v1.push_back(text);
        }
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> form_fields(std::string_view body) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!body.empty()) {
        const auto amp = body.find('&');
        const std::string_view piece = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
        if (piece.empty()) continue;
        const auto equals = piece.find('=');
        out.emplace_back(percent_decoded(piece.substr(0, equals)),
                         equals == std::string_view::npos
                             ? std::string()
                             : percent_decoded(piece.substr(equals + 1)));
    }
    return out;
}

std::string twilio_signed_text(std::string_view url, std::string_view form_body) {
    auto fields = form_fields(form_body);
    std::sort(fields.begin(), fields.end());
    fields.erase(std::unique(fields.begin(), fields.end()), fields.end());
    std::string out(url);
    for (const auto& [name, value] : fields) out.append(name).append(value);
    return out;
}

std::string request_url(bool https, std::string_view host, std::string_view target,
                        std::string_view configured) {
    if (!configured.empty()) {
        std::string out(configured);
        if (configured.find('?') == std::string_view::npos) {
            const auto q = target.find('?');
            if (q != std::string_view::npos) out.append(target.substr(q));
        }
        return out;
    }
    if (target.size() > 8 && (iequal(target.substr(0, 7), "http://") ||
                              iequal(target.substr(0, 8), "https://")))
        return std::string(target);
    return fmt::format("{}://{}{}", https ? "https" : "http", host, target);
}

std::string other_port_form(std::string_view url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return std::string(url);
    const std::string_view scheme = url.substr(0, scheme_end);
    const std::size_t start = scheme_end + 3;
    const std::size_t end = std::min(url.find_first_of("/?#", start), url.size());
    const std::string_view authority = url.substr(start, end - start);
    const std::size_t host_start = authority.rfind('@') == std::string_view::npos
                                       ? 0
                                       : authority.rfind('@') + 1;
    const std::string_view host = authority.substr(host_start);
    const auto colon = host.rfind(':');
    const bool has_port = colon != std::string_view::npos && host.find(']', colon) == host.npos;
    std::string out(url.substr(0, start + host_start));
    if (has_port) {
        out.append(host.substr(0, colon));
    } else {
        out.append(host).append(iequal(scheme, "https") ? ":443" : ":80");
    }
    out.append(url.substr(end));
    return out;
}

failure check_github(std::string_view secret, const http::message_head& head,
                     std::string_view body) {
    const auto signature = signature_field(head, "x-hub-signature-256", "sha256=", encoding::hex);
    if (signature.problem != failure::ok) return signature.problem;
    return same_bytes(hmac(digest::sha256, secret, {body}), signature.bytes)
               ? failure::ok
               : failure::signature_mismatch;
}

failure check_stripe(std::string_view secret, const http::message_head& head,
                     std::string_view body, std::int64_t now, std::chrono::seconds tolerance) {
    stripe_signature signature;
    if (const failure f = stripe_head(head, now, tolerance, signature); f != failure::ok) return f;
    const std::string timestamp = std::to_string(*signature.timestamp);
    const std::string expected = hmac(digest::sha256, secret, {timestamp, ".", body});
    bool match = false;
    for (std::string_view v1 : signature.v1) {
        const auto bytes = from_hex(v1);
        match = (bytes && same_bytes(expected, *bytes)) || match;
    }
    return match ? failure::ok : failure::signature_mismatch;
}

failure check_slack(std::string_view secret, const http::message_head& head, std::string_view body,
                    std::int64_t now, std::chrono::seconds tolerance) {
    presented signature;
    if (const failure f = slack_head(head, now, tolerance, signature); f != failure::ok) return f;
    const std::string& timestamp = *head.find("x-slack-request-timestamp");
    return same_bytes(hmac(digest::sha256, secret, {"v0:", timestamp, ":", body}),
                      signature.bytes)
               ? failure::ok
               : failure::signature_mismatch;
}

failure check_shopify(std::string_view secret, const http::message_head& head,
                      std::string_view body) {
    const auto signature = signature_field(head, "x-shopify-hmac-sha256", "", encoding::base64);
    if (signature.problem != failure::ok) return signature.problem;
    return same_bytes(hmac(digest::sha256, secret, {body}), signature.bytes)
               ? failure::ok
               : failure::signature_mismatch;
}

failure check_twilio(std::string_view secret, const http::message_head& head,
                     std::string_view body, std::string_view url) {
    const auto signature = signature_field(head, "x-twilio-signature", "", encoding::base64);
    if (signature.problem != failure::ok) return signature.problem;
    // A body that is not a form is signed through the URL: its SHA-256 in ?bodySHA256=.
    std::string signed_text;
    std::string other_text;
    if (const auto body_hash = query_value(url, "bodySHA256")) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int size = 0;
        EVP_Digest(body.data(), body.size(), md, &size, EVP_sha256(), nullptr);
        const auto sent = from_hex(*body_hash);
        if (!sent || !same_bytes({reinterpret_cast<const char*>(md), size}, *sent))
            return failure::body_hash_mismatch;
        signed_text = url;
        other_text = other_port_form(url);
    } else if (head.method == "POST" && form_encoded(head)) {
        signed_text = twilio_signed_text(url, body);
        other_text = twilio_signed_text(other_port_form(url), body);
    } else {
        signed_text = url;
        other_text = other_port_form(url);
    }
    const bool as_sent = same_bytes(hmac(digest::sha1, secret, {signed_text}), signature.bytes);
    const bool other = same_bytes(hmac(digest::sha1, secret, {other_text}), signature.bytes);
    return as_sent || other ? failure::ok : failure::signature_mismatch;
}

failure check_hmac(std::string_view secret, const hmac_scheme& scheme,
                   const http::message_head& head, std::string_view body) {
    const auto signature = signature_field(head, scheme.header, scheme.prefix, scheme.written);
    if (signature.problem != failure::ok) return signature.problem;
    return same_bytes(hmac(scheme.algorithm, secret, {body}), signature.bytes)
               ? failure::ok
               : failure::signature_mismatch;
}

failure check_head(const config::webhook_settings& s, const http::message_head& head,
                   std::int64_t now) {
    switch (s.provider) {
    case provider::github:
        return signature_field(head, "x-hub-signature-256", "sha256=", encoding::hex).problem;
    case provider::stripe: {
        stripe_signature signature;
        return stripe_head(head, now, s.tolerance, signature);
    }
    case provider::slack: {
        presented signature;
        return slack_head(head, now, s.tolerance, signature);
    }
    case provider::shopify:
        return signature_field(head, "x-shopify-hmac-sha256", "", encoding::base64).problem;
    case provider::twilio:
        return signature_field(head, "x-twilio-signature", "", encoding::base64).problem;
    case provider::hmac: break;
    }
    return signature_field(head, s.header, s.prefix, s.encoding).problem;
}

failure check(const config::webhook_settings& s, const http::message_head& head,
              std::string_view body, std::int64_t now, std::string_view url) {
    switch (s.provider) {
    case provider::github: return check_github(s.secret, head, body);
    case provider::stripe: return check_stripe(s.secret, head, body, now, s.tolerance);
    case provider::slack: return check_slack(s.secret, head, body, now, s.tolerance);
    case provider::shopify: return check_shopify(s.secret, head, body);
    case provider::twilio: return check_twilio(s.secret, head, body, url);
    case provider::hmac: break;
    }
    return check_hmac(s.secret, {s.header, s.algorithm, s.encoding, s.prefix}, head, body);
}

}  // namespace webhook

namespace {

answer refused(webhook::failure f) {
    return answer{401, {},
                  fmt::format("porthole: the webhook signature check failed: {}\n",
                              webhook::reason(f))};
}

}  // namespace

verify_webhook::verify_webhook(const config::webhook_settings& s, clock_function now)
    : s_(s), now_(std::move(now)) {}

std::int64_t verify_webhook::unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::optional<answer> verify_webhook::on_request(request_context& r) {
    if (const std::string* length = r.head.find("content-length")) {
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
        if (ec == std::errc{} && n > s_.max_body)
            return answer{413, {},
                          fmt::format("porthole: the webhook body is over this route's limit of "
                                      "{} bytes\n",
                                      s_.max_body)};
    }
    if (const auto f = webhook::check_head(s_, r.head, now_()); f != webhook::failure::ok)
        return refused(f);
    return std::nullopt;
}

std::optional<answer> verify_webhook::on_body(request_context& r, std::string_view body) {
    const std::string url =
        s_.provider == config::webhook_settings::provider_kind::twilio
            ? webhook::request_url(r.https, r.host, r.head.target, s_.url)
            : std::string();
    if (const auto f = webhook::check(s_, r.head, body, now_(), url); f != webhook::failure::ok)
        return refused(f);
    return std::nullopt;
}

}  // namespace porthole::policy
