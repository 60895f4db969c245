#pragma once
// The control port's connections that have not authenticated yet, in all and per source address.
// A stranger may hold at most `per_ip` of them; when all `total` are taken, a newcomer closes the
// oldest, so a flood of connections that never finish their handshake cannot lock out a client
// that does (it needs one round trip; the flood's entries are the old ones). Pure: closing an
// entry is the caller's callback.
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace porthole::relay {

class handshake_gate {
    struct entry {
        std::string ip;
        std::function<void()> evict;
        bool evicted = false;
    };

public:
    // Holds one place; gives it back when destroyed.
    class ticket {
    public:
        ticket(handshake_gate& g, std::list<entry>::iterator it) : gate_(&g), it_(it) {}
        ticket(ticket&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)), it_(o.it_) {}
        ticket(const ticket&) = delete;
        ticket& operator=(const ticket&) = delete;
        ticket& operator=(ticket&&) = delete;
        ~ticket() {
            if (gate_) gate_->leave(it_);
        }

    private:
        handshake_gate* gate_;
        std::list<entry>::iterator it_;
    };

    handshake_gate(std::uint32_t total, std::uint32_t per_ip) : total_(total), per_ip_(per_ip) {}

    // A place for a connection from `ip`, or nullopt when that address holds its share already.
    // `evict` is called (at most once) if a newer connection takes the place.
    std::optional<ticket> admit(const std::string& ip, std::function<void()> evict) {
        auto& mine = by_ip_[ip];
        if (mine >= per_ip_) return std::nullopt;
        if (pending_.size() >= total_) {
            // Moved aside (its ticket still leaves by itself), so it is never evicted twice.
            evicted_.splice(evicted_.end(), pending_, pending_.begin());
            entry& oldest = evicted_.back();
            oldest.evicted = true;
            ++evictions_;
            std::exchange(oldest.evict, nullptr)();
        }
        ++mine;
        pending_.push_back(entry{ip, std::move(evict)});
        return ticket(*this, std::prev(pending_.end()));
    }

    std::size_t size() const { return pending_.size(); }
    std::uint64_t evictions() const { return evictions_; }

private:
    void leave(std::list<entry>::iterator it) {
        if (auto n = by_ip_.find(it->ip); n != by_ip_.end() && --n->second == 0) by_ip_.erase(n);
        (it->evicted ? evicted_ : pending_).erase(it);
    }

    std::uint32_t total_;
    std::uint32_t per_ip_;
    std::list<entry> pending_;  // oldest first
    std::list<entry> evicted_;  // closed by the gate, their connections not yet gone
    std::unordered_map<std::string, std::uint32_t> by_ip_;
    std::uint64_t evictions_ = 0;
};

}  // namespace porthole::relay
