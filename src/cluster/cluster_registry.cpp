#include "cluster/cluster_registry.hpp"

#include "config/policy_config.hpp"
#include "core/use_tuple.hpp"
#include "policy/chain.hpp"
#include "protocol/auth.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <map>
#include <set>

namespace porthole::cluster {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using protocol::tunnel_kind;

namespace {

constexpr auto beat = 1s;  // the heartbeat: this relay's key and its tunnels' keys refreshed
constexpr auto node_ttl = 3 * beat;  // a relay whose key is gone is dead to the others
constexpr auto fresh_serving = 1s;  // how long a learnt answer is believed
constexpr auto fresh_other = 250ms;  // ... when it says "nobody" or "held, not served"
constexpr std::size_t max_known = 10000;  // other relays' names remembered at most

// Claims or refreshes keys, each for one holder, atomically. KEYS: the keys. ARGV: this node, the
// TTL in ms, "1" to refresh, then for each key its holder digest, the owner's policies, "1" when
// the owner asked for the cache, and when its tunnel opened (ms since the epoch); after those,
// each key's tunnel kind (1 http, 2 tcp, 3 tls). A key is taken
// when absent or held by the same holder (a client reconnecting through any relay). A refresh
// does not take back a key its holder moved to another relay; a key two holders claimed (each
// through its relay while Redis was away) goes to the tunnel opened first. Answers 1 (held) or 0
// per key.
constexpr std::string_view claim_script = R"lua(
local node, ttl, refresh = ARGV[1], ARGV[2], ARGV[3] == '1'
local out = {}
for i, key in ipairs(KEYS) do
  local holder, policies, cache, since = ARGV[4 * i], ARGV[1 + 4 * i], ARGV[2 + 4 * i], ARGV[3 + 4 * i]
  local h = redis.call('HGET', key, 'holder')
  local take = not h or (h == holder and not refresh)
  if h and h ~= holder and refresh then
    local theirs = tonumber(redis.call('HGET', key, 'since') or '')
    take = theirs ~= nil and tonumber(since) < theirs
  end
  if take then
    redis.call('DEL', key)
    redis.call('HSET', key, 'holder', holder, 'node', node, 'state', 'live',
               'policies', policies, 'cache', cache, 'since', since, 'kind', ARGV[3 + 4 * #KEYS + i])
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  elseif h == holder and redis.call('HGET', key, 'node') == node then
    redis.call('HSET', key, 'state', 'live')
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
)lua";

// Gives a key up: deleted (`drop`), or kept as a lease for ARGV[4] ms; only by its holder on
// the node that holds it. KEYS[1]: the key. ARGV: holder digest, node, drop|lease, grace.
constexpr std::string_view release_script = R"lua(
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] or
   redis.call('HGET', KEYS[1], 'node') ~= ARGV[2] then return 0 end
if ARGV[3] == 'drop' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'state', 'leased')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
)lua";

// Who holds a name, and where that relay's link is (empty when the relay is gone).
// KEYS[1]: the name's key. ARGV[1]: the prefix of node keys.
constexpr std::string_view lookup_script = R"lua(
local v = redis.call('HMGET', KEYS[1], 'node', 'state', 'policies', 'cache', 'kind')
if not v[1] then return {} end
local link = redis.call('GET', ARGV[1] .. v[1])
return {v[1], v[2] or '', v[3] or '', v[4] or '', link or '', v[5] or '1'}
)lua";

