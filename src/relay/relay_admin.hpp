#pragma once
// The relay's admin::relay_control: what the admin API reads of the control port, the registry
// and the pools, and the changes it makes: kicks, lease releases, tokens added and revoked.
#include "admin/relay_control.hpp"
#include "relay/control_port.hpp"
#include "relay/relay_context.hpp"
#include "relay/tcp_edge.hpp"
#include "relay/tunnel_registry.hpp"
#include "route/route_table.hpp"

#include <functional>
#include <string>
#include <vector>

namespace porthole::relay {

// The relay's part of an upgrade: binary, wait, done.
using upgrade_hook =
    std::function<void(const std::string&, std::chrono::seconds, admin::upgrade_done)>;

class relay_admin final : public admin::relay_control {
public:
    relay_admin(relay_context& ctx, control_port& control, tunnel_registry& registry,
                const std::shared_ptr<route::route_table>& sites, const tcp_edge& tcp,
                std::function<admin::reload_result()> reload, upgrade_hook upgrade);

    std::vector<admin::client_info> clients() const override;
    std::vector<admin::tunnel_info> tunnels() const override;
    admin::sites_info sites() const override;
    std::vector<admin::token_info> tokens() const override;
    std::string config_json() const override;
    admin::traffic_totals traffic() const override;
    observe::recent_events& recent() override { return ctx_.recent; }

    admin::kick_result kick(const std::string& id_prefix, const std::string& who) override;
    admin::release_result release(const std::string& name, const std::string& who) override;
    std::vector<admin::cache_info> caches() const override;
    std::optional<admin::cluster_info> cluster() const override {
        return cluster_state ? cluster_state() : std::nullopt;
    }
    // Set with threads > 1: every loop's counters added up (traffic() reads them).
    std::function<observe::relay_counters()> all_counters;
    // Set in a cluster: what cluster() answers.
    std::function<std::optional<admin::cluster_info>()> cluster_state;
    std::size_t purge_cache(const std::string& url, bool prefix, const std::string& who) override;
    admin::new_token add_token(const std::string& label, const std::string& who) override;
    admin::revoke_result revoke_token(const std::string& digest_prefix,
                                      const std::string& who) override;
    admin::reload_result reload(const std::string& who) override;
    void upgrade(const std::string& binary, std::chrono::seconds wait, const std::string& who,
                 admin::upgrade_done done) override;
    // The config's tokens and where each came from, read again (after a reload).
    void load_tokens();
    // What every relay of a cluster must have alike, as text to compare by its digest: the
    // domain, the accepted tokens (their verifiers), the per-token limits, the reserved names,
    // the TCP port range, the sites (hosts, routes, members), the sites' and the tunnels'
    // policies (their TOML tables' text: a file a policy names is compared by its path).
    std::string shared_config() const;

private:
    // A live token and where it came from.
    struct token_entry {
        protocol::verifier verifier{};
        std::string hex{};
        config::token_origin origin{};
    };

    relay_context& ctx_;
    control_port& control_;
    tunnel_registry& registry_;
    const std::shared_ptr<route::route_table>& sites_;
    const tcp_edge& tcp_;
    std::function<admin::reload_result()> reload_;
    upgrade_hook upgrade_;
    std::vector<token_entry> tokens_;
    std::int64_t loaded_at_;
    std::uint64_t generation_ = 1;  // of the running config: a reload that applies moves it
};

// The tokens file without the entries naming `v`, comments and other lines kept.
std::string without_token(std::string_view file_text, const protocol::verifier& v);

}  // namespace porthole::relay
