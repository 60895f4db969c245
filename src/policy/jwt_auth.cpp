#include "policy/jwt_auth.hpp"

#include "core/sha256.hpp"

#include <boost/beast/core/string.hpp>
#include <fmt/format.h>
#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>

namespace porthole::policy {

namespace {

using json = nlohmann::json;

// Far above any real token, well below the relay's head limit.
constexpr std::size_t max_token = 16 * 1024;
constexpr std::size_t max_verified = 1024;

bool token_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

// A base64url part of a token decoded and read as a JSON object; discarded when it is not one.
json json_object(std::string_view part) {
    const auto text = base64url_decode(part);
    if (!text) return json(json::value_t::discarded);
    json doc = json::parse(*text, nullptr, false);
    if (!doc.is_object()) return json(json::value_t::discarded);
    return doc;
}

// The token of an `Authorization: Bearer TOKEN` value; nullopt for another scheme.
std::optional<std::string_view> bearer_token(std::string_view value) {
    if (value.size() < 6 || !boost::beast::iequals(value.substr(0, 6), "bearer"))
        return std::nullopt;
    value.remove_prefix(6);
    if (!value.empty() && value.front() != ' ') return std::nullopt;  // "Bearerx"
    while (value.starts_with(' ')) value.remove_prefix(1);
    while (value.ends_with(' ')) value.remove_suffix(1);
    return value;
}

// libjwt's check of a compact JWS: 0 from jwt_decode with the key, and the algorithm it read is
// the one the policy chose the key for.
bool libjwt_verifies(std::string_view token, jwt_alg_t alg, std::string_view key) {
    const std::string text(token);
    jwt_t* decoded = nullptr;
    const int rc =
        jwt_decode(&decoded, text.c_str(), reinterpret_cast<const unsigned char*>(key.data()),
                   static_cast<int>(key.size()));
    const bool ok = rc == 0 && decoded && jwt_get_alg(decoded) == alg;
    if (decoded) jwt_free(decoded);
    return ok;
}

// Ed25519 (RFC 8037): the signature over the token's first two parts, one-shot, with the key
// the JWK Set was read into (no PEM to read per token).
bool ed25519_verifies(std::string_view token, EVP_PKEY* key) {
    const auto dot = token.rfind('.');
    const auto signature = base64url_decode(token.substr(dot + 1));
    if (!key || !signature || signature->size() != 64) return false;
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                      EVP_MD_CTX_free);
    if (!ctx || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519 ||
        EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1)
        return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                            signature->size(), reinterpret_cast<const unsigned char*>(token.data()),
                            dot) == 1;
}

jwt_alg_t libjwt_alg(std::string_view alg) {
    if (alg == "RS256") return JWT_ALG_RS256;
    if (alg == "ES256") return JWT_ALG_ES256;
    return JWT_ALG_HS256;
}

// A NumericDate claim (RFC 7519 section 2): seconds since the epoch, possibly fractional.
std::optional<double> numeric_date(const json& claims, const char* name, bool& malformed) {
    const auto it = claims.find(name);
    if (it == claims.end()) return std::nullopt;
    if (!it->is_number() || !std::isfinite(it->get<double>())) {
        malformed = true;
        return std::nullopt;
    }
    return it->get<double>();
}

bool printable_field_text(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && u != '\t') || u == 0x7f;
    });
}

}  // namespace

std::optional<std::string> claim_field_value(const json& claim) {
    constexpr int compact = -1;
    constexpr bool ascii = true;  // JSON escapes for every byte beyond ASCII and every control
    if (claim.is_string()) {
        const auto& s = claim.get_ref<const std::string&>();
        if (!printable_field_text(s)) return std::nullopt;
        return s;
    }
    if (claim.is_number() || claim.is_boolean()) return claim.dump();
    if (claim.is_array()) {
        const bool scalars = std::all_of(claim.begin(), claim.end(), [](const json& e) {
            return (e.is_string() && printable_field_text(e.get_ref<const std::string&>())) ||
                   e.is_number() || e.is_boolean();
        });
        if (!scalars) return claim.dump(compact, ' ', ascii, json::error_handler_t::replace);
        std::string out;
        for (const auto& e : claim) {
            if (!out.empty()) out += ", ";
            out += e.is_string() ? e.get_ref<const std::string&>() : e.dump();
        }
        return out;
    }
    if (claim.is_object()) return claim.dump(compact, ' ', ascii, json::error_handler_t::replace);
    return std::nullopt;
}

jwt_auth::jwt_auth(const config::jwt_settings& s, std::shared_ptr<const key_ring> keys,
                   std::function<clock::time_point()> now)
    : algorithms_(s.algorithms),
      issuer_(s.issuer),
      audience_(s.audience),
      leeway_(s.leeway),
      claims_to_headers_(s.claims_to_headers),
      forward_token_(s.forward_token),
      ring_(std::move(keys)),
      keys_(ring_->keys()),
      now_(std::move(now)) {}

