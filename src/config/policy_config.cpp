#include "config/policy_config.hpp"

#include "config/client_config.hpp"
#include "config/site_config.hpp"
#include "config/toml_source.hpp"
#include "http/token_char.hpp"
#include "net/network_list.hpp"
#include "policy/jwks.hpp"

#include <crypt.h>
#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <sstream>
#include <unordered_map>

namespace porthole::config {

namespace {

using result = tl::expected<void, std::string>;

// A verify_webhook body is held in memory while it is checked.
constexpr std::uint64_t max_webhook_body = 64 << 20;

using http::token_char;

// Fields whose edit would change how a message is framed or routed.
bool framing_field(std::string_view lower_name) {
    for (std::string_view f : {"content-length", "transfer-encoding", "connection", "host",
                               "upgrade", "te", "trailer", "keep-alive", "proxy-connection"})
        if (lower_name == f) return true;
    return false;
}

// Why an htpasswd hash cannot be used; empty when it can.
std::string hash_problem(std::string_view hash) {
    if (hash.starts_with("$apr1$") || hash.starts_with("$1$"))
        return "an MD5 hash (htpasswd's default) is too weak; make it with htpasswd -B (bcrypt)";
    if (hash.starts_with("{SHA}")) return "a {SHA} hash is unsalted; make it with htpasswd -B";
    const bool known = hash.starts_with("$2y$") || hash.starts_with("$2b$") ||
                       hash.starts_with("$2a$") || hash.starts_with("$5$") ||
                       hash.starts_with("$6$");
    if (!known)
        return "not a bcrypt ($2y$) or SHA-crypt ($5$, $6$) hash; plaintext passwords are "
               "refused: make the line with htpasswd -B";
    const std::string setting(hash);
    // SHA-crypt counts as "legacy" to libxcrypt and a low bcrypt cost as "too cheap": both work.
    const int verdict = crypt_checksalt(setting.c_str());
    if (verdict == CRYPT_SALT_INVALID || verdict == CRYPT_SALT_METHOD_DISABLED)
        return "the hash is malformed or this system's libcrypt does not take it";
    return {};
}

// Every type with its keys (for "did you mean" hints), in the order help and errors list them.
struct policy_kind {
    std::string_view type;
    std::initializer_list<std::string_view> keys;
};
const policy_kind policy_kinds[] = {
    {"ip_allow", {"cidrs"}},
    {"ip_deny", {"cidrs"}},
    {"basic_auth", {"users", "htpasswd_file", "realm", "forward_auth_header"}},
    {"jwt",
     {"jwks_file", "jwks_url", "jwks_refresh", "issuer", "audience", "algorithms", "leeway",
      "secret", "claims_to_headers", "forward_token"}},
    {"rate_limit", {"rate", "burst", "key", "ipv6_prefix", "max_keys"}},
    {"headers",
     {"request_set", "request_add", "request_remove", "response_set", "response_add",
      "response_remove", "request_id"}},
    {"redirect", {"to", "status"}},
    {"https_only", {"status"}},
    {"respond", {"status", "body", "content_type"}},
    {"max_body", {"size"}},
    {"verify_webhook",
     {"provider", "secret", "secret_file", "tolerance", "max_body", "header", "algorithm",
      "encoding", "prefix", "url"}},
    {"rewrite", {"strip_prefix", "from", "to", "add_prefix"}},
    {"bandwidth", {"up", "down", "burst"}},
    {"compress", {"encodings", "gzip_level", "br_level", "zstd_level", "min_length", "types"}},
};

class policy_reader {
public:
    policy_reader(const std::string& path, bool from_owner) : path_(path), from_owner_(from_owner) {}

    tl::expected<policy_config, std::string> read(const toml::table& t, std::string_view name);

private:
    std::string at(const toml::node& n) const {
        return fmt::format("{}:{}", path_, n.source().begin.line);
    }
    tl::unexpected<std::string> must_be(const toml::node& n, std::string_view key,
                                        std::string_view what) const {
        return tl::unexpected(fmt::format("{}: '{}' must be {}", at(n), key, what));
    }
    tl::expected<std::string, std::string> string(const toml::node& n, std::string_view key) const {
        if (auto v = n.value_exact<std::string>()) return *v;
        return must_be(n, key, "a string");
    }
    tl::expected<std::int64_t, std::string> whole(const toml::node& n, std::string_view key,
                                                  std::int64_t low, std::int64_t high) const {
        const auto v = n.value_exact<std::int64_t>();
        if (!v || *v < low || *v > high)
            return must_be(n, key, fmt::format("a whole number from {} to {}", low, high));
        return *v;
    }
    tl::expected<bool, std::string> boolean(const toml::node& n, std::string_view key) const {
        if (auto v = n.value_exact<bool>()) return *v;
        return must_be(n, key, "true or false");
    }
    tl::expected<std::vector<std::string>, std::string> strings(const toml::node& n,
                                                                std::string_view key) const {
        const auto* arr = n.as_array();
        if (!arr) return must_be(n, key, "an array of strings");
        std::vector<std::string> out;
        for (auto&& item : *arr) {
            auto v = item.value_exact<std::string>();
            if (!v) return must_be(item, key, "an array of strings");
            out.push_back(*v);
        }
        return out;
    }
    tl::expected<std::chrono::milliseconds, std::string> duration(const toml::node& n,
                                                                  std::string_view key) const;
    tl::expected<unsigned, std::string> redirect_status(const toml::node& n) const {
        auto v = whole(n, "status", 301, 308);
        if (!v || *v == 304 || *v == 305 || *v == 306)
            return must_be(n, "status", "301, 302, 303, 307 or 308");
        return static_cast<unsigned>(*v);
    }
    tl::expected<std::string, std::string> field_name(const toml::node& n, std::string_view key,
                                                      std::string_view name) const;
    tl::expected<std::string, std::string> field_value(const toml::node& n, std::string_view key,
                                                       std::string_view value,
                                                       std::initializer_list<std::string_view>
                                                           variables) const;
    result users(const toml::node& n, basic_auth_settings& s) const;
    result htpasswd_file(const toml::node& n, basic_auth_settings& s) const;
    result field_table(const toml::node& n, std::string_view key,
                       std::vector<std::pair<std::string, std::string>>& out) const;
    result name_list(const toml::node& n, std::string_view key, std::vector<std::string>& out) const;

