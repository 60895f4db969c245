#pragma once
// Who holds which subdomain and TCP port, including leases that outlive a dropped session so the
// same client gets them back on reconnect. Pure: no sockets, time is passed in.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace porthole::relay {

using clock = std::chrono::steady_clock;

// (token, client_id) of a client, as an opaque string.
using owner_key = std::string;

template <class Key>
class lease_table {
public:
    explicit lease_table(clock::duration grace) : grace_(grace) {}

    // Takes `key` for `owner`: succeeds when free, expired, or already the owner's.
    bool claim(const Key& key, const owner_key& owner, clock::time_point now) {
        auto [it, fresh] = entries_.try_emplace(key, entry{owner, std::nullopt});
        if (fresh) return true;
        entry& e = it->second;
        if (e.owner != owner && !(e.lease_until && *e.lease_until <= now)) return false;
        e = entry{owner, std::nullopt};
        return true;
    }

    // The owner's session ended: keep the key reserved for the grace period.
    void release(const Key& key, const owner_key& owner, clock::time_point now) {
        auto it = entries_.find(key);
        if (it != entries_.end() && it->second.owner == owner) it->second.lease_until = now + grace_;
    }

    // The owner no longer wants the key at all.
    void drop(const Key& key, const owner_key& owner) {
        auto it = entries_.find(key);
        if (it != entries_.end() && it->second.owner == owner) entries_.erase(it);
    }

    // True while `owner` holds it, in a session or by an unexpired lease.
    bool held_by(const Key& key, const owner_key& owner, clock::time_point now) const {
        auto it = entries_.find(key);
        return it != entries_.end() && it->second.owner == owner &&
               !(it->second.lease_until && *it->second.lease_until <= now);
    }

    // Who holds it, in a session or by an unexpired lease; null when nobody does.
    const owner_key* holder(const Key& key, clock::time_point now) const {
        auto it = entries_.find(key);
        if (it == entries_.end() || (it->second.lease_until && *it->second.lease_until <= now))
            return nullptr;
        return &it->second.owner;
    }

    // True while held by a session or by an unexpired lease.
    bool held(const Key& key, clock::time_point now) const {
        auto it = entries_.find(key);
        return it != entries_.end() && !(it->second.lease_until && *it->second.lease_until <= now);
    }

    void expire(clock::time_point now) {
        std::erase_if(entries_, [&](const auto& kv) {
            return kv.second.lease_until && *kv.second.lease_until <= now;
        });
    }

    std::size_t size() const { return entries_.size(); }

    // f(key, lease end) for every unexpired lease (a key no session holds).
    template <class F>
    void for_each_lease(clock::time_point now, F&& f) const {
        for (const auto& [key, e] : entries_)
            if (e.lease_until && *e.lease_until > now) f(key, *e.lease_until);
    }

    // f(key, owner, lease end) for every key held now; the end is nullopt while a session holds it.
    template <class F>
    void for_each_holder(clock::time_point now, F&& f) const {
        for (const auto& [key, e] : entries_)
            if (!(e.lease_until && *e.lease_until <= now)) f(key, e.owner, e.lease_until);
    }

    // Reserves `key` for `owner` until `until`, as a lease: how the names and ports of the relay
    // this one replaced arrive.
    void adopt(const Key& key, const owner_key& owner, clock::time_point until) {
        entries_[key] = entry{owner, until};
    }

    enum class end_result { ended, in_use, absent };
    // Ends a lease before its grace is over; a key a session holds stays.
    end_result end_lease(const Key& key, clock::time_point now) {
        auto it = entries_.find(key);
        if (it == entries_.end() || (it->second.lease_until && *it->second.lease_until <= now))
            return end_result::absent;
        if (!it->second.lease_until) return end_result::in_use;
        entries_.erase(it);
        return end_result::ended;
    }

private:
    struct entry {
        owner_key owner;
        std::optional<clock::time_point> lease_until;  // nullopt: held by a live session
    };
    clock::duration grace_;
    std::unordered_map<Key, entry> entries_;
};

}  // namespace porthole::relay
