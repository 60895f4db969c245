#include "admin/api.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <vector>

namespace porthole::admin {
namespace {

using json = nlohmann::json;

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

api_answer answer(int status, const json& j) { return {status, dump(j)}; }

api_answer error(int status, std::string_view message) {
    return answer(status, json{{"error", message}});
}

bool hex_of_at_least(std::string_view text, std::size_t digits) {
    return text.size() >= digits && text.size() <= 64 &&
           std::all_of(text.begin(), text.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

json or_null(const std::optional<unix_seconds>& t) {
    return t ? json(rfc3339(*t)) : json(nullptr);
}

json member_json(const member_info& m) {
    return {{"url", m.url},
            {"weight", m.weight},
            {"health", m.health},
            {"active", m.active},
            {"fails", m.fails},
            {"ejected_until", or_null(m.ejected_until)}};
}

// Up to `limit` entries of `items`, as `key`, with "truncated".
template <class T, class F>
json list(const char* key, const std::vector<T>& items, std::size_t limit, F&& to_json) {
    json out = json::array();
    for (std::size_t i = 0; i < items.size() && i < limit; ++i) out.push_back(to_json(items[i]));
    return {{key, std::move(out)}, {"truncated", items.size() > limit}};
}

json client_json(const client_info& c) {
    return {{"id", c.id},
            {"address", c.address},
            {"agent", c.agent},
            {"protocol", c.protocol},
            {"token", c.token.empty() ? json(nullptr) : json(c.token)},
            {"connected_since", rfc3339(c.connected_since)},
            {"rtt_ms", c.rtt_ms ? json(*c.rtt_ms) : json(nullptr)},
            {"tunnels", c.tunnels},
            {"data_pool", {{"idle", c.pool_idle}, {"waiting", c.pool_waiting}}}};
}

json tunnel_json(const tunnel_info& t) {
    json j{{"name", t.name}, {"kind", t.kind}, {"state", t.state}};
    if (t.state == "leased") {
        j["lease_until"] = or_null(t.lease_until);
        return j;
    }
    json members = json::array();
    for (const auto& m : t.members)
        members.push_back({{"client", m.client}, {"since", rfc3339(m.since)}});
    j["url"] = t.url;
    j["group"] = t.group.empty() ? json(nullptr) : json(t.group);
    j["members"] = std::move(members);
    j["open_connections"] = t.open_connections;
    return j;
}

json sites_json(const sites_info& s) {
    json sites = json::array();
    for (const auto& site : s.sites) {
        json routes = json::array();
        for (const auto& r : site.routes) {
            json members = json::array();
            for (const auto& m : r.members) members.push_back(member_json(m));
            routes.push_back({{"path", r.path.empty() ? "/" : r.path},
                              {"lb_policy", r.lb_policy},
                              {"members", std::move(members)}});
        }
        sites.push_back({{"hosts", site.hosts}, {"routes", std::move(routes)}});
    }
    json tcp = json::array();
    for (const auto& t : s.tcp_sites) {
        json members = json::array();
        for (const auto& m : t.members) members.push_back(member_json(m));
        tcp.push_back({{"listen", t.listen}, {"members", std::move(members)}});
    }
    return {{"sites", std::move(sites)}, {"tcp_sites", std::move(tcp)}};
}

// "2025-05-01T10:04:05.123Z".
std::string rfc3339_ms(std::chrono::system_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
    const std::string seconds = rfc3339(std::chrono::floor<std::chrono::seconds>(ms).count());
    return fmt::format("{}.{:03}Z", seconds.substr(0, seconds.size() - 1), ms.count() % 1000);
}

json or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

json recent_event_json(const observe::recent_event& e) {
    return {{"seq", e.seq},
            {"time", rfc3339_ms(e.time)},
            {"kind", observe::name_of(e.kind)},
            {"reason", e.reason},
            {"status", e.status == 0 ? json(nullptr) : json(e.status)},
            {"visitor", or_null(e.visitor)},
            {"host", or_null(e.host)},
            {"method", or_null(e.method)},
            {"path", or_null(e.path)},
            {"tunnel", or_null(e.tunnel)},
            {"site", or_null(e.site)}};
}

json recent_json(const observe::recent_events& recent, std::size_t limit) {
    std::vector<const observe::recent_event*> kept;
    recent.for_each_since(0, [&](const observe::recent_event& e) { kept.push_back(&e); });
    // The newest `limit`, newest first: what a reader looks at first. Ordered by the time each
    // happened, not by arrival: another loop's event reaches the ring a moment after it happened,
    // possibly after a later one of the first loop's.
    std::stable_sort(kept.begin(), kept.end(), [](const auto* a, const auto* b) {
        return a->time > b->time || (a->time == b->time && a->seq > b->seq);
    });
    const bool truncated = kept.size() > limit;
    if (truncated) kept.resize(limit);
    json events = json::array();
    for (const auto* e : kept) events.push_back(recent_event_json(*e));
    return {{"events", std::move(events)},
            {"truncated", truncated},
            {"capacity", observe::recent_events::capacity}};
}

int status_of(outcome o, int done) {
    switch (o) {
    case outcome::done: return done;
    case outcome::not_found: return 404;
    case outcome::conflict: return 409;
    case outcome::failed: break;
    }
    return 500;
}

api_answer get(relay_control& relay, const api_request& req, std::size_t limit) {
    const auto& path = req.path;
    if (path == "/api/clients")
        return answer(200, list("clients", relay.clients(), limit, client_json));
    if (path == "/api/tunnels")
        return answer(200, list("tunnels", relay.tunnels(), limit, tunnel_json));
    if (path == "/api/sites") return answer(200, sites_json(relay.sites()));
    if (path == "/api/config") return {200, relay.config_json() + "\n"};
    if (path == "/api/recent") return answer(200, recent_json(relay.recent(), limit));
    if (path == "/api/cache")
        return answer(200, list("caches", relay.caches(), limit, [](const cache_info& c) {
                          json j{{"name", c.name},       {"bytes", c.bytes},
                                 {"entries", c.entries}, {"memory", c.memory},
                                 {"hits", c.hits},       {"misses", c.misses},
                                 {"stale", c.stale},     {"revalidated", c.revalidated},
                                 {"stores", c.stores},   {"collapsed", c.collapsed},
                                 {"disk", nullptr}};
                          if (c.disk_size > 0)
                              j["disk"] = {{"bytes", c.disk_bytes},     {"entries", c.disk_entries},
                                           {"size", c.disk_size},       {"reads", c.disk_reads},
                                           {"corrupt", c.disk_corrupt}, {"failed_writes", c.disk_failed},
                                           {"writing", c.disk_writing}};
                          return j;
                      }));
    if (path == "/api/cluster") {
        const auto c = relay.cluster();
        if (!c)
            return error(404, "this relay is not in a cluster (its config has no cluster table)");
        json relays = json::array();
        for (const auto& r : c->relays)
            relays.push_back({{"node", r.node},
                              {"link", r.link},
                              {"ports", r.ports},
                              {"config", r.same_config ? "same" : "differs"}});
        return answer(200, {{"node", c->node},
                            {"redis", c->redis},
                            {"degraded", c->degraded},
                            {"relays", std::move(relays)},
                            {"lookups", c->lookups},
                            {"events", c->events},
                            {"carried", {{"out", c->carried_out}, {"in", c->carried_in}}},
                            {"link_refused", c->link_refused}});
    }
    if (path == "/api/tokens")
        return answer(200, list("tokens", relay.tokens(), limit, [](const token_info& t) {
                          return json{{"digest", t.digest},
                                      {"source", t.source},
                                      {"label", t.label.empty() ? json(nullptr) : json(t.label)},
                                      {"sessions", t.sessions}};
                      }));
    return error(404, fmt::format("no such API: {}", path));
}

api_answer add_token(relay_control& relay, const api_request& req) {
    std::string label;
    if (!req.body.empty()) {
        const json body = json::parse(req.body, nullptr, false);
        if (!body.is_object()) return error(400, "send a JSON object: {\"label\": \"laptop\"}");
        if (body.contains("label")) {
            if (!body["label"].is_string()) return error(400, "label must be a string");
            label = body["label"].get<std::string>();
        }
    }
    if (label.size() > 64) return error(400, "a label has at most 64 characters");
    if (std::any_of(label.begin(), label.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
        return error(400, "a label is one line of printable text");
    auto made = relay.add_token(label, req.who);
    if (made.result != outcome::done) return error(status_of(made.result, 201), made.message);
    return answer(201,
                  {{"token", made.token}, {"digest", made.digest}, {"verifier", made.verifier}});
}

api_answer change(relay_control& relay, const api_request& req) {
    const auto& path = req.path;
    constexpr std::string_view clients = "/api/clients/";
    constexpr std::string_view leases = "/api/leases/";
    constexpr std::string_view tokens = "/api/tokens/";
    if (req.method == "POST" && path == "/api/tokens") return add_token(relay, req);
    if (req.method == "POST" && path == "/api/reload") {
        auto reloaded = relay.reload(req.who);
        if (reloaded.result != outcome::done)
            return answer(422, {{"error", reloaded.message},
                                {"generation", reloaded.generation}});
        return answer(200, {{"generation", reloaded.generation}, {"changes", reloaded.message}});
    }
    if (req.method != "DELETE") return error(405, "this API takes GET, POST or DELETE");
    if (path == "/api/cache") {
        if (req.url.empty() == req.prefix.empty())
            return error(400, "name what to purge: ?url=https://host/path or ?prefix=host/path");
        const bool prefix = !req.prefix.empty();
        const std::string what(prefix ? req.prefix : req.url);
        return answer(200, {{"purged", relay.purge_cache(what, prefix, req.who)}});
    }
    if (path.starts_with(clients)) {
        const std::string id(path.substr(clients.size()));
        if (!hex_of_at_least(id, 8))
            return error(400, "name a client by 8 or more lowercase hex digits of its id");
        auto kicked = relay.kick(id, req.who);
        if (kicked.result != outcome::done)
            return error(status_of(kicked.result, 200), kicked.message);
        return answer(200, {{"closed", kicked.closed}, {"tunnels", kicked.tunnels}});
    }
    if (path.starts_with(leases)) {
        const std::string name(path.substr(leases.size()));
        if (name.empty()) return error(400, "name a lease: NAME or tcp:PORT");
        auto released = relay.release(name, req.who);
        if (released.result != outcome::done)
            return error(status_of(released.result, 200), released.message);
        return answer(200, {{"released", name}});
    }
    if (path.starts_with(tokens)) {
        const std::string digest(path.substr(tokens.size()));
        if (!hex_of_at_least(digest, 12))
            return error(400, "name a token by 12 or more lowercase hex digits of its digest");
        auto revoked = relay.revoke_token(digest, req.who);
        if (revoked.result != outcome::done)
            return error(status_of(revoked.result, 200), revoked.message);
        return answer(200, {{"revoked", revoked.revoked},
                            {"sessions_closed", revoked.sessions_closed}});
    }
    return error(404, fmt::format("no such API: {}", path));
}

}  // namespace

std::string rfc3339(unix_seconds t) {
    const std::time_t time = t;
    std::tm tm{};
    gmtime_r(&time, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

std::string event_json(const observe::recent_event& e) {
    return recent_event_json(e).dump(-1, ' ', false, json::error_handler_t::replace);
}

api_answer handle(relay_control& relay, const api_request& req) {
    std::size_t limit = list_limit;
    if (!req.limit.empty()) {
        std::size_t given = 0;
        const auto [end, ec] =
            std::from_chars(req.limit.data(), req.limit.data() + req.limit.size(), given);
        if (ec != std::errc() || end != req.limit.data() + req.limit.size())
            return error(400, "limit must be a whole number");
        limit = std::min(given, list_limit);
    }
    if (req.method == "GET" || req.method == "HEAD") return get(relay, req, limit);
    return change(relay, req);
}

}  // namespace porthole::admin