    result ip_rule(std::string_view key, const toml::node& n, ip_rule_settings& s) const;
    result basic_auth(std::string_view key, const toml::node& n, basic_auth_settings& s) const;
    result rate_limit(std::string_view key, const toml::node& n, rate_limit_settings& s) const;
    result headers(std::string_view key, const toml::node& n, header_settings& s) const;
    result redirect(std::string_view key, const toml::node& n, redirect_settings& s) const;
    result https_only(std::string_view key, const toml::node& n, https_only_settings& s) const;
    result respond(std::string_view key, const toml::node& n, respond_settings& s) const;
    result max_body(std::string_view key, const toml::node& n, max_body_settings& s) const;
    result bandwidth(std::string_view key, const toml::node& n, bandwidth_settings& s) const;
    result webhook(std::string_view key, const toml::node& n, webhook_settings& s) const;
    result secret_file(const toml::node& n, webhook_settings& s) const;
    result rewrite(std::string_view key, const toml::node& n, rewrite_settings& s) const;
    result compress(std::string_view key, const toml::node& n, compress_settings& s) const;
    tl::expected<std::chrono::seconds, std::string> duration_seconds(const toml::node& n,
                                                            std::string_view key) const;
    result jwt(std::string_view key, const toml::node& n, jwt_settings& s) const;
    result jwks_file(const toml::node& n, jwt_settings& s) const;
    result jwks_url(const toml::node& n, jwt_settings& s) const;
    result jwt_checks(const jwt_settings& s, const std::string& where,
                      const std::unordered_map<std::string, std::string>& key_at) const;

    const std::string& path_;
    bool from_owner_;  // a tunnel's owner sent these: no files or URLs on the relay's side
};

// Checks `value`'s {variables} against `variables`.
tl::expected<std::string, std::string> policy_reader::field_value(
    const toml::node& n, std::string_view key, std::string_view value,
    std::initializer_list<std::string_view> variables) const {
    if (value.find_first_of("\r\n") != std::string_view::npos || value.find('\0') != value.npos)
        return must_be(n, key, "values without line breaks");
    for (std::size_t open = value.find('{'); open != std::string_view::npos;
         open = value.find('{', open + 1)) {
        const std::size_t close = value.find('}', open);
        const std::string_view name =
            close == std::string_view::npos ? value.substr(open) : value.substr(open + 1, close - open - 1);
        if (std::find(variables.begin(), variables.end(), name) == variables.end()) {
            std::string known;
            for (auto v : variables) known += (known.empty() ? "{" : ", {") + std::string(v) + "}";
            return tl::unexpected(fmt::format("{}: '{}': unknown variable '{{{}}}' (known: {})",
                                              at(n), key, name, known));
        }
    }
    return std::string(value);
}

tl::expected<std::string, std::string> policy_reader::field_name(const toml::node& n,
                                                                 std::string_view key,
                                                                 std::string_view name) const {
    if (name.empty() || !std::all_of(name.begin(), name.end(), token_char))
        return tl::unexpected(
            fmt::format("{}: '{}': '{}' is not a header field name", at(n), key, name));
    const std::string lower = http::lowercase(name);
    if (framing_field(lower))
        return tl::unexpected(fmt::format(
            "{}: '{}': {} frames or routes the message and cannot be edited by a policy", at(n),
            key, name));
    return std::string(name);
}

result policy_reader::field_table(const toml::node& n, std::string_view key,
                                  std::vector<std::pair<std::string, std::string>>& out) const {
    const auto* table = n.as_table();
    if (!table) return must_be(n, key, "a table of NAME = \"value\", like { \"X-Env\" = \"prod\" }");
    for (auto&& [k, v] : *table) {
        auto name = field_name(v, key, k.str());
        if (!name) return tl::unexpected(name.error());
        auto text = v.value_exact<std::string>();
        if (!text) return must_be(v, key, "a table of NAME = \"value\" strings");
        auto value = field_value(v, key, *text,
                                 {"remote_addr", "host", "request_id", "tunnel", "scheme", "path"});
        if (!value) return tl::unexpected(value.error());
        out.emplace_back(std::move(*name), std::move(*value));
    }
    return {};
}

result policy_reader::name_list(const toml::node& n, std::string_view key,
                                std::vector<std::string>& out) const {
    auto names = strings(n, key);
    if (!names) return tl::unexpected(names.error());
    for (const auto& name : *names) {
        auto checked = field_name(n, key, name);
        if (!checked) return tl::unexpected(checked.error());
        out.push_back(http::lowercase(*checked));
    }
    return {};
}

result policy_reader::ip_rule(std::string_view key, const toml::node& n,
                              ip_rule_settings& s) const {
    if (key != "cidrs") return tl::unexpected(std::string());
    auto list = strings(n, key);
    if (!list) return tl::unexpected(list.error());
    if (list->empty()) return must_be(n, key, "a non-empty array, like [\"10.0.0.0/8\"]");
    auto parsed = net::network_list::parse(*list);
    if (!parsed) return tl::unexpected(fmt::format("{}: 'cidrs': {}", at(n), parsed.error()));
    s.cidrs = std::move(*list);
    return {};
}

result policy_reader::users(const toml::node& n, basic_auth_settings& s) const {
    auto lines = strings(n, "users");
    if (!lines) return tl::unexpected(lines.error());
    for (const auto& line : *lines) {
        const auto colon = line.find(':');
        if (colon == std::string::npos || colon == 0)
            return must_be(n, "users", "htpasswd lines \"NAME:HASH\"");
        if (auto problem = hash_problem(std::string_view(line).substr(colon + 1)); !problem.empty())
            return tl::unexpected(fmt::format("{}: users: '{}': {}", at(n), line.substr(0, colon),
                                              problem));
        s.users.emplace_back(line.substr(0, colon), line.substr(colon + 1));
    }
    return {};
}

result policy_reader::htpasswd_file(const toml::node& n, basic_auth_settings& s) const {
    auto file = string(n, "htpasswd_file");
    if (!file) return tl::unexpected(file.error());
    std::string name = *file;
    if (std::filesystem::path(name).is_relative())
        name = (std::filesystem::path(path_).parent_path() / name).string();
    auto text = read_file(name, "htpasswd file");
    if (!text) return tl::unexpected(fmt::format("{}: {}", at(n), text.error()));
    std::size_t line_no = 0;
    std::string_view rest = *text;
    while (!rest.empty()) {
        ++line_no;
        const auto eol = rest.find('\n');
        std::string_view line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (line.empty() || line.starts_with('#')) continue;
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return tl::unexpected(
                fmt::format("{}:{}: not an htpasswd line \"NAME:HASH\"", name, line_no));
        if (auto problem = hash_problem(line.substr(colon + 1)); !problem.empty())
            return tl::unexpected(fmt::format("{}:{}: '{}': {}", name, line_no,
                                              line.substr(0, colon), problem));
        s.users.emplace_back(std::string(line.substr(0, colon)),
                             std::string(line.substr(colon + 1)));
    }
    return {};
}

result policy_reader::basic_auth(std::string_view key, const toml::node& n,
                                 basic_auth_settings& s) const {
    if (key == "users") return users(n, s);
    if (key == "htpasswd_file") return htpasswd_file(n, s);
    if (key == "realm")
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.empty() || v.find_first_of("\"\\\r\n") != std::string::npos)
                return must_be(n, key, "a name without quotes, backslashes or line breaks");
            s.realm = std::move(v);
            return {};
        });
    if (key == "forward_auth_header")
        return boolean(n, key).map([&](bool b) { s.forward_auth_header = b; });
    return tl::unexpected(std::string());
}

