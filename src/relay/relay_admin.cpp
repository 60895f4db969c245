#include "relay/relay_admin.hpp"

#include "admin/api.hpp"
#include "core/printable.hpp"
#include "observe/capture_store.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace porthole::relay {
namespace {

using json = nlohmann::json;
using admin::outcome;
constexpr std::string_view redacted = "<redacted>";

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t unix_of(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// A steady-clock time as Unix seconds, through the two clocks' readings now.
std::int64_t unix_of(clock::time_point t) {
    const auto ahead = std::chrono::duration_cast<std::chrono::seconds>(t - clock::now());
    return unix_now() + ahead.count();
}

std::string kind_name(protocol::tunnel_kind k) { return std::string(protocol::name_of(k)); }

std::string tunnel_label(const tunnel& t) {
    return t.kind == protocol::tunnel_kind::tcp ? fmt::format("tcp:{}", t.port)
                                                : fmt::format("{}:{}", kind_name(t.kind), t.name);
}

// A new token's text: URL-safe base64 without padding, so it fits a command line and a file.
std::string base64url(std::span<const std::uint8_t> bytes) {
    std::string text = observe::base64_encode(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    std::replace(text.begin(), text.end(), '+', '-');
    std::replace(text.begin(), text.end(), '/', '_');
    text.erase(text.find_last_not_of('=') + 1);
    return text;
}

admin::member_info member_of(const upstream::pool& pool, std::size_t i) {
    const auto st = pool.status(i);
    admin::member_info m;
    m.url = pool.member(i).url;
    m.weight = pool.member(i).weight;
    m.health = std::string(st.health);
    m.active = st.active;
    m.fails = st.fails;
    if (st.ejected_until > clock::now()) m.ejected_until = unix_of(st.ejected_until);
    return m;
}

json config_document(const config::server_config& cfg) {
    const auto seconds = [](auto d) {
        return std::chrono::duration_cast<std::chrono::seconds>(d).count();
    };
    json sites = json::array();
    for (const auto& s : cfg.sites.sites) {
        json routes = json::array();
        for (const auto& r : s.routes) {
            json members = json::array();
            for (const auto& m : r.upstream.members) members.push_back(m.url);
            routes.push_back({{"path", r.path.empty() ? "/" : r.path},
                              {"lb_policy", config::to_string(r.upstream.policy)},
                              {"members", std::move(members)}});
        }
        sites.push_back({{"hosts", s.hosts}, {"routes", std::move(routes)}});
    }
    json tcp_sites = json::array();
    for (const auto& t : cfg.sites.tcp_sites) {
        json members = json::array();
        for (const auto& m : t.upstream.members) members.push_back(m.url);
        tcp_sites.push_back({{"listen", t.listen.to_string()}, {"members", std::move(members)}});
    }
    json bound = json::object();
    for (const auto& [name, v] : cfg.bound_names) bound[name] = redacted;
    json tls_certificates = json::array();
    for (std::size_t i = 0; i < cfg.tls_certs.size(); ++i)
        tls_certificates.push_back({{"cert", cfg.tls_certs[i]}, {"key", cfg.tls_keys[i]}});
    return {
        {"domain", cfg.domain},
        {"http_addr", cfg.http_addr.to_string()},
        {"control_addr", cfg.control_addr.to_string()},
        {"https_addr", cfg.https_addr ? json(cfg.https_addr->to_string()) : json(nullptr)},
        {"tcp_ports", cfg.tcp_ports.to_string()},
        {"tokens", json(std::vector<std::string_view>(cfg.tokens.size(), redacted))},
        {"tokens_file", cfg.tokens_file.empty() ? json(nullptr) : json(cfg.tokens_file)},
        {"lease_grace", seconds(cfg.lease_grace)},
        {"shutdown_timeout", seconds(cfg.shutdown_timeout)},
        {"header_timeout", seconds(cfg.header_timeout)},
        {"idle_timeout", seconds(cfg.idle_timeout)},
        {"handshake_timeout", seconds(cfg.handshake_timeout)},
        {"reserved_names", cfg.reserved_names},
        {"max_tunnels_per_client", cfg.max_tunnels_per_client},
        {"max_tunnels_per_token", cfg.max_tunnels_per_token},
        {"max_connections_per_ip", cfg.max_connections_per_ip},
        {"max_connections_per_tunnel", cfg.max_connections_per_tunnel},
        {"max_pending_streams", cfg.max_pending_streams},
        {"max_new_connections_per_second", cfg.max_new_connections_per_second},
        {"max_header_bytes", cfg.max_header_bytes},
        {"max_unauthenticated", cfg.max_unauthenticated},
        {"max_unauthenticated_per_ip", cfg.max_unauthenticated_per_ip},
        {"max_sessions_per_token", cfg.max_sessions_per_token},
        {"max_control_frames_per_second", cfg.max_control_frames_per_second},
        {"bound_names", std::move(bound)},
        {"control_tls", cfg.control_tls},
        {"control_cert", cfg.control_cert},
        {"control_key", cfg.control_key},
        {"tls_certificates", std::move(tls_certificates)},
        {"tls_self_signed_dir", cfg.tls_self_signed_dir},
        {"redirect_https", cfg.redirect_https},
        {"acme", cfg.acme ? json{{"email", cfg.acme->email},
                                 {"ca", cfg.acme->ca},
                                 {"ca_root", cfg.acme->ca_root},
                                 {"state_dir", cfg.acme->state_dir},
                                 {"challenges", cfg.acme->challenges},
                                 {"renew_after", cfg.acme->renew_after},
                                 {"eab_kid", cfg.acme->eab_kid},
                                 {"eab_hmac", cfg.acme->eab_hmac.empty() ? json(nullptr)
                                                                         : json(redacted)},
                                 {"dns_hook", cfg.acme->dns ? cfg.acme->dns->hook : ""},
                                 {"dns_rfc2136",
                                  cfg.acme->dns && cfg.acme->dns->rfc2136
                                      ? json{{"server", cfg.acme->dns->rfc2136->server},
                                             {"zone", cfg.acme->dns->rfc2136->zone},
                                             {"tsig_name", cfg.acme->dns->rfc2136->tsig_name},
                                             {"tsig_alg", cfg.acme->dns->rfc2136->tsig_alg},
                                             {"tsig_secret", redacted}}
                                      : json(nullptr)}}
                          : json(nullptr)},
        {"trusted_proxies", cfg.trusted_proxies},
        {"accept_proxy_protocol", cfg.accept_proxy_protocol},
        {"admin_socket", cfg.admin_socket.value_or("")},
        {"admin_addr", cfg.admin_addr ? json(cfg.admin_addr->to_string()) : json(nullptr)},
        {"admin_token", cfg.admin_token.empty() ? json(nullptr) : json(redacted)},
        {"admin_hosts", cfg.admin_hosts},
        {"sites", std::move(sites)},
        {"tcp_sites", std::move(tcp_sites)},
    };
}

// Appends one line to the tokens file and flushes it to disk.
tl::expected<void, std::string> append_line(const std::string& path, const std::string& line) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return tl::unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
    std::string text = line;
    struct stat st{};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
        // A last line without its newline would swallow ours.
        char last = '\n';
        const int rd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (rd >= 0) {
            if (::pread(rd, &last, 1, st.st_size - 1) != 1) last = '\n';
            ::close(rd);
        }
        if (last != '\n') text.insert(0, "\n");
    }
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!ok) return tl::unexpected(fmt::format("{}: {}", path, std::strerror(saved)));
    return {};
}

