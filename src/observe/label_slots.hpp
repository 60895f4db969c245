#pragma once
// Bounded label values for metrics: each name gets a slot of its own while fewer than `cap`
// are held; later names share the last slot, `_other`. A slot comes back when its name is
// released and is handed out again marked fresh, so the counters behind it start from zero.
// No label ever comes from what a visitor sends; this bounds the names clients choose. Pure.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace porthole::observe {

class label_slots {
public:
    explicit label_slots(std::uint32_t cap) : names_(cap) {}

    struct grant {
        std::uint32_t slot;
        bool fresh;  // a slot given anew: zero what was counted in it
    };
    // `name`'s slot, counted once more; other_slot() when every slot is taken.
    grant acquire(std::string_view name) {
        const std::string key(name);
        if (const auto it = held_.find(key); it != held_.end()) {
            ++it->second.uses;
            return {it->second.slot, false};
        }
        if (next_ == names_.size() && free_.empty()) return {other_slot(), false};
        std::uint32_t slot;
        if (!free_.empty()) {
            slot = free_.back();
            free_.pop_back();
        } else {
            slot = next_++;
        }
        names_[slot] = key;
        held_.emplace(key, entry{slot, 1});
        return {slot, true};
    }
    // One use of `name` fewer; its slot is free once none is left.
    void release(std::string_view name) {
        const auto it = held_.find(std::string(name));
        if (it == held_.end() || --it->second.uses != 0) return;
        names_[it->second.slot].clear();
        free_.push_back(it->second.slot);
        held_.erase(it);
    }

    // The slot `name` holds; other_slot() when it holds none.
    std::uint32_t slot_of(std::string_view name) const {
        const auto it = held_.find(std::string(name));
        return it == held_.end() ? other_slot() : it->second.slot;
    }

    std::uint32_t other_slot() const { return static_cast<std::uint32_t>(names_.size()); }
    std::uint32_t slots() const { return other_slot() + 1; }  // with _other
    // The name of a held slot; empty for a free one; "_other" for the shared one.
    std::string_view name(std::uint32_t slot) const {
        return slot == other_slot() ? std::string_view("_other") : std::string_view(names_[slot]);
    }

private:
    struct entry {
        std::uint32_t slot;
        std::uint32_t uses;
    };
    std::vector<std::string> names_;
    std::unordered_map<std::string, entry> held_;
    std::vector<std::uint32_t> free_;
    std::uint32_t next_ = 0;
};

}  // namespace porthole::observe
