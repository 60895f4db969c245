#pragma once
// The registry of one relay, in memory: lease tables for names and ports, and the tunnels that
// serve each.
#include "relay/handoff.hpp"
#include "relay/tunnel_registry.hpp"

#include <unordered_map>

namespace porthole::relay {

class local_registry final : public tunnel_registry {
public:
    local_registry(clock::duration lease_grace, std::string node)
        : names_(lease_grace), ports_(lease_grace), node_(std::move(node)) {}

    boost::asio::awaitable<bool> claim_name(const tunnel& t, clock::time_point now) override {
        co_return claim_name_now(t.name, t.holder, now);
    }
    bool claim_name_now(const std::string& name, const owner_key& holder, clock::time_point now) {
        return names_.claim(name, holder, now);
    }
    void drop_name(const std::string& name, const owner_key& holder) override {
        names_.drop(name, holder);
    }
    bool name_held_by(const std::string& name, const owner_key& holder,
                      clock::time_point now) const {
        return names_.held_by(name, holder, now);
    }
    bool name_held(const std::string& name, clock::time_point now) const override {
        return names_.held(name, now);
    }
    owner_key name_holder(const std::string& name, clock::time_point now) const override {
        const owner_key* holder = names_.holder(name, now);
        return holder ? *holder : owner_key();
    }
    boost::asio::awaitable<bool> claim_port(std::uint16_t port, const owner_key& holder,
                                            clock::time_point now) override {
        co_return claim_port_now(port, holder, now);
    }
    bool claim_port_now(std::uint16_t port, const owner_key& holder, clock::time_point now) {
        return ports_.claim(port, holder, now);
    }
    owner_key port_holder(std::uint16_t port, clock::time_point now) const {
        const owner_key* holder = ports_.holder(port, now);
        return holder ? *holder : owner_key();
    }
    bool port_held(std::uint16_t port, clock::time_point now) const override {
        return ports_.held(port, now);
    }
    bool port_held_by(std::uint16_t port, const owner_key& holder,
                      clock::time_point now) const override {
        return ports_.held_by(port, holder, now);
    }
    void drop_port(std::uint16_t port, const owner_key& holder) override {
        ports_.drop(port, holder);
    }

    void add(const std::shared_ptr<tunnel>& t) override;
    void remove(const tunnel& t, bool leaving, clock::time_point now) override;

    std::vector<tunnel_location> locate(protocol::tunnel_kind kind,
                                        const std::string& name) const override;
    tunnel_group* local(protocol::tunnel_kind kind, const std::string& name) override;
    std::shared_ptr<tunnel> local_port(std::uint16_t port) const override;
    const remote_tunnel* remote(const std::string&) const override { return nullptr; }
    boost::asio::awaitable<void> learn(const std::string&, bool) override { co_return; }
    void for_each_port(const std::function<void(tunnel&)>& f) override;

    void expire(clock::time_point now) override {
        names_.expire(now);
        ports_.expire(now);
    }

    void for_each_tunnel(const std::function<void(const tunnel&)>& f) const override;
    std::vector<lease> leases(clock::time_point now) const override;

    // For handing over to the relay that replaces this one: every held name and port as a lease
    // of `grace` from now (one a session holds) or of what is left of it.
    std::vector<handoff::lease> handover_leases(clock::time_point now,
                                                clock::duration grace) const;
    // The other side: the leases a replaced relay handed over.
    void adopt(const std::vector<handoff::lease>& leases, clock::time_point now);
    lease_table<std::string>::end_result end_name_lease(const std::string& name,
                                                        clock::time_point now) override {
        return names_.end_lease(name, now);
    }
    lease_table<std::string>::end_result end_port_lease(std::uint16_t port,
                                                        clock::time_point now) override {
        // The two tables' results are the same three values.
        return static_cast<lease_table<std::string>::end_result>(ports_.end_lease(port, now));
    }
    // No other relay holds anything: this relay's own count is the whole.
    boost::asio::awaitable<std::optional<std::uint32_t>> admit_token(const std::string&,
                                                                     token_count, std::uint32_t,
                                                                     std::uint32_t) override;

private:
    using group_map = std::unordered_map<std::string, tunnel_group>;
    group_map& groups(protocol::tunnel_kind kind) {
        return kind == protocol::tunnel_kind::tls ? tls_ : http_;
    }
    const group_map& groups(protocol::tunnel_kind kind) const {
        return kind == protocol::tunnel_kind::tls ? tls_ : http_;
    }

    lease_table<std::string> names_;
    lease_table<std::uint16_t> ports_;
    std::string node_;
    group_map http_;
    group_map tls_;  // passthrough by SNI
    std::unordered_map<std::uint16_t, std::shared_ptr<tunnel>> tcp_;
};

}  // namespace porthole::relay
