#include "relay/local_registry.hpp"

#include <charconv>

namespace porthole::relay {

using protocol::tunnel_kind;

std::shared_ptr<tunnel> tunnel_group::pick() {
    for (std::size_t tried = 0; tried < members.size(); ++tried) {
        auto& t = members[next++ % members.size()];
        if (auto s = t->owner.lock(); s && !s->closed) return t;
    }
    return nullptr;
}

void local_registry::add(const std::shared_ptr<tunnel>& t) {
    if (t->kind == tunnel_kind::tcp)
        tcp_[t->port] = t;
    else
        groups(t->kind)[t->name].members.push_back(t);
}

void local_registry::remove(const tunnel& t, bool leaving, clock::time_point now) {
    if (t.kind == tunnel_kind::tcp) {
        if (auto it = tcp_.find(t.port); it != tcp_.end() && it->second.get() == &t) tcp_.erase(it);
        if (leaving)
            ports_.drop(t.port, t.holder);
        else
            ports_.release(t.port, t.holder, now);
        return;
    }
    auto& map = groups(t.kind);
    auto it = map.find(t.name);
    if (it == map.end()) return;
    auto& members = it->second.members;
    std::erase_if(members, [&](const auto& m) { return m.get() == &t; });
    if (!members.empty()) return;  // the group keeps the name
    map.erase(it);
    // A name is held for its http and tls tunnels alike: it stays while either serves it.
    if (groups(t.kind == tunnel_kind::http ? tunnel_kind::tls : tunnel_kind::http).contains(t.name))
        return;
    if (leaving)
        names_.drop(t.name, t.holder);
    else
        names_.release(t.name, t.holder, now);
}

std::vector<tunnel_location> local_registry::locate(tunnel_kind kind,
                                                    const std::string& name) const {
    std::vector<tunnel_location> found;
    if (auto it = groups(kind).find(name); it != groups(kind).end())
        for (const auto& t : it->second.members)
            if (auto s = t->owner.lock()) found.push_back({s->id_hex, node_, t->id});
    return found;
}

tunnel_group* local_registry::local(tunnel_kind kind, const std::string& name) {
    auto& map = groups(kind);
    auto it = map.find(name);
    return it == map.end() ? nullptr : &it->second;
}

std::shared_ptr<tunnel> local_registry::local_port(std::uint16_t port) const {
    auto it = tcp_.find(port);
    return it == tcp_.end() ? nullptr : it->second;
}

void local_registry::for_each_port(const std::function<void(tunnel&)>& f) {
    for (auto& [port, t] : tcp_) f(*t);
}

void local_registry::for_each_tunnel(const std::function<void(const tunnel&)>& f) const {
    for (const auto* map : {&http_, &tls_})
        for (const auto& [name, group] : *map)
            for (const auto& t : group.members) f(*t);
    for (const auto& [port, t] : tcp_) f(*t);
}

std::vector<tunnel_registry::lease> local_registry::leases(clock::time_point now) const {
    std::vector<lease> out;
    names_.for_each_lease(now, [&](const std::string& name, clock::time_point until) {
        out.push_back({name, 0, until});
    });
    ports_.for_each_lease(now, [&](std::uint16_t port, clock::time_point until) {
        out.push_back({{}, port, until});
    });
    return out;
}

std::vector<handoff::lease> local_registry::handover_leases(clock::time_point now,
                                                             clock::duration grace) const {
    std::vector<handoff::lease> out;
    const auto left = [&](const std::optional<clock::time_point>& until) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(until ? *until - now : grace);
    };
    names_.for_each_holder(now, [&](const std::string& name, const owner_key& owner,
                                    const std::optional<clock::time_point>& until) {
        out.push_back({false, name, handoff::hex_of(owner), left(until)});
    });
    ports_.for_each_holder(now, [&](std::uint16_t port, const owner_key& owner,
                                    const std::optional<clock::time_point>& until) {
        out.push_back({true, std::to_string(port), handoff::hex_of(owner), left(until)});
    });
    return out;
}

void local_registry::adopt(const std::vector<handoff::lease>& leases, clock::time_point now) {
    for (const auto& l : leases) {
        const auto owner = handoff::bytes_of_hex(l.holder);
        if (!owner) continue;
        const owner_key& key = *owner;
        const auto until = now + l.remaining;
        if (!l.port) {
            names_.adopt(l.key, key, until);
            continue;
        }
        unsigned port = 0;
        const auto [end, ec] = std::from_chars(l.key.data(), l.key.data() + l.key.size(), port);
        if (ec == std::errc() && end == l.key.data() + l.key.size() && port > 0 && port <= 65535)
            ports_.adopt(static_cast<std::uint16_t>(port), key, until);
    }
}

boost::asio::awaitable<std::optional<std::uint32_t>> local_registry::admit_token(
    const std::string&, token_count, std::uint32_t, std::uint32_t) {
    co_return std::nullopt;
}

}  // namespace porthole::relay