// Replaces the file's content: a temporary file in the same directory, fsync, rename.
tl::expected<void, std::string> replace_file(const std::string& path, const std::string& text) {
    std::string temp = path + ".XXXXXX";
    const int fd = ::mkstemp(temp.data());
    if (fd < 0) return tl::unexpected(fmt::format("{}: {}", temp, std::strerror(errno)));
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) ::fchmod(fd, st.st_mode & 07777);
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
        const int err = ok ? errno : saved;
        ::unlink(temp.c_str());
        return tl::unexpected(fmt::format("{}: {}", path, std::strerror(err)));
    }
    return {};
}

}  // namespace

std::string without_token(std::string_view file_text, const protocol::verifier& v) {
    std::string out;
    while (!file_text.empty()) {
        const auto end = file_text.find('\n');
        const auto line = file_text.substr(0, end);
        const auto read = config::read_tokens_file_line(line);
        const auto parsed = read ? protocol::parse_token_entry(read->entry)
                                 : tl::expected<protocol::verifier, std::string>(
                                       tl::unexpect, std::string());
        if (!(parsed && *parsed == v)) {
            out += line;
            if (end != std::string_view::npos) out += '\n';
        }
        if (end == std::string_view::npos) break;
        file_text.remove_prefix(end + 1);
    }
    return out;
}