result policy_reader::rate_limit(std::string_view key, const toml::node& n,
                                 rate_limit_settings& s) const {
    if (key == "rate")
        return string(n, key).and_then([&](const std::string& v) -> result {
            auto rate = parse_rate(v);
            if (!rate) return tl::unexpected(fmt::format("{}: 'rate': {}", at(n), rate.error()));
            std::tie(s.count, s.period) = *rate;
            return {};
        });
    if (key == "burst")
        return whole(n, key, 1, 1000000).map([&](std::int64_t v) {
            s.burst = static_cast<std::uint32_t>(v);
        });
    if (key == "ipv6_prefix")
        return whole(n, key, 1, 128).map([&](std::int64_t v) {
            s.ipv6_prefix = static_cast<unsigned>(v);
        });
    if (key == "max_keys")
        return whole(n, key, 1, 100000000).map([&](std::int64_t v) {
            s.max_keys = static_cast<std::size_t>(v);
        });
    if (key == "key")
        return string(n, key).and_then([&](const std::string& v) -> result {
            if (v == "ip") {
                s.key = rate_limit_settings::key_kind::ip;
            } else if (v == "route") {
                s.key = rate_limit_settings::key_kind::route;
            } else if (v.starts_with("header:")) {
                const std::string name = v.substr(7);
                if (name.empty() || !std::all_of(name.begin(), name.end(), token_char))
                    return must_be(n, key, "\"header:NAME\" with a header field name");
                s.key = rate_limit_settings::key_kind::header;
                s.header = http::lowercase(name);
            } else {
                return tl::unexpected(fmt::format(
                    "{}: 'key' = \"{}\" is not a rate limit key; use \"ip\", \"route\" or "
                    "\"header:NAME\"",
                    at(n), v));
            }
            return {};
        });
    return tl::unexpected(std::string());
}

result policy_reader::headers(std::string_view key, const toml::node& n,
                              header_settings& s) const {
    if (key == "request_set") return field_table(n, key, s.request_set);
    if (key == "request_add") return field_table(n, key, s.request_add);
    if (key == "response_set") return field_table(n, key, s.response_set);
    if (key == "response_add") return field_table(n, key, s.response_add);
    if (key == "request_remove") return name_list(n, key, s.request_remove);
    if (key == "response_remove") return name_list(n, key, s.response_remove);
    if (key == "request_id") return boolean(n, key).map([&](bool b) { s.request_id = b; });
    return tl::unexpected(std::string());
}

result policy_reader::redirect(std::string_view key, const toml::node& n,
                               redirect_settings& s) const {
    if (key == "status") return redirect_status(n).map([&](unsigned v) { s.status = v; });
    if (key == "to")
        return string(n, key).and_then([&](const std::string& v) -> result {
            if (v.empty()) return must_be(n, key, "a URL, like \"https://example.com{uri}\"");
            auto checked = field_value(n, key, v, {"host", "path", "query", "uri"});
            if (!checked) return tl::unexpected(checked.error());
            s.to = std::move(*checked);
            return {};
        });
    return tl::unexpected(std::string());
}

result policy_reader::https_only(std::string_view key, const toml::node& n,
                                 https_only_settings& s) const {
    if (key == "status") return redirect_status(n).map([&](unsigned v) { s.status = v; });
    return tl::unexpected(std::string());
}

result policy_reader::respond(std::string_view key, const toml::node& n,
                              respond_settings& s) const {
    if (key == "status")
        return whole(n, key, 200, 599).map([&](std::int64_t v) { s.status = static_cast<unsigned>(v); });
    if (key == "body") return string(n, key).map([&](std::string v) { s.body = std::move(v); });
    if (key == "content_type")
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.empty() || v.find_first_of("\r\n") != std::string::npos)
                return must_be(n, key, "a media type, like \"text/html; charset=utf-8\"");
            s.content_type = std::move(v);
            return {};
        });
    return tl::unexpected(std::string());
}

result policy_reader::max_body(std::string_view key, const toml::node& n,
                               max_body_settings& s) const {
    if (key != "size") return tl::unexpected(std::string());
    return string(n, key).and_then([&](const std::string& v) -> result {
        auto size = parse_size(v);
        if (!size || *size == 0)
            return tl::unexpected(fmt::format(
                "{}: 'size' = \"{}\" is not a size above zero; write one like \"10MiB\"", at(n), v));
        s.size = *size;
        return {};
    });
}