// This relay's heartbeat: its link address and its TCP tunnels' ports, and the same of every
// relay alive, so that each relay listens on the others' ports too. ARGV: node, TTL in ms,
// advertise, ports ("20001,20002"). Answers node, link, ports for each live relay.
constexpr std::string_view beat_script = R"lua(
local node, ttl = ARGV[1], ARGV[2]
redis.call('SADD', 'porthole:nodes', node)
redis.call('SET', 'porthole:node:' .. node, ARGV[3], 'PX', ttl)
redis.call('SET', 'porthole:ports:' .. node, ARGV[4], 'PX', ttl)
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', 'porthole:nodes')) do
  local link = redis.call('GET', 'porthole:node:' .. n)
  if link then
    out[#out + 1] = n
    out[#out + 1] = link
    out[#out + 1] = redis.call('GET', 'porthole:ports:' .. n) or ''
  end
end
return out
)lua";

std::string name_key(const std::string& name) { return "porthole:name:" + name; }
std::string port_key(std::uint16_t port) { return fmt::format("porthole:port:{}", port); }
constexpr std::string_view node_prefix = "porthole:node:";

// The holder as Redis keeps it: a digest, never the token-derived key itself.
std::string holder_digest(const owner_key& holder) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(holder.data(), holder.size(), md, &n, EVP_sha256(), nullptr);
    return protocol::to_hex(std::span<const std::uint8_t>(md, n));
}

// A time in ms since the epoch: of two claims of one name, the older tunnel's wins.
std::string epoch_millis(std::chrono::system_clock::time_point t) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}
std::string since_of(const relay::tunnel& t) { return epoch_millis(t.opened); }

std::string millis(clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

redis_address address_of(const config::cluster_config& cfg) {
    auto a = parse_redis_url(cfg.redis);  // checked when the config was read
    redis_address out = a ? *a : redis_address{};
    if (!cfg.redis_password.empty()) out.password = cfg.redis_password;
    return out;
}

}  // namespace

cluster_registry::cluster_registry(asio::io_context& io, relay::local_registry& local,
                                   const config::cluster_config& cfg, clock::duration lease_grace,
                                   std::vector<std::string> forbid, std::uint64_t& changed)
    : io_(io), local_(local), cfg_(cfg), lease_grace_(lease_grace), forbid_(std::move(forbid)),
      changed_(changed), redis_(io.get_executor(), address_of(cfg), 1s), beat_(io) {}

void cluster_registry::set_degraded(bool on, std::string_view why) {
    if (on == degraded_) return;
    degraded_ = on;
    if (on)
        spdlog::warn("cluster: Redis at {} is unreachable ({}): serving this relay's tunnels and "
                     "taking new ones locally until it returns (degraded)",
                     redis_.address().describe(), why);
    else
        spdlog::info("cluster: Redis at {} is back: claiming this relay's names and ports again",
                     redis_.address().describe());
}

asio::awaitable<tl::expected<void, std::string>> cluster_registry::connect() {
    next_connect_ = clock::now() + beat;
    auto r = co_await redis_.connect();
    if (!r) {
        set_degraded(true, r.error());
        co_return r;
    }
    set_degraded(false, {});
    co_return r;
}

asio::awaitable<void> cluster_registry::run() {
    while (!stopped_) {
        co_await heartbeat();
        if (stopped_) break;
        beat_.expires_after(beat);
        co_await beat_.async_wait(use_tuple);
    }
}

void cluster_registry::stop() {
    stopped_ = true;
    beat_.cancel();
}