relay_admin::relay_admin(relay_context& ctx, control_port& control, tunnel_registry& registry,
                         const std::shared_ptr<route::route_table>& sites, const tcp_edge& tcp,
                         std::function<admin::reload_result()> reload, upgrade_hook upgrade)
    : ctx_(ctx), control_(control), registry_(registry), sites_(sites), tcp_(tcp),
      reload_(std::move(reload)), upgrade_(std::move(upgrade)), loaded_at_(unix_now()) {
    load_tokens();
}

admin::reload_result relay_admin::reload(const std::string& who) {
    spdlog::info("admin: {} asked for a reload", who);
    auto done = reload_();
    if (done.result == admin::outcome::done) loaded_at_ = unix_now();
    generation_ = done.generation;
    return done;
}

void relay_admin::upgrade(const std::string& binary, std::chrono::seconds wait,
                          const std::string& who, admin::upgrade_done done) {
    spdlog::info("admin: {} asked for an upgrade to {}", who,
                 binary.empty() ? std::string("this relay's program file") : binary);
    upgrade_(binary, wait, std::move(done));
}

void relay_admin::load_tokens() {
    const auto& cfg = ctx_.cfg;
    tokens_.clear();
    for (std::size_t i = 0; i < cfg.tokens.size(); ++i)
        tokens_.push_back({cfg.tokens[i], protocol::to_hex(cfg.tokens[i]),
                           i < cfg.token_origins.size() ? cfg.token_origins[i]
                                                        : config::token_origin{}});
}

std::vector<admin::client_info> relay_admin::clients() const {
    std::vector<admin::client_info> out;
    const bool tokens = ctx_.cfg.tokens_required();
    for (const auto& [id, s] : control_.sessions()) {
        admin::client_info c;
        c.id = s->id_hex;
        c.address = s->address;
        c.agent = s->agent;
        c.protocol = s->version;
        if (tokens) c.token = protocol::to_hex(s->token).substr(0, 16);
        c.connected_since = unix_of(s->connected_since);
        if (s->rtt)
            c.rtt_ms = std::chrono::duration<double, std::milli>(*s->rtt).count();
        for (const auto& [tid, t] : s->tunnels) c.tunnels.push_back(tunnel_label(*t));
        std::sort(c.tunnels.begin(), c.tunnels.end());
        c.pool_idle = s->pool.idle();
        c.pool_waiting = s->pool.waiting();
        out.push_back(std::move(c));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return a.connected_since != b.connected_since ? a.connected_since < b.connected_since
                                                      : a.id < b.id;
    });
    return out;
}

std::vector<admin::tunnel_info> relay_admin::tunnels() const {
    std::map<std::string, admin::tunnel_info> serving;  // by label: a group's members together
    registry_.for_each_tunnel([&](const tunnel& t) {
        auto& info = serving[tunnel_label(t)];
        if (info.name.empty()) {
            info.name = t.kind == protocol::tunnel_kind::tcp ? std::to_string(t.port) : t.name;
            info.kind = kind_name(t.kind);
            info.url = t.url;
            info.state = "serving";
            info.group = t.group;
        }
        if (const auto s = t.owner.lock())
            info.members.push_back({s->id_hex.substr(0, 8), unix_of(t.opened)});
        info.open_connections += t.active;
    });
    std::vector<admin::tunnel_info> out;
    for (auto& [label, info] : serving) out.push_back(std::move(info));
    for (const auto& l : registry_.leases(clock::now())) {
        admin::tunnel_info info;
        info.name = l.name.empty() ? std::to_string(l.port) : l.name;
        info.kind = l.name.empty() ? "tcp" : "name";
        info.state = "leased";
        info.lease_until = unix_of(l.until);
        out.push_back(std::move(info));
    }
    return out;
}