result policy_reader::bandwidth(std::string_view key, const toml::node& n,
                                bandwidth_settings& s) const {
    if (key != "up" && key != "down" && key != "burst") return tl::unexpected(std::string());
    return string(n, key).and_then([&](const std::string& v) -> result {
        const bool rate = key != "burst";
        const std::string_view text = v;
        const std::string_view size_text =
            rate && text.ends_with("/s") ? text.substr(0, text.size() - 2) : text;
        auto size = parse_size(size_text);
        if ((rate && size_text.size() == text.size()) || !size || *size == 0)
            return tl::unexpected(fmt::format(
                "{}: '{}' = \"{}\" is not {}; write one like \"{}\"", at(n), key, v,
                rate ? "bytes a second above zero" : "a size above zero",
                rate ? "2MiB/s" : "256KiB"));
        (key == "up" ? s.up : key == "down" ? s.down : s.burst) = *size;
        return {};
    });
}

result policy_reader::compress(std::string_view key, const toml::node& n,
                               compress_settings& s) const {
    if (key == "encodings")
        return strings(n, key).and_then([&](std::vector<std::string> v) -> result {
            if (v.empty())
                return must_be(n, key, "a non-empty array of \"zstd\", \"br\" and \"gzip\"");
            for (std::size_t i = 0; i < v.size(); ++i) {
                if (v[i] != "zstd" && v[i] != "br" && v[i] != "gzip")
                    return tl::unexpected(fmt::format(
                        "{}: 'encodings': \"{}\" is not an encoding the relay makes; use "
                        "\"zstd\", \"br\" or \"gzip\" (identity is always allowed)",
                        at(n), v[i]));
                if (std::find(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v[i]) !=
                    v.begin() + static_cast<std::ptrdiff_t>(i))
                    return tl::unexpected(fmt::format(
                        "{}: 'encodings': \"{}\" is listed twice; list each once, the relay's "
                        "preference first",
                        at(n), v[i]));
            }
            s.encodings = std::move(v);
            return {};
        });
    if (key == "gzip_level")
        return whole(n, key, 1, 9).map([&](std::int64_t v) { s.gzip_level = static_cast<int>(v); });
    if (key == "br_level")
        return whole(n, key, 0, 11).map([&](std::int64_t v) { s.br_level = static_cast<int>(v); });
    if (key == "zstd_level")
        return whole(n, key, 1, 9).map([&](std::int64_t v) { s.zstd_level = static_cast<int>(v); });
    if (key == "min_length") {
        if (auto v = n.value_exact<std::int64_t>(); v && *v >= 0) {
            s.min_length = static_cast<std::uint64_t>(*v);
            return {};
        }
        auto size = n.value_exact<std::string>() ? parse_size(*n.value_exact<std::string>())
                                                  : tl::unexpected(std::string());
        if (!size)
            return must_be(n, key, "a number of bytes (0 or more) or a size like \"1KiB\"");
        s.min_length = *size;
        return {};
    }
    if (key == "types")
        return strings(n, key).and_then([&](std::vector<std::string> v) -> result {
            if (v.empty())
                return must_be(n, key, "a non-empty array of media types, like [\"text/*\"]");
            for (auto& t : v) {
                t = http::lowercase(t);
                const auto slash = t.find('/');
                const std::string_view type = std::string_view(t).substr(0, slash);
                const std::string_view subtype = slash == std::string::npos
                                                     ? std::string_view()
                                                     : std::string_view(t).substr(slash + 1);
                const bool ok = !type.empty() && type != "*" && !subtype.empty() &&
                                std::all_of(type.begin(), type.end(), token_char) &&
                                (subtype == "*" ||
                                 std::all_of(subtype.begin(), subtype.end(), token_char));
                if (!ok)
                    return tl::unexpected(fmt::format(
                        "{}: 'types': \"{}\" is not a media type; write \"type/subtype\" or "
                        "\"type/*\" without parameters, like \"application/json\"",
                        at(n), t));
            }
            s.types = std::move(v);
            return {};
        });
    return tl::unexpected(std::string());
}

// Whole seconds, or a string like "300s", "5m" or "1h"; from 1s to 24h.
tl::expected<std::chrono::seconds, std::string> policy_reader::duration_seconds(
    const toml::node& n, std::string_view key) const {
    const auto ms = duration_value(n);
    if (!ms || *ms < std::chrono::seconds(1) || ms->count() % 1000 != 0)
        return must_be(n, key,
                       "a duration from 1s to 24h: whole seconds, or like \"300s\" or \"5m\"");
    return std::chrono::duration_cast<std::chrono::seconds>(*ms);
}

result policy_reader::secret_file(const toml::node& n, webhook_settings& s) const {
    auto file = string(n, "secret_file");
    if (!file) return tl::unexpected(file.error());
    std::string name = *file;
    if (std::filesystem::path(name).is_relative())
        name = (std::filesystem::path(path_).parent_path() / name).string();
    auto text = read_file(name, "secret file");
    if (!text) return tl::unexpected(fmt::format("{}: {}", at(n), text.error()));
    // The file's last line break (and any space around it) is not part of the secret.
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r' ||
                              text->back() == ' ' || text->back() == '\t'))
        text->pop_back();
    if (text->empty())
        return tl::unexpected(fmt::format("{}: the secret file {} is empty", at(n), name));
    s.secret = std::move(*text);
    return {};
}

