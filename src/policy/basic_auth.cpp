#include "policy/basic_auth.hpp"

#include "core/sha256.hpp"

#include <boost/beast/core/string.hpp>
#include <crypt.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <memory>

namespace porthole::policy {

namespace {

constexpr std::size_t max_remembered = 4096;

// The "user:password" of a Basic Authorization value; empty when it is not one.
std::string basic_credentials(std::string_view value) {
    if (value.size() < 6 || !boost::beast::iequals(value.substr(0, 6), "basic ")) return {};
    value.remove_prefix(6);
    while (value.starts_with(' ')) value.remove_prefix(1);
    while (value.ends_with(' ')) value.remove_suffix(1);
    if (value.empty() || value.size() % 4 != 0 || value.size() > 4096) return {};
    std::string out(value.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(value.data()),
                                  static_cast<int>(value.size()));
    if (n < 0) return {};
    std::size_t size = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the padding's zero bytes.
    for (std::size_t i = value.size(); i > 0 && value[i - 1] == '=' && size > 0; --i) --size;
    out.resize(size);
    return out;
}

}  // namespace

basic_auth::basic_auth(const config::basic_auth_settings& s)
    : challenge_(fmt::format("WWW-Authenticate: Basic realm=\"{}\", charset=\"UTF-8\"\r\n", s.realm)),
      forward_(s.forward_auth_header) {
    for (const auto& [name, hash] : s.users) users_.emplace(name, hash);
    dummy_hash_ = s.users.front().second;
}

bool basic_auth::verified(std::string_view user, std::string_view password) {
    const auto it = users_.find(std::string(user));
    const std::string& hash = it == users_.end() ? dummy_hash_ : it->second;
    const std::string digest = core::sha256_bytes(fmt::format("{}\n{}\n{}", user, password, hash));
    if (it != users_.end() && good_.contains(digest)) return true;
    auto data = std::make_unique<crypt_data>();
    const std::string phrase(password);
    const char* out = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
    const bool match = out && std::string_view(out).size() == hash.size() &&
                       CRYPTO_memcmp(out, hash.data(), hash.size()) == 0 && it != users_.end();
    if (match) {
        if (good_.size() >= max_remembered) good_.clear();
        good_.insert(digest);
    }
    return match;
}

std::optional<answer> basic_auth::on_request(request_context& r) {
    const std::string* authorization = r.head.find("authorization");
    const std::string credentials = authorization ? basic_credentials(*authorization) : "";
    const auto colon = credentials.find(':');
    if (colon == std::string::npos ||
        !verified(std::string_view(credentials).substr(0, colon),
                  std::string_view(credentials).substr(colon + 1)))
        return answer{401, challenge_, "porthole: this site needs a user name and password\n"};
    if (!forward_) r.request.remove.emplace_back("authorization");
    return std::nullopt;
}

}  // namespace porthole::policy