namespace {

// Every cache once, with a name for it: a site's (its first host, and a route's path when the
// route has a cache of its own) and the tunnels'.
template <class F>
void for_each_cache(const route::route_table& table, cache::http_cache* tunnels, F&& f) {
    for (const auto& s : table.sites()) {
        const cache::http_cache* site_cache = nullptr;
        for (const auto& r : s->routes) {
            if (!r->cache || r->cache.get() == site_cache) continue;
            const bool own = s->routes.size() > 1 && !r->path.empty();
            if (!own) site_cache = r->cache.get();
            f(own ? s->hosts.front() + r->path : s->hosts.front(), *r->cache);
        }
    }
    if (tunnels) f(std::string("tunnels"), *tunnels);
}

}  // namespace

std::vector<admin::cache_info> relay_admin::caches() const {
    std::vector<admin::cache_info> out;
    for_each_cache(*sites_, ctx_.tunnel_cache.get(),
                   [&](const std::string& name, const cache::http_cache& c) {
                       const auto& n = c.counts();
                       admin::cache_info info{name, c.bytes(), c.entries(), c.settings().memory,
                                              n.hits, n.misses, n.stale, n.revalidated, n.stores,
                                              n.collapsed};
                       if (const auto* d = c.disk()) {
                           info.disk_bytes = d->bytes();
                           info.disk_entries = d->entries();
                           info.disk_size = d->budget();
                           info.disk_reads = d->counts().reads;
                           info.disk_corrupt = d->counts().corrupt;
                           info.disk_failed = d->counts().failed;
                           info.disk_writing = d->writing();
                       }
                       out.push_back(std::move(info));
                   });
    return out;
}

std::size_t relay_admin::purge_cache(const std::string& url, bool prefix, const std::string& who) {
    std::size_t purged = 0;
    for_each_cache(*sites_, ctx_.tunnel_cache.get(),
                   [&](const std::string&, cache::http_cache& c) { purged += c.purge(url, prefix); });
    spdlog::info("admin: {} purged {} cached response{} ({} {})", who, purged,
                 purged == 1 ? "" : "s", prefix ? "prefix" : "url", core::printable(url));
    return purged;
}

admin::sites_info relay_admin::sites() const {
    admin::sites_info out;
    for (const auto& s : sites_->sites()) {
        admin::site_info site;
        site.hosts = s->hosts;
        for (const auto& r : s->routes) {
            admin::route_info route;
            route.path = r->path;
            route.lb_policy = std::string(config::to_string(r->pool->settings().policy));
            for (std::size_t i = 0; i < r->pool->size(); ++i)
                route.members.push_back(member_of(*r->pool, i));
            site.routes.push_back(std::move(route));
        }
        out.sites.push_back(std::move(site));
    }
    const auto at = tcp_.site_endpoints();
    const auto pools = tcp_.site_pools();
    for (std::size_t i = 0; i < pools.size() && i < at.size(); ++i) {
        admin::tcp_site_info site;
        site.listen = config::endpoint{at[i].address().to_string(), at[i].port()}.to_string();
        for (std::size_t m = 0; m < pools[i]->size(); ++m)
            site.members.push_back(member_of(*pools[i], m));
        out.tcp_sites.push_back(std::move(site));
    }
    return out;
}

std::vector<admin::token_info> relay_admin::tokens() const {
    std::vector<admin::token_info> out;
    for (const auto& t : tokens_) {
        std::size_t sessions = 0;
        for (const auto& [id, s] : control_.sessions()) sessions += s->token == t.verifier;
        out.push_back({t.hex.substr(0, 16), t.origin.source, t.origin.label, sessions});
    }
    return out;
}