result policy_reader::webhook(std::string_view key, const toml::node& n,
                              webhook_settings& s) const {
    using settings = webhook_settings;
    // One of `names` -> its value, else the error naming them all.
    const auto pick = [&]<class T>(std::initializer_list<std::pair<std::string_view, T>> names,
                                   T& out) -> result {
        auto v = string(n, key);
        if (!v) return tl::unexpected(v.error());
        std::string known;
        for (const auto& [name, value] : names) {
            if (name == *v) {
                out = value;
                return {};
            }
            known += fmt::format("{}\"{}\"", known.empty() ? "" : ", ", name);
        }
        return tl::unexpected(fmt::format("{}: '{}' = \"{}\" is not one of {}", at(n), key, *v,
                                          known));
    };
    if (key == "provider") {
        using p = settings::provider_kind;
        return pick(std::initializer_list<std::pair<std::string_view, p>>{
                        {"github", p::github}, {"stripe", p::stripe}, {"slack", p::slack},
                        {"shopify", p::shopify}, {"twilio", p::twilio}, {"hmac", p::hmac}},
                    s.provider);
    }
    if (key == "algorithm") {
        using d = settings::digest_kind;
        return pick(std::initializer_list<std::pair<std::string_view, d>>{
                        {"sha256", d::sha256}, {"sha1", d::sha1}, {"sha512", d::sha512}},
                    s.algorithm);
    }
    if (key == "encoding") {
        using e = settings::encoding_kind;
        return pick(std::initializer_list<std::pair<std::string_view, e>>{{"hex", e::hex},
                                                                          {"base64", e::base64}},
                    s.encoding);
    }
    if (key == "secret")
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.empty()) return must_be(n, key, "a non-empty string");
            s.secret = std::move(v);
            return {};
        });
    if (key == "secret_file") return secret_file(n, s);
    if (key == "tolerance")
        return duration_seconds(n, key).map([&](std::chrono::seconds v) { s.tolerance = v; });
    if (key == "max_body")
        return string(n, key).and_then([&](const std::string& v) -> result {
            auto size = parse_size(v);
            if (!size || *size == 0 || *size > max_webhook_body)
                return tl::unexpected(fmt::format(
                    "{}: 'max_body' = \"{}\" is not a size from 1 byte to 64MiB (the body is "
                    "held in memory); write one like \"1MiB\"",
                    at(n), v));
            s.max_body = *size;
            return {};
        });
    if (key == "header")
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.empty() || !std::all_of(v.begin(), v.end(), token_char))
                return must_be(n, key, "a header field name, like \"X-Signature\"");
            s.header = std::move(v);
            return {};
        });
    if (key == "prefix")
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.find_first_of("\r\n") != std::string::npos || v.find('\0') != v.npos)
                return must_be(n, key, "text without line breaks, like \"sha256=\"");
            s.prefix = std::move(v);
            return {};
        });
    if (key == "url")
        return string(n, key).and_then([&](std::string v) -> result {
            const bool absolute = v.starts_with("https://") || v.starts_with("http://");
            if (!absolute || v.find_first_of(" \t\r\n#") != std::string::npos ||
                v.find('\0') != std::string::npos)
                return must_be(n, key,
                               "the public URL the provider signs, like "
                               "\"https://hooks.example.com/sms\"");
            s.url = std::move(v);
            return {};
        });
    return tl::unexpected(std::string());
}

result policy_reader::rewrite(std::string_view key, const toml::node& n,
                              rewrite_settings& s) const {
    const auto path_prefix = [&](std::string& out) {
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.size() < 2 || !v.starts_with('/') || v.ends_with('/') ||
                v.find_first_of("?# \t\r\n") != std::string::npos)
                return must_be(n, key, "a path prefix like \"/api\" (a leading '/', none at the end)");
            out = std::move(v);
            return {};
        });
    };
    if (key == "strip_prefix") return path_prefix(s.strip_prefix);
    if (key == "add_prefix") return path_prefix(s.add_prefix);
    if (key == "to")
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.find_first_of("?# \t\r\n") != std::string::npos)
                return must_be(n, key, "a path without a query, spaces or line breaks");
            s.to = std::move(v);
            return {};
        });
    if (key == "from")
        return string(n, key).and_then([&](std::string v) -> result {
            RE2 re(v, RE2::Quiet);
            if (!re.ok())
                return tl::unexpected(fmt::format(
                    "{}: 'from': not a regular expression RE2 takes: {}", at(n), re.error()));
            s.from = std::move(v);
            return {};
        });
    return tl::unexpected(std::string());
}

// What a verify_webhook table needs beyond its keys one by one: a secret, and each key only
// where its provider reads it.
result check_webhook(const toml::table& t, const webhook_settings& s, const std::string& path,
                     const std::string& where) {
    using p = webhook_settings::provider_kind;
    const auto at = [&](const toml::node& n) {
        return fmt::format("{}:{}", path, n.source().begin.line);
    };
    if (!t.get("provider"))
        return tl::unexpected(fmt::format(
            "{}: this verify_webhook policy needs provider = \"github\", \"stripe\", "
            "\"slack\", \"shopify\", \"twilio\" or \"hmac\"",
            where));
    const auto* secret = t.get("secret");
    const auto* file = t.get("secret_file");
    if (secret && file)
        return tl::unexpected(fmt::format(
            "{}: give the secret once: secret or secret_file, not both", at(*file)));
    if (s.secret.empty())
        return tl::unexpected(fmt::format(
            "{}: this verify_webhook policy needs secret = \"...\" or secret_file = \"PATH\"",
            where));
    const bool hmac = s.provider == p::hmac;
    for (std::string_view key : {"header", "algorithm", "encoding", "prefix"})
        if (const auto* n = t.get(key); n && !hmac)
            return tl::unexpected(fmt::format(
                "{}: '{}' is only for provider = \"hmac\"; this provider's signature field and "
                "format are fixed",
                at(*n), key));
    if (hmac && s.header.empty())
        return tl::unexpected(fmt::format(
            "{}: a verify_webhook policy with provider = \"hmac\" needs header = \"NAME\", the "
            "field that carries the signature",
            where));
    if (const auto* n = t.get("url"); n && s.provider != p::twilio)
        return tl::unexpected(
            fmt::format("{}: 'url' is only for provider = \"twilio\"", at(*n)));
    if (const auto* n = t.get("tolerance"); n && s.provider != p::stripe && s.provider != p::slack)
        return tl::unexpected(fmt::format(
            "{}: 'tolerance' is only for provider = \"stripe\" and \"slack\", whose "
            "signatures carry a timestamp",
            at(*n)));
    return {};
}

// Whole seconds, or a string: "500ms", "30s", "5m", "1h" (as health_interval); up to a day.
tl::expected<std::chrono::milliseconds, std::string> policy_reader::duration(
    const toml::node& n, std::string_view key) const {
    if (const auto ms = duration_value(n)) return *ms;
    return must_be(n, key,
                   "a duration up to a day: whole seconds, or a string like \"30s\", \"5m\" "
                   "or \"1h\"");
}