asio::awaitable<void> cluster_registry::heartbeat() {
    if (!redis_.connected()) {
        if (clock::now() < next_connect_) co_return;
        auto r = co_await connect();
        if (!r) co_return;
    }
    std::string ports;
    local_.for_each_port([&](relay::tunnel& t) {
        if (auto s = t.owner.lock(); s && !s->closed)
            ports += (ports.empty() ? "" : ",") + std::to_string(t.port);
    });
    std::vector<std::string> beat_args{"EVAL", std::string(beat_script), "0", cfg_.node_id,
                                       millis(node_ttl), cfg_.advertise.to_string(),
                                       std::move(ports)};
    auto nodes = co_await redis_.command(std::move(beat_args));
    if (!nodes) {
        set_degraded(true, nodes.error());
        co_return;
    }
    nodes_.clear();
    for (std::size_t i = 0; i + 2 < nodes->elements.size(); i += 3)
        nodes_.push_back({nodes->elements[i].text, nodes->elements[i + 1].text,
                          nodes->elements[i + 2].text});
    if (on_ports) {
        // The other relays' TCP tunnel ports, where this relay holds none of its own.
        std::map<std::uint16_t, std::string> remote_ports;
        const auto& e = nodes->elements;
        for (std::size_t i = 0; i + 2 < e.size(); i += 3) {
            if (e[i].text == cfg_.node_id) continue;
            std::string_view list = e[i + 2].text;
            while (!list.empty()) {
                const auto comma = list.find(',');
                const auto item = list.substr(0, comma);
                unsigned port = 0;
                const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), port);
                if (ec == std::errc() && end == item.data() + item.size() && port > 0 &&
                    port <= 65535 && !local_.local_port(static_cast<std::uint16_t>(port)))
                    remote_ports[static_cast<std::uint16_t>(port)] = e[i + 1].text;
                list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
            }
        }
        on_ports(remote_ports);
    }
    // Every name and port a session of this relay holds, claimed again: refreshed, or taken back
    // after Redis was away.
    std::vector<std::string> keys;
    std::vector<std::string> args;
    std::vector<std::string> kinds;
    std::set<std::string> seen;  // a group's members share their name's key
    local_.for_each_tunnel([&](const relay::tunnel& t) {
        auto s = t.owner.lock();
        if (!s || s->closed) return;
        std::string key = t.kind == tunnel_kind::tcp ? port_key(t.port) : name_key(t.name);
        if (!seen.insert(key).second) return;
        keys.push_back(std::move(key));
        args.push_back(holder_digest(t.holder));
        args.push_back(t.policy_text);
        args.push_back(t.owner_cache ? "1" : "0");
        args.push_back(since_of(t));
        kinds.push_back(std::to_string(static_cast<int>(t.kind)));
    });
    if (keys.empty()) co_return;
    std::vector<std::string> command{"EVAL", std::string(claim_script),
                                     std::to_string(keys.size())};
    command.insert(command.end(), keys.begin(), keys.end());
    command.push_back(cfg_.node_id);
    command.push_back(millis(node_ttl + lease_grace_));
    command.push_back("1");
    command.insert(command.end(), args.begin(), args.end());
    command.insert(command.end(), kinds.begin(), kinds.end());
    auto reply = co_await redis_.command(std::move(command));
    if (!reply) {
        set_degraded(true, reply.error());
        co_return;
    }
    // The tunnels may have changed while the reply was on its way: the lost ones are looked up
    // again by key before anything is done to them.
    std::vector<std::string> lost;
    for (std::size_t i = 0; i < keys.size() && i < reply->elements.size(); ++i)
        if (reply->elements[i].integer == 0) lost.push_back(keys[i]);
    if (lost.empty() || !on_lost) co_return;
    std::vector<std::shared_ptr<const relay::tunnel>> gone;
    local_.for_each_tunnel([&](const relay::tunnel& t) {
        const std::string key = t.kind == tunnel_kind::tcp ? port_key(t.port) : name_key(t.name);
        if (std::find(lost.begin(), lost.end(), key) != lost.end())
            if (auto s = t.owner.lock(); s && !s->closed)
                for (const auto& [id, mine] : s->tunnels)
                    if (mine.get() == &t) gone.push_back(mine);
    });
    for (const auto& t : gone)
        on_lost(*t, "another relay of the cluster holds its name or port now");
}