std::string relay_admin::shared_config() const {
    const json doc = config_document(ctx_.cfg);
    std::vector<std::string> tokens;
    for (const auto& v : control_.tokens()) tokens.push_back(protocol::to_hex(v));
    std::sort(tokens.begin(), tokens.end());
    json tcp_sites = json::array();
    for (const auto& t : ctx_.cfg.sites.tcp_sites) {  // the listen address is each relay's own
        json members = json::array();
        for (const auto& m : t.upstream.members) members.push_back(m.url);
        tcp_sites.push_back({{"port", t.listen.port}, {"members", std::move(members)}});
    }
    // Policies as their tables' text: a relay that guards a site differently is told apart.
    const auto texts = [](const std::vector<config::policy_config>& policies) {
        json out = json::array();
        for (const auto& p : policies) out.push_back(p.source);
        return out;
    };
    json policies = json::array();
    for (const auto& s : ctx_.cfg.sites.sites) {
        json routes = json::array();
        for (const auto& r : s.routes) routes.push_back(texts(r.policies));
        policies.push_back({{"site", texts(s.policies)}, {"routes", std::move(routes)}});
    }
    const json shared{{"domain", doc["domain"]},
                      {"tokens", tokens},
                      {"max_tunnels_per_token", doc["max_tunnels_per_token"]},
                      {"max_sessions_per_token", doc["max_sessions_per_token"]},
                      {"reserved_names", doc["reserved_names"]},
                      {"tcp_ports", doc["tcp_ports"]},
                      {"sites", doc["sites"]},
                      {"site_policies", std::move(policies)},
                      {"tunnel_policies", texts(ctx_.cfg.tunnel_policies)},
                      {"tcp_sites", std::move(tcp_sites)}};
    return shared.dump();
}

std::string relay_admin::config_json() const {
    json doc = config_document(ctx_.cfg);
    doc["source"] = ctx_.cfg.config_file.empty() ? json(nullptr) : json(ctx_.cfg.config_file);
    doc["generation"] = generation_;
    doc["loaded_at"] = admin::rfc3339(loaded_at_);
    return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

admin::traffic_totals relay_admin::traffic() const {
    admin::traffic_totals t;
    const observe::relay_counters counters = all_counters ? all_counters() : ctx_.counters;
    const auto add = [&t](const observe::request_counts& c) {
        for (std::size_t i = 0; i < t.by_class.size(); ++i) t.by_class[i] += c.by_class[i];
    };
    for (const auto& c : counters.tunnels) add(c);
    for (const auto& c : counters.sites) add(c);
    add(counters.unrouted);
    t.bytes_in = counters.bytes_in + counters.carried.in;
    t.bytes_out = counters.bytes_out + counters.carried.out;
    t.sessions = control_.sessions().size();
    return t;
}

admin::kick_result relay_admin::kick(const std::string& id_prefix, const std::string& who) {
    std::shared_ptr<session> found;
    for (const auto& [id, s] : control_.sessions()) {
        if (!id.starts_with(id_prefix)) continue;
        if (found)
            return {outcome::conflict,
                    fmt::format("{} names more than one client: give more digits", id_prefix)};
        found = s;
    }
    if (!found) return {outcome::not_found, fmt::format("no client with id {}", id_prefix)};
    admin::kick_result r;
    r.closed = found->id_hex;
    for (const auto& [tid, t] : found->tunnels) r.tunnels.push_back(tunnel_label(*t));
    std::sort(r.tunnels.begin(), r.tunnels.end());
    spdlog::info("admin: {} closed session {}", who, found->id_hex.substr(0, 8));
    control_.kick(*found);
    return r;
}

admin::release_result relay_admin::release(const std::string& name, const std::string& who) {
    const auto now = clock::now();
    lease_table<std::string>::end_result ended;
    if (name.starts_with("tcp:")) {
        unsigned port = 0;
        const auto digits = std::string_view(name).substr(4);
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535)
            return {outcome::not_found, fmt::format("{} is not tcp:PORT", name)};
        ended = registry_.end_port_lease(static_cast<std::uint16_t>(port), now);
    } else {
        ended = registry_.end_name_lease(name, now);
    }
    using end_result = lease_table<std::string>::end_result;
    if (ended == end_result::absent)
        return {outcome::not_found, fmt::format("no lease of {}", name)};
    if (ended == end_result::in_use)
        return {outcome::conflict,
                fmt::format("a connected client holds {}: kick its client first", name)};
    spdlog::info("admin: {} released {}", who, name);
    return {};
}