result policy_reader::jwks_file(const toml::node& n, jwt_settings& s) const {
    auto file = string(n, "jwks_file");
    if (!file) return tl::unexpected(file.error());
    std::string name = *file;
    if (std::filesystem::path(name).is_relative())
        name = (std::filesystem::path(path_).parent_path() / name).string();
    auto text = read_file(name, "JWK Set file");
    if (!text) return tl::unexpected(fmt::format("{}: {}", at(n), text.error()));
    auto set = policy::parse_jwks(*text);
    if (!set)
        return tl::unexpected(fmt::format("{}: jwks_file {}: {}", at(n), name, set.error()));
    if (set->keys.empty()) {
        std::string why;
        for (const auto& skipped : set->skipped) why += "; " + skipped;
        return tl::unexpected(fmt::format(
            "{}: jwks_file {}: no key this policy can use (RSA, EC P-256 or Ed25519 for "
            "signatures){}",
            at(n), name, why));
    }
    s.jwks_file = name;
    s.jwks = std::move(*text);
    return {};
}

result policy_reader::jwks_url(const toml::node& n, jwt_settings& s) const {
    auto url = string(n, "jwks_url");
    if (!url) return tl::unexpected(url.error());
    auto parts = split_url(*url);
    if (!parts) return tl::unexpected(fmt::format("{}: 'jwks_url': {}", at(n), parts.error()));
    s.jwks_url = *url;
    return {};
}

result policy_reader::jwt(std::string_view key, const toml::node& n, jwt_settings& s) const {
    if (key == "jwks_file") return jwks_file(n, s);
    if (key == "jwks_url") return jwks_url(n, s);
    if (key == "jwks_refresh")
        return duration(n, key).and_then([&](std::chrono::milliseconds v) -> result {
            if (v < std::chrono::seconds(1)) return must_be(n, key, "at least \"1s\"");
            s.jwks_refresh = v;
            return {};
        });
    if (key == "leeway")
        return duration(n, key).map([&](std::chrono::milliseconds v) { s.leeway = v; });
    if (key == "issuer" || key == "audience")
        return string(n, key).and_then([&](std::string v) -> result {
            if (v.empty()) return must_be(n, key, "a non-empty string");
            (key == "issuer" ? s.issuer : s.audience) = std::move(v);
            return {};
        });
    if (key == "secret")
        return string(n, key).and_then([&](std::string v) -> result {
            // RFC 7518 section 3.2: an HS256 key is at least as long as the hash.
            if (v.size() < 32) return must_be(n, key, "at least 32 bytes long (RFC 7518, 3.2)");
            s.secret = std::move(v);
            return {};
        });
    if (key == "algorithms")
        return strings(n, key).and_then([&](std::vector<std::string> v) -> result {
            if (v.empty()) return must_be(n, key, "a non-empty array, like [\"RS256\"]");
            for (const auto& alg : v) {
                if (alg == "none" || alg == "None" || alg == "NONE")
                    return tl::unexpected(fmt::format(
                        "{}: 'algorithms': \"{}\" is never accepted: an unsigned token proves "
                        "nothing",
                        at(n), alg));
                if (alg != "RS256" && alg != "ES256" && alg != "EdDSA" && alg != "HS256")
                    return tl::unexpected(fmt::format(
                        "{}: 'algorithms': unknown algorithm \"{}\" (known: RS256, ES256, EdDSA, "
                        "HS256)",
                        at(n), alg));
            }
            s.algorithms = std::move(v);
            return {};
        });
    if (key == "claims_to_headers") {
        const auto* table = n.as_table();
        if (!table)
            return must_be(n, key, "a table of CLAIM = \"Header-Name\", like { sub = \"X-User\" }");
        for (auto&& [claim, v] : *table) {
            auto text = v.value_exact<std::string>();
            if (!text) return must_be(v, key, "a table of CLAIM = \"Header-Name\" strings");
            auto name = field_name(v, key, *text);
            if (!name) return tl::unexpected(name.error());
            if (claim.str().empty()) return must_be(v, key, "a table with non-empty claim names");
            s.claims_to_headers.emplace_back(std::string(claim.str()), std::move(*name));
        }
        return {};
    }
    if (key == "forward_token") return boolean(n, key).map([&](bool b) { s.forward_token = b; });
    return tl::unexpected(std::string());
}

// The checks across a jwt table's keys; `key_at` says where each key was written.
result policy_reader::jwt_checks(const jwt_settings& s, const std::string& where,
                                 const std::unordered_map<std::string, std::string>& key_at) const {
    const auto at_key = [&](const std::string& key) {
        const auto it = key_at.find(key);
        return it == key_at.end() ? where : it->second;
    };
    const int sources = !s.jwks.empty() + !s.jwks_url.empty() + !s.secret.empty();
    if (sources == 0)
        return tl::unexpected(fmt::format(
            "{}: this jwt policy needs its keys: jwks_file = \"PATH\", jwks_url = "
            "\"https://...\" or secret = \"...\" (HS256)",
            where));
    if (sources > 1)
        return tl::unexpected(fmt::format(
            "{}: a jwt policy takes one of jwks_file, jwks_url and secret, not {}", where,
            !s.secret.empty() ? "a secret and a JWK Set" : "both jwks_file and jwks_url"));
    if (key_at.contains("jwks_refresh") && s.jwks_url.empty())
        return tl::unexpected(fmt::format(
            "{}: jwks_refresh is how often jwks_url is fetched again; this policy has no jwks_url",
            at_key("jwks_refresh")));
    const bool hs256 = std::find(s.algorithms.begin(), s.algorithms.end(), "HS256") !=
                       s.algorithms.end();
    if (!s.secret.empty() && std::any_of(s.algorithms.begin(), s.algorithms.end(),
                                         [](const std::string& a) { return a != "HS256"; }))
        return tl::unexpected(fmt::format(
            "{}: a jwt policy with a secret checks HS256 only; drop the other algorithms or use a "
            "JWK Set (jwks_file or jwks_url) for them",
            at_key("algorithms")));
    if (s.secret.empty() && hs256)
        return tl::unexpected(fmt::format(
            "{}: HS256 needs the shared secret = \"...\" (a JWK Set's public keys cannot check "
            "it)",
            at_key("algorithms")));
    return {};
}

