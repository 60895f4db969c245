#pragma once
// The keys a jwt policy checks signatures with: a JWK Set's, or a shared secret. A jwks_url's
// ring starts empty and each fetch that brings other keys replaces them (on the first event
// loop). Every loop's jwt policies read the same ring: each keeps the set it last took and takes
// it again, under the ring's lock, only when the generation has moved; a request costs one
// atomic load.
#include "policy/jwks.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace porthole::policy {

class key_ring {
public:
    using key_set = std::vector<jwk>;
    key_ring() = default;
    explicit key_ring(std::string secret, key_set keys = {});

    struct snapshot {
        std::shared_ptr<const key_set> keys;
        std::uint64_t generation = 0;
    };
    snapshot keys() const;
    // Moves with each replace(): a snapshot is current while its generation equals this.
    std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
    // The keys now `keys`, unless they are the ones the ring has: false then.
    bool replace(key_set keys);
    const std::string& secret() const { return secret_; }  // HS256; set once

private:
    const std::string secret_;
    mutable std::mutex mutex_;
    std::shared_ptr<const key_set> keys_ = std::make_shared<const key_set>();
    std::atomic<std::uint64_t> generation_{0};
};

}  // namespace porthole::policy