admin::new_token relay_admin::add_token(const std::string& label, const std::string& who) {
    const auto& path = ctx_.cfg.tokens_file;
    if (path.empty())
        return {outcome::conflict,
                "this relay has no tokens_file to keep a new token in: set tokens_file "
                "(--tokens-file) and restart it", {}, {}, {}};
    std::array<std::uint8_t, 32> secret{};
    if (RAND_bytes(secret.data(), static_cast<int>(secret.size())) != 1)
        return {outcome::failed, "no random bytes from OpenSSL", {}, {}, {}};
    const std::string token = base64url(secret);
    const auto v = protocol::verifier_of(protocol::key_of_token(token));
    const std::string hex = protocol::to_hex(v);
    const auto now = unix_now();
    std::string minute = admin::rfc3339(now);
    minute = minute.substr(0, 16) + "Z";  // 2025-05-01T10:00Z
    const std::string line =
        label.empty() ? fmt::format("verifier:{}  # added {}\n", hex, minute)
                      : fmt::format("verifier:{}  # {}, added {}\n", hex, label, minute);
    if (auto ok = append_line(path, line); !ok)
        return {outcome::failed, ok.error(), {}, {}, {}};
    // The line's number, for "source".
    std::size_t lines = 0;
    {
        std::ifstream in(path);
        std::string l;
        while (std::getline(in, l)) ++lines;
    }
    control_.add_token(v);
    tokens_.push_back({v, hex, {fmt::format("{}:{}", path, lines), label, true}});
    spdlog::info("admin: {} added token {}{}", who, hex.substr(0, 16),
                 label.empty() ? "" : fmt::format(" ({})", label));
    return {outcome::done, {}, token, hex.substr(0, 16), "verifier:" + hex};
}

admin::revoke_result relay_admin::revoke_token(const std::string& digest_prefix,
                                               const std::string& who) {
    const token_entry* found = nullptr;
    for (const auto& t : tokens_) {
        if (!t.hex.starts_with(digest_prefix)) continue;
        if (found && found->verifier != t.verifier)
            return {outcome::conflict,
                    fmt::format("{} names more than one token: give more digits", digest_prefix),
                    {}, 0};
        if (!found || !t.origin.from_tokens_file) found = &t;
    }
    if (!found)
        return {outcome::not_found, fmt::format("no token with digest {}", digest_prefix), {}, 0};
    if (!found->origin.from_tokens_file)
        return {outcome::conflict,
                fmt::format("set at {}; remove it there and restart the relay",
                            found->origin.source),
                {}, 0};
    const protocol::verifier v = found->verifier;
    const std::string hex = found->hex;
    const auto& path = ctx_.cfg.tokens_file;
    std::ifstream in(path);
    if (!in) return {outcome::failed, fmt::format("{}: cannot read it", path), {}, 0};
    std::stringstream text;
    text << in.rdbuf();
    if (auto ok = replace_file(path, without_token(text.str(), v)); !ok)
        return {outcome::failed, ok.error(), {}, 0};
    std::erase_if(tokens_, [&](const token_entry& t) { return t.verifier == v; });
    const std::size_t closed = control_.revoke_token(v);
    spdlog::info("admin: {} revoked token {} ({} sessions closed)", who, hex.substr(0, 16), closed);
    return {outcome::done, {}, hex.substr(0, 16), closed};
}

}  // namespace porthole::relay