tl::expected<policy_config, std::string> policy_reader::read(const toml::table& t,
                                                             std::string_view name) {
    policy_config p;
    p.line = t.source().begin.line;
    const std::string where = fmt::format("{}:{}", path_, p.line);
    const auto* type_node = t.get("type");
    if (!type_node)
        return tl::unexpected(fmt::format("{}: this [[{}]] table has no type; add type = \"...\" "
                                          "(one of {})",
                                          where, name, policy_type_names()));
    auto type = string(*type_node, "type");
    if (!type) return tl::unexpected(type.error());
    const policy_kind* k = nullptr;
    for (const auto& candidate : policy_kinds)
        if (candidate.type == *type) k = &candidate;
    if (!k)
        return tl::unexpected(fmt::format("{}: unknown policy type '{}' (known: {})",
                                          at(*type_node), *type, policy_type_names()));
    if (*type == "ip_allow" || *type == "ip_deny") p.settings = ip_rule_settings{*type == "ip_allow", {}};
    else if (*type == "basic_auth") p.settings = basic_auth_settings{};
    else if (*type == "rate_limit") p.settings = rate_limit_settings{};
    else if (*type == "headers") p.settings = header_settings{};
    else if (*type == "redirect") p.settings = redirect_settings{};
    else if (*type == "https_only") p.settings = https_only_settings{};
    else if (*type == "respond") p.settings = respond_settings{};
    else if (*type == "max_body") p.settings = max_body_settings{};
    else if (*type == "rewrite") p.settings = rewrite_settings{};
    else if (*type == "jwt") p.settings = jwt_settings{};
    else if (*type == "bandwidth") p.settings = bandwidth_settings{};
    else if (*type == "compress") p.settings = compress_settings{};
    else p.settings = webhook_settings{};

    std::unordered_map<std::string, std::string> key_at;  // for checks across keys
    for (auto&& [key_node, v] : t) {
        const std::string_view key = key_node.str();
        if (key == "type") continue;
        const toml::node& n = v;
        if (from_owner_ && (key.ends_with("_file") || key.ends_with("_url")))
            return tl::unexpected(fmt::format(
                "{}: '{}': a tunnel's own policies cannot make the relay read files or fetch URLs; "
                "give the values themselves",
                at(n), key));
        key_at.emplace(key, at(n));
        result done = std::visit(
            [&](auto& s) -> result {
                using T = std::decay_t<decltype(s)>;
                if constexpr (std::is_same_v<T, ip_rule_settings>) return ip_rule(key, n, s);
                else if constexpr (std::is_same_v<T, basic_auth_settings>) return basic_auth(key, n, s);
                else if constexpr (std::is_same_v<T, rate_limit_settings>) return rate_limit(key, n, s);
                else if constexpr (std::is_same_v<T, header_settings>) return headers(key, n, s);
                else if constexpr (std::is_same_v<T, redirect_settings>) return redirect(key, n, s);
                else if constexpr (std::is_same_v<T, https_only_settings>) return https_only(key, n, s);
                else if constexpr (std::is_same_v<T, respond_settings>) return respond(key, n, s);
                else if constexpr (std::is_same_v<T, max_body_settings>) return max_body(key, n, s);
                else if constexpr (std::is_same_v<T, rewrite_settings>) return rewrite(key, n, s);
                else if constexpr (std::is_same_v<T, jwt_settings>) return jwt(key, n, s);
                else if constexpr (std::is_same_v<T, bandwidth_settings>) return bandwidth(key, n, s);
                else if constexpr (std::is_same_v<T, compress_settings>) return compress(key, n, s);
                else return webhook(key, n, s);
            },
            p.settings);
        if (!done && done.error().empty())
            return tl::unexpected(unknown_key(at(n), key, fmt::format(" in a {} policy", *type), k->keys));
        if (!done) return tl::unexpected(done.error());
    }

    // What each type cannot do without.
    const auto missing = [&](std::string_view what) {
        return tl::unexpected(fmt::format("{}: this {} policy needs {}", where, *type, what));
    };
    if (const auto* s = std::get_if<ip_rule_settings>(&p.settings); s && s->cidrs.empty())
        return missing("cidrs = [\"10.0.0.0/8\", ...]");
    if (const auto* s = std::get_if<basic_auth_settings>(&p.settings); s && s->users.empty())
        return missing("users = [\"NAME:HASH\"] or htpasswd_file = \"PATH\" with at least one user");
    if (auto* s = std::get_if<rate_limit_settings>(&p.settings)) {
        if (s->count == 0) return missing("rate = \"N/s\", \"N/min\" or \"N/h\"");
        if (s->burst == 0) s->burst = s->count;
    }
    if (const auto* s = std::get_if<redirect_settings>(&p.settings); s && s->to.empty())
        return missing("to = \"https://example.com{uri}\"");
    if (const auto* s = std::get_if<max_body_settings>(&p.settings); s && s->size == 0)
        return missing("size = \"10MiB\"");
    if (const auto* s = std::get_if<bandwidth_settings>(&p.settings); s && !s->up && !s->down)
        return missing("down = \"2MiB/s\" (to visitors), up = \"512KiB/s\" (from them), or both");
    if (const auto* s = std::get_if<rewrite_settings>(&p.settings)) {
        if (s->from.empty() != s->to.empty())
            return missing("from = \"REGEX\" and to = \"PATH\" together");
        if (s->from.empty() && s->strip_prefix.empty() && s->add_prefix.empty())
            return missing("from and to, strip_prefix or add_prefix");
        if (!s->from.empty()) {
            RE2 re(s->from, RE2::Quiet);
            std::string why;
            if (!re.CheckRewriteString(s->to, &why))
                return tl::unexpected(fmt::format("{}: 'to': {}", where, why));
        }
    }
    if (const auto* s = std::get_if<webhook_settings>(&p.settings)) {
        auto checked = check_webhook(t, *s, path_, where);
        if (!checked) return tl::unexpected(checked.error());
    }
    if (auto* s = std::get_if<jwt_settings>(&p.settings)) {
        if (s->algorithms.empty())
            s->algorithms = s->secret.empty() ? std::vector<std::string>{"RS256", "ES256", "EdDSA"}
                                              : std::vector<std::string>{"HS256"};
        if (auto checked = jwt_checks(*s, where, key_at); !checked)
            return tl::unexpected(checked.error());
    }
    return p;
}

}  // namespace