bool jwt_auth::signed_by(std::string_view token, const std::string& alg, const std::string& kid,
                         std::string_view& failure) const {
    if (alg == "HS256") {
        if (ring_->secret().empty()) {
            failure = jwt_error::no_key;
            return false;
        }
        if (libjwt_verifies(token, JWT_ALG_HS256, ring_->secret())) return true;
        failure = jwt_error::signature;
        return false;
    }
    const auto type = key_type_for(alg);
    bool kid_known = false;
    bool tried = false;
    for (const auto& key : *keys_.keys) {
        if (!kid.empty() && key.kid != kid) continue;
        kid_known = true;
        if (key.kind != type || (!key.alg.empty() && key.alg != alg)) continue;
        tried = true;
        const bool ok = type == jwk::type::ed25519
                            ? ed25519_verifies(token, key.key.get())
                            : libjwt_verifies(token, libjwt_alg(alg), key.pem);
        if (ok) return true;
    }
    failure = tried                        ? jwt_error::signature
              : !kid.empty() && !kid_known ? jwt_error::no_key_for_kid
              : !kid.empty() ? jwt_error::algorithm  // the kid's key is of another type
                             : jwt_error::no_key;
    return false;
}

tl::expected<json, std::string_view> jwt_auth::verify(std::string_view token) {
    const auto bad = [](std::string_view why) { return tl::unexpected(why); };
    if (token.empty() || token.size() > max_token ||
        !std::all_of(token.begin(), token.end(), token_char) ||
        std::count(token.begin(), token.end(), '.') != 2)
        return bad(jwt_error::malformed);
    const auto first = token.find('.');
    const auto second = token.find('.', first + 1);
    const json header = json_object(token.substr(0, first));
    if (header.is_discarded()) return bad(jwt_error::malformed);
    const auto alg_it = header.find("alg");
    if (alg_it == header.end() || !alg_it->is_string()) return bad(jwt_error::malformed);
    const std::string& alg = alg_it->get_ref<const std::string&>();
    if (std::find(algorithms_.begin(), algorithms_.end(), alg) == algorithms_.end())
        return bad(jwt_error::algorithm);  // "none" is never in the list
    // Extensions this policy does not know must not be ignored (RFC 7515 section 4.1.11).
    if (header.contains("crit")) return bad(jwt_error::malformed);
    // libjwt refuses any other typ; saying so here names the reason.
    if (const auto typ = header.find("typ");
        typ != header.end() &&
        (!typ->is_string() || !boost::beast::iequals(typ->get_ref<const std::string&>(), "JWT")))
        return bad(jwt_error::malformed);
    std::string kid;
    if (const auto k = header.find("kid"); k != header.end()) {
        if (!k->is_string()) return bad(jwt_error::malformed);
        kid = k->get_ref<const std::string&>();
    }
    json claims = json_object(token.substr(first + 1, second - first - 1));
    if (claims.is_discarded() || second + 1 == token.size()) return bad(jwt_error::malformed);
    if (ring_->generation() != keys_.generation) keys_ = ring_->keys();
    if (keys_.keys->empty() && ring_->secret().empty()) return bad(jwt_error::no_keys);

    if (verified_keys_ != keys_.generation || verified_.size() >= max_verified) {
        verified_.clear();
        verified_keys_ = keys_.generation;
    }
    std::string digest = core::sha256_bytes(token);
    if (!verified_.contains(digest)) {
        std::string_view failure;
        if (!signed_by(token, alg, kid, failure)) return bad(failure);
        verified_.insert(std::move(digest));
    }

    // Only now are the claims the issuer's.
    bool malformed = false;
    const auto exp = numeric_date(claims, "exp", malformed);
    const auto nbf = numeric_date(claims, "nbf", malformed);
    if (malformed) return bad(jwt_error::malformed);
    const double now = std::chrono::duration<double>(now_().time_since_epoch()).count();
    const double leeway = std::chrono::duration<double>(leeway_).count();
    if (exp && now >= *exp + leeway) return bad(jwt_error::expired);
    if (nbf && now + leeway < *nbf) return bad(jwt_error::not_yet_valid);
    if (!issuer_.empty()) {
        const auto iss = claims.find("iss");
        if (iss == claims.end() || !iss->is_string() ||
            iss->get_ref<const std::string&>() != issuer_)
            return bad(jwt_error::issuer);
    }
    if (!audience_.empty()) {
        const auto aud = claims.find("aud");
        const auto is_ours = [&](const json& a) {
            return a.is_string() && a.get_ref<const std::string&>() == audience_;
        };
        const bool ours =
            aud != claims.end() &&
            (is_ours(*aud) || (aud->is_array() && std::any_of(aud->begin(), aud->end(), is_ours)));
        if (!ours) return bad(jwt_error::audience);
    }
    return claims;
}

std::optional<answer> jwt_auth::on_request(request_context& r) {
    const std::string* authorization = nullptr;
    std::size_t fields = 0;
    for (const auto& f : r.head.fields)
        if (boost::beast::iequals(f.name, "authorization") && fields++ == 0)
            authorization = &f.value;
    const auto token = authorization ? bearer_token(*authorization) : std::nullopt;
    if (!token)
        return answer{401, "WWW-Authenticate: Bearer\r\n",
                      "porthole: this site needs a bearer token\n"};
    // Two Authorization fields: the upstream might read the one not checked.
    tl::expected<json, std::string_view> claims = tl::unexpected(jwt_error::malformed);
    if (fields == 1) claims = verify(*token);
    if (!claims)
        return answer{401,
                      fmt::format("WWW-Authenticate: Bearer error=\"invalid_token\", "
                                  "error_description=\"{}\"\r\n",
                                  claims.error()),
                      fmt::format("porthole: the bearer token was refused: {}\n", claims.error())};
    for (const auto& [claim, field] : claims_to_headers_) {
        const auto it = claims->find(claim);
        set_field(r.request, field, it == claims->end() ? std::nullopt : claim_field_value(*it));
    }
    if (!forward_token_) r.request.remove.emplace_back("authorization");
    return std::nullopt;
}

}  // namespace porthole::policy