asio::awaitable<std::optional<bool>> cluster_registry::claim_key(std::string key, owner_key holder,
                                                                 std::string policies, bool cache,
                                                                 std::string since,
                                                                 tunnel_kind kind) {
    if (!redis_.connected() && clock::now() >= next_connect_) (void)co_await connect();
    if (!redis_.connected()) co_return std::nullopt;
    std::vector<std::string> command{"EVAL",
                                     std::string(claim_script),
                                     "1",
                                     std::move(key),
                                     cfg_.node_id,
                                     millis(node_ttl + lease_grace_),
                                     "0",
                                     holder_digest(holder),
                                     std::move(policies),
                                     cache ? "1" : "0",
                                     std::move(since),
                                     std::to_string(static_cast<int>(kind))};
    auto reply = co_await redis_.command(std::move(command));
    if (!reply && redis_.connected()) {
        // Redis answered, with an error: the claim is refused, never taken on trust.
        spdlog::error("cluster: Redis refused a claim: {}", reply.error());
        co_return false;
    }
    if (!reply) {
        set_degraded(true, reply.error());
        co_return std::nullopt;
    }
    co_return !reply->elements.empty() && reply->elements.front().integer == 1;
}

asio::awaitable<bool> cluster_registry::claim_name(const relay::tunnel& t, clock::time_point now) {
    const bool before = local_.name_held_by(t.name, t.holder, now);
    if (!local_.claim_name_now(t.name, t.holder, now)) co_return false;
    const std::string name = t.name;
    const owner_key holder = t.holder;
    auto held = co_await claim_key(name_key(name), holder, t.policy_text, t.owner_cache,
                                   since_of(t), t.kind);
    if (held && !*held) {
        if (!before) local_.drop_name(name, holder);
        co_return false;
    }
    if (held) {  // this relay serves it now: what it knew of another relay's is out of date
        if (remote_.erase(name) > 0) ++changed_;
    }
    co_return true;
}

asio::awaitable<bool> cluster_registry::claim_port(std::uint16_t port, const owner_key& holder,
                                                   clock::time_point now) {
    const bool before = local_.port_held_by(port, holder, now);
    const owner_key who = holder;
    if (!local_.claim_port_now(port, who, now)) co_return false;
    auto held = co_await claim_key(port_key(port), who, std::string(), false,
                                   epoch_millis(std::chrono::system_clock::now()),
                                   tunnel_kind::tcp);
    if (held && !*held) {
        if (!before) local_.drop_port(port, who);
        co_return false;
    }
    if (on_port_claimed) on_port_claimed(port);  // this relay listens on it for its own client now
    co_return true;
}

void cluster_registry::release_key(std::string key, const owner_key& holder, bool leaving) {
    if (!redis_.connected()) return;  // the key expires; the heartbeat set its TTL
    std::vector<std::string> command{"EVAL", std::string(release_script), "1", std::move(key),
                                     holder_digest(holder), cfg_.node_id,
                                     leaving ? "drop" : "lease", millis(lease_grace_)};
    asio::co_spawn(
        io_,
        [this, command = std::move(command)]() mutable -> asio::awaitable<void> {
            auto r = co_await redis_.command(std::move(command));
            if (!r) set_degraded(true, r.error());
        },
        asio::detached);
}

void cluster_registry::drop_port(std::uint16_t port, const owner_key& holder) {
    local_.drop_port(port, holder);
    release_key(port_key(port), holder, true);
}

void cluster_registry::drop_name(const std::string& name, const owner_key& holder) {
    local_.drop_name(name, holder);
    release_key(name_key(name), holder, true);
}

void cluster_registry::remove(const relay::tunnel& t, bool leaving, clock::time_point now) {
    local_.remove(t, leaving, now);
    if (t.kind == tunnel_kind::tcp) {
        release_key(port_key(t.port), t.holder, leaving);
        return;
    }
    // The name stays this relay's while another of its tunnels serves it.
    if (local_.local(tunnel_kind::http, t.name) || local_.local(tunnel_kind::tls, t.name)) return;
    release_key(name_key(t.name), t.holder, leaving);
}

bool cluster_registry::name_held(const std::string& name, clock::time_point now) const {
    if (local_.name_held(name, now)) return true;
    auto it = remote_.find(name);
    return it != remote_.end() && it->second.where;
}