tl::expected<std::pair<std::uint32_t, std::chrono::nanoseconds>, std::string> parse_rate(
    std::string_view text) {
    const auto slash = text.find('/');
    std::uint32_t count = 0;
    const std::string_view number = text.substr(0, slash);
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), count);
    using namespace std::chrono;
    const std::string_view unit = slash == std::string_view::npos ? "" : text.substr(slash + 1);
    nanoseconds period{};
    if (unit == "s" || unit == "sec" || unit == "second") period = seconds(1);
    else if (unit == "m" || unit == "min" || unit == "minute") period = minutes(1);
    else if (unit == "h" || unit == "hour") period = hours(1);
    else if (unit == "d" || unit == "day") period = hours(24);
    if (ec != std::errc{} || end != number.data() + number.size() || count == 0 ||
        count > 1000000000 || period == nanoseconds{})
        return tl::unexpected(fmt::format(
            "'{}' is not a rate; write N/s, N/min, N/h or N/day with N from 1, like \"100/min\"",
            text));
    return std::pair{count, period};
}

tl::expected<std::pair<std::string, std::string>, std::string> split_url(std::string_view url) {
    const bool https = url.starts_with("https://");
    if (!https && !url.starts_with("http://"))
        return tl::unexpected(fmt::format(
            "'{}' is not an http:// or https:// URL, like \"https://idp.example/.well-known/"
            "jwks.json\"",
            url));
    const std::size_t slash = url.find_first_of("/?#", https ? 8 : 7);
    const std::string_view origin = url.substr(0, slash);
    std::string target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
    if (target.starts_with('?')) target = "/" + target;
    if (target.find('#') != std::string::npos ||
        !std::all_of(target.begin(), target.end(), [](char c) { return c > ' ' && c < 0x7f; }))
        return tl::unexpected(
            fmt::format("'{}': a URL without a fragment, spaces or control characters", url));
    auto member = parse_member(origin);
    if (!member) return tl::unexpected(member.error());
    return std::pair{std::string(origin), std::move(target)};
}

tl::expected<std::vector<policy_config>, std::string> load_policies(const toml::node& n,
                                                                    const std::string& path,
                                                                    std::string_view name,
                                                                    bool from_owner) {
    const auto* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables())
        return tl::unexpected(fmt::format("{}:{}: write policies as [[{}]] tables", path,
                                          n.source().begin.line, name));
    policy_reader reader(path, from_owner);
    std::vector<policy_config> out;
    for (auto&& item : *arr) {
        auto p = reader.read(*item.as_table(), name);
        if (!p) return tl::unexpected(p.error());
        std::ostringstream text;
        text << toml::toml_formatter(*item.as_table());
        p->source = std::move(text).str();
        // Budgets add up per direction at most twice (site and route, or relay and owner).
        const bool second_bandwidth =
            std::holds_alternative<bandwidth_settings>(p->settings) &&
            std::any_of(out.begin(), out.end(), [](const policy_config& earlier) {
                return std::holds_alternative<bandwidth_settings>(earlier.settings);
            });
        if (second_bandwidth)
            return tl::unexpected(fmt::format(
                "{}:{}: one bandwidth policy per list: give up and down in the first", path,
                p->line));
        out.push_back(std::move(*p));
    }
    return out;
}

tl::expected<owner_settings, std::string> load_owner_policies(
    std::string_view text, const std::string& name, const std::vector<std::string>& forbidden) {
    auto file = parse_toml(text, name);
    if (!file) return tl::unexpected(file.error());
    owner_settings settings;
    auto& out = settings.policies;
    for (auto&& [k, v] : *file) {
        const std::string at = fmt::format("{}:{}", name, v.source().begin.line);
        if (k.str() == "cache") {
            const auto on = v.value_exact<bool>();
            if (!on) return tl::unexpected(fmt::format("{}: cache must be true or false", at));
            if (*on && std::find(forbidden.begin(), forbidden.end(), "cache") != forbidden.end())
                return tl::unexpected(fmt::format(
                    "{}: this relay does not let a tunnel's owner turn its cache on", at));
            settings.cache = *on;
            continue;
        }
        if (k.str() != "policies")
            return tl::unexpected(unknown_key(at, k.str(), "", {"policies", "cache"}));
        auto read = load_policies(v, name, "policies", true);
        if (!read) return tl::unexpected(read.error());
        for (auto& p : *read) {
            const auto type = type_of(p);
            if (std::find(forbidden.begin(), forbidden.end(), type) != forbidden.end())
                return tl::unexpected(fmt::format(
                    "{}:{}: this relay does not let a tunnel's owner set {} policies", name,
                    p.line, type));
            out.push_back(std::move(p));
        }
    }
    return settings;
}

bool is_policy_type(std::string_view type) {
    return std::any_of(std::begin(policy_kinds), std::end(policy_kinds),
                       [&](const policy_kind& k) { return k.type == type; });
}

std::string policy_type_names() {
    std::string out;
    for (const auto& k : policy_kinds) out.append(out.empty() ? "" : ", ").append(k.type);
    return out;
}

std::string_view type_of(const policy_config& p) {
    return std::visit(
        [](const auto& s) -> std::string_view {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, ip_rule_settings>) return s.allow ? "ip_allow" : "ip_deny";
            else if constexpr (std::is_same_v<T, basic_auth_settings>) return "basic_auth";
            else if constexpr (std::is_same_v<T, rate_limit_settings>) return "rate_limit";
            else if constexpr (std::is_same_v<T, header_settings>) return "headers";
            else if constexpr (std::is_same_v<T, redirect_settings>) return "redirect";
            else if constexpr (std::is_same_v<T, https_only_settings>) return "https_only";
            else if constexpr (std::is_same_v<T, respond_settings>) return "respond";
            else if constexpr (std::is_same_v<T, max_body_settings>) return "max_body";
            else if constexpr (std::is_same_v<T, rewrite_settings>) return "rewrite";
            else if constexpr (std::is_same_v<T, jwt_settings>) return "jwt";
            else if constexpr (std::is_same_v<T, bandwidth_settings>) return "bandwidth";
            else if constexpr (std::is_same_v<T, compress_settings>) return "compress";
            else return "verify_webhook";
        },
        p.settings);
}

}  // namespace porthole::config