const relay::remote_tunnel* cluster_registry::remote(const std::string& name) const {
    auto it = remote_.find(name);
    return it == remote_.end() || !it->second.where ? nullptr : &*it->second.where;
}

asio::awaitable<void> cluster_registry::learn(const std::string& name, bool stale) {
    if (local_.local(tunnel_kind::http, name) || local_.local(tunnel_kind::tls, name)) co_return;
    const auto now = clock::now();
    if (auto it = remote_.find(name); it != remote_.end() && !stale && it->second.fresh_until > now)
        co_return;
    if (!redis_.connected()) co_return;
    ++lookups_;
    std::vector<std::string> command{"EVAL", std::string(lookup_script), "1", name_key(name),
                                     std::string(node_prefix)};
    auto reply = co_await redis_.command(std::move(command));
    if (!reply) {
        set_degraded(true, reply.error());
        co_return;
    }
    known k;
    const auto& e = reply->elements;
    if (e.size() == 6 && e[0].text != cfg_.node_id) {
        relay::remote_tunnel where;
        where.node = e[0].text;
        where.kind = e[5].text == "3" ? tunnel_kind::tls : tunnel_kind::http;
        where.link = e[4].text;
        where.serving = e[1].text == "live" && !where.link.empty();
        k.policy_text = e[2].text;
        if (!k.policy_text.empty()) {
            auto parsed = config::load_owner_policies(k.policy_text, "tunnel policies", forbid_);
            if (parsed)
                where.policies = std::make_shared<const policy::chain>(
                    policy::build_chain(parsed->policies));
            else
                where.serving = false;  // refused here: its visitors are not let through
        }
        k.where = std::move(where);
    }
    k.fresh_until = clock::now() + (k.where && k.where->serving ? fresh_serving : fresh_other);
    if (remote_.size() >= max_known && !remote_.contains(name)) remote_.clear();
    auto& slot = remote_[name];
    const bool same = slot.where.has_value() == k.where.has_value() &&
                      (!k.where || (slot.where->node == k.where->node &&
                                    slot.where->serving == k.where->serving &&
                                    slot.where->kind == k.where->kind &&
                                    slot.where->link == k.where->link &&
                                    slot.policy_text == k.policy_text));
    if (same && slot.where && k.where) k.where->policies = slot.where->policies;
    slot = std::move(k);
    if (!same) ++changed_;
}

void cluster_registry::expire(clock::time_point now) {
    local_.expire(now);
    // An answer that a relay serves a name stays until it proves wrong (its link fails, or
    // that relay no longer has the tunnel; the next visitor learns again then) or is looked up
    // again: connections kept alive to it ask nothing more of Redis. "Nobody" and "leased"
    // answers go after a while; max_known bounds the rest. While Redis is away, what was last
    // learnt stands: nothing better can be known.
    if (degraded_) return;
    std::erase_if(remote_, [&](const auto& kv) {
        return kv.second.fresh_until + 10s < now && !(kv.second.where && kv.second.where->serving);
    });
}

relay::lease_table<std::string>::end_result cluster_registry::end_name_lease(
    const std::string& name, clock::time_point now) {
    const owner_key holder = local_.name_holder(name, now);
    const auto r = local_.end_name_lease(name, now);
    if (r == relay::lease_table<std::string>::end_result::ended)
        release_key(name_key(name), holder, true);
    return r;
}

relay::lease_table<std::string>::end_result cluster_registry::end_port_lease(
    std::uint16_t port, clock::time_point now) {
    const owner_key holder = local_.port_holder(port, now);
    const auto r = local_.end_port_lease(port, now);
    if (r == relay::lease_table<std::string>::end_result::ended && !holder.empty())
        release_key(port_key(port), holder, true);
    return r;
}

}  // namespace porthole::cluster
