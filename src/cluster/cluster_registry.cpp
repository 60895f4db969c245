#include "cluster/cluster_registry.hpp"

#include "config/policy_config.hpp"
#include "core/sha256.hpp"
#include "core/use_tuple.hpp"
#include "policy/chain.hpp"
#include "protocol/auth.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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
// each key's tunnel kind (1 http, 2 tcp, 3 tls); then "1" for each key a tunnel group holds. A
// key is taken when absent or held by the same holder (a client reconnecting through any relay).
// A refresh does not take back a key its holder moved to another relay; a key two holders
// claimed (each through its relay while Redis was away) goes to the tunnel opened first. A
// group's key that another live relay serves stays that relay's: this one joins it in
// `porthole:members:KEY` (scored by when its membership expires) and visitors elsewhere are
// spread over both. Answers 1 (held) or 0 per key. A key that changes relay or state, or gains a
// relay, is announced on the channel of changes.
constexpr std::string_view claim_script = R"lua(
local node, ttl, refresh = ARGV[1], ARGV[2], ARGV[3] == '1'
local n = #KEYS
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local holder, policies, cache, since = ARGV[4 * i], ARGV[1 + 4 * i], ARGV[2 + 4 * i], ARGV[3 + 4 * i]
  local kind, group = ARGV[3 + 4 * n + i], ARGV[3 + 5 * n + i] == '1'
  local members = 'porthole:members:' .. key
  local h, was_node, was_state = unpack(redis.call('HMGET', key, 'holder', 'node', 'state'))
  if group and h == holder and was_node ~= node and was_state == 'live' and
     redis.call('EXISTS', 'porthole:node:' .. was_node) == 1 then
    if redis.call('ZADD', members, now + tonumber(ttl), node) == 1 then
      redis.call('PUBLISH', 'porthole:events', 'claim ' .. key .. ' ' .. node)
    end
    redis.call('PEXPIRE', members, ttl)
    out[i] = 1
  else
    local take = not h or (h == holder and (not refresh or group))
    if h and h ~= holder and refresh then
      local theirs = tonumber(redis.call('HGET', key, 'since') or '')
      take = theirs ~= nil and tonumber(since) < theirs
    end
    if take then
      if h ~= holder then redis.call('DEL', members) else redis.call('ZREM', members, node) end
      redis.call('DEL', key)
      redis.call('HSET', key, 'holder', holder, 'node', node, 'state', 'live',
                 'policies', policies, 'cache', cache, 'since', since, 'kind', kind)
      redis.call('PEXPIRE', key, ttl)
      out[i] = 1
    elseif h == holder and was_node == node then
      redis.call('HSET', key, 'state', 'live')
      redis.call('PEXPIRE', key, ttl)
      out[i] = 1
    end
    if out[i] == 1 and (was_node ~= node or was_state ~= 'live') then
      redis.call('PUBLISH', 'porthole:events', 'claim ' .. key .. ' ' .. node)
    end
    if not out[i] then
      out[i] = 0
    end
  end
end
return out
)lua";

// Gives a key up: deleted (`drop`), or kept as a lease for ARGV[4] ms; only by its holder on
// the node that holds it. A group's key passes to another live relay serving the group first;
// a relay serving a group beside the one the key names just leaves its members. KEYS[1]: the
// key. ARGV: holder digest, node, drop|lease, grace.
constexpr std::string_view release_script = R"lua(
local key, node = KEYS[1], ARGV[2]
local members = 'porthole:members:' .. key
if redis.call('HGET', key, 'holder') ~= ARGV[1] then return 0 end
if redis.call('HGET', key, 'node') ~= node then
  if redis.call('ZREM', members, node) == 0 then return 0 end
  redis.call('PUBLISH', 'porthole:events', 'release ' .. key .. ' ' .. node)
  return 1
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for _, other in ipairs(redis.call('ZRANGEBYSCORE', members, now, '+inf')) do
  if redis.call('EXISTS', 'porthole:node:' .. other) == 1 then
    redis.call('ZREM', members, other)
    redis.call('HSET', key, 'node', other, 'state', 'live')
    redis.call('PUBLISH', 'porthole:events', 'claim ' .. key .. ' ' .. other)
    return 1
  end
end
redis.call('DEL', members)
if ARGV[3] == 'drop' then
  redis.call('DEL', key)
else
  redis.call('HSET', key, 'state', 'leased')
  redis.call('PEXPIRE', key, ARGV[4])
end
redis.call('PUBLISH', 'porthole:events', 'release ' .. key .. ' ' .. node)
return 1
)lua";

// Who holds a name, and where that relay's link is (empty when the relay is gone), and the
// holder's digest; then, for a group served through other relays too, each live one and its link.
// KEYS[1]: the name's key. ARGV[1]: the prefix of node keys.
constexpr std::string_view lookup_script = R"lua(
local v = redis.call('HMGET', KEYS[1], 'node', 'state', 'policies', 'cache', 'kind', 'holder')
if not v[1] then return {} end
local link = redis.call('GET', ARGV[1] .. v[1])
local out = {v[1], v[2] or '', v[3] or '', v[4] or '', link or '', v[5] or '1', v[6] or ''}
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for _, other in ipairs(redis.call('ZRANGEBYSCORE', 'porthole:members:' .. KEYS[1], now, '+inf')) do
  local l = redis.call('GET', ARGV[1] .. other)
  if l then
    out[#out + 1] = other
    out[#out + 1] = l
  end
end
return out
)lua";

// This relay's heartbeat: its link address, its TCP tunnels' ports and its count of sessions
// and tunnels per token; and the link and ports of every relay alive, so that each relay listens
// on the others' ports too. ARGV: node, TTL in ms, advertise, ports ("20001,20002"), the digest
// of its shared config, then pairs of a token field and its count. Answers node, link, ports and
// config digest for each live relay. A change of this relay's ports is announced; a relay whose
// key expired leaves the set.
constexpr std::string_view beat_script = R"lua(
local node, ttl = ARGV[1], ARGV[2]
redis.call('SADD', 'porthole:nodes', node)
redis.call('SET', 'porthole:node:' .. node, ARGV[3], 'PX', ttl)
local ports_key = 'porthole:ports:' .. node
if redis.call('GET', ports_key) ~= ARGV[4] then
  redis.call('PUBLISH', 'porthole:events', 'ports ' .. node)
end
redis.call('SET', ports_key, ARGV[4], 'PX', ttl)
redis.call('SET', 'porthole:digest:' .. node, ARGV[5], 'PX', ttl)
local tokens_key = 'porthole:tokens:' .. node
redis.call('DEL', tokens_key)
for i = 6, #ARGV - 1, 2 do redis.call('HSET', tokens_key, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', tokens_key, ttl)
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', 'porthole:nodes')) do
  local link = redis.call('GET', 'porthole:node:' .. n)
  if link then
    out[#out + 1] = n
    out[#out + 1] = link
    out[#out + 1] = redis.call('GET', 'porthole:ports:' .. n) or ''
    out[#out + 1] = redis.call('GET', 'porthole:digest:' .. n) or ''
  else
    redis.call('SREM', 'porthole:nodes', n)
  end
end
return out
)lua";

// One more session or tunnel of a token, against its limit across the live relays. ARGV: node,
// the token's field, this relay's count with the new one, the limit, the TTL in ms. Answers -1
// and records this relay's count when within the limit (so that a relay asking next counts it),
// else the other relays' count.
constexpr std::string_view admit_script = R"lua(
local node, field = ARGV[1], ARGV[2]
local mine, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local others = 0
for _, n in ipairs(redis.call('SMEMBERS', 'porthole:nodes')) do
  if n ~= node and redis.call('EXISTS', 'porthole:node:' .. n) == 1 then
    others = others + tonumber(redis.call('HGET', 'porthole:tokens:' .. n, field) or '0')
  end
end
if others + mine > limit then return others end
redis.call('HSET', 'porthole:tokens:' .. node, field, mine)
redis.call('PEXPIRE', 'porthole:tokens:' .. node, ARGV[5])
return -1
)lua";

constexpr std::string_view events_channel = "porthole:events";

constexpr std::string_view name_prefix = "porthole:name:";
std::string name_key(const std::string& name) { return std::string(name_prefix) + name; }
std::string port_key(std::uint16_t port) { return fmt::format("porthole:port:{}", port); }
constexpr std::string_view node_prefix = "porthole:node:";

// The holder as Redis keeps it: a digest, never the token-derived key itself.
std::string holder_digest(const owner_key& holder) { return core::sha256_hex(holder); }

// The digest of what every relay must have alike, keyed with the cluster's secret: a reader of
// Redis cannot test guesses of the secrets in policies (a webhook's, a JWT's) against it.
std::string config_digest(const std::string& secret, std::string_view shared) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(shared.data()), shared.size(), md, &n);
    return protocol::to_hex(std::span<const std::uint8_t>(md, n));
}

// A token's field in a relay's counts: a digest of it, never the token's own verifier.
std::string token_field(const std::string& token_hex, relay::tunnel_registry::token_count what) {
    return holder_digest("token:" + token_hex) +
           (what == relay::tunnel_registry::token_count::tunnels ? ":t" : ":s");
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
      changed_(changed), redis_(io.get_executor(), address_of(cfg), 1s),
      events_(io.get_executor(), address_of(cfg), 1s), beat_(io) {}

void cluster_registry::set_degraded(bool on, std::string_view why) {
    if (on == degraded_) return;
    degraded_ = on;
    if (on)
        spdlog::warn("cluster: Redis at {} is unreachable ({}): serving this relay's tunnels and "
                     "taking new ones locally until it returns (degraded)",
                     redis_.address().describe(), why);
    else {
        spdlog::info("cluster: Redis at {} is back: claiming this relay's names and ports again",
                     redis_.address().describe());
        // Every other relay claims its names again at its next heartbeat: until then, Redis
        // answering that nobody holds a name is not to be believed at once.
        settled_at_ = clock::now() + beat + 250ms;
    }
}

asio::awaitable<tl::expected<void, std::string>> cluster_registry::connect() {
    next_connect_ = clock::now() + beat;
    auto r = co_await redis_.connect();
    if (!r) {
        set_degraded(true, r.error());
        co_return r;
    }
    set_degraded(false, {});
    co_await subscribe();
    co_return r;
}

asio::awaitable<void> cluster_registry::subscribe() {
    auto up = co_await events_.connect();
    if (up)
        up = co_await events_.subscribe(std::string(events_channel),
                                        [this](std::string_view m) { on_event(m); });
    if (!up) {
        if (!events_down_)  // once, not at every heartbeat that tries again
            spdlog::warn("cluster: no channel of changes ({}): other relays' tunnels are looked "
                         "up again as answers age",
                         up.error());
        events_down_ = true;
        co_return;
    }
    if (events_down_) spdlog::info("cluster: listening to the channel of changes again");
    events_down_ = false;
    // Changes may have gone by unheard: what other relays hold is looked up afresh. An answer
    // that a relay serves a name stays: it proves itself on use (a hop that relay refuses learns
    // again), and Redis, back from a restart, may not hold that relay's claim again yet.
    const auto before = remote_.size();
    std::erase_if(remote_, [](const auto& kv) {
        return !(kv.second.where && kv.second.where->serving);
    });
    if (remote_.size() != before) ++changed_;
}

// "claim KEY NODE" and "release KEY NODE" for a name's or port's key; "ports NODE" when a
// relay's TCP tunnel ports changed.
void cluster_registry::on_event(std::string_view message) {
    ++events_seen_;
    const auto first = message.find(' ');
    if (first == std::string_view::npos) return;
    const std::string_view verb = message.substr(0, first);
    std::string_view rest = message.substr(first + 1);
    if (verb == "ports") {
        if (rest != cfg_.node_id) beat_now();  // learn its ports, and listen on them, now
        return;
    }
    const auto second = rest.find(' ');
    if (second == std::string_view::npos || (verb != "claim" && verb != "release")) return;
    const std::string_view key = rest.substr(0, second);
    if (rest.substr(second + 1) == cfg_.node_id || !key.starts_with(name_prefix)) return;
    const std::string name(key.substr(name_prefix.size()));
    if (remote_.erase(name) > 0) ++changed_;  // the next visitor asks Redis
    // A name this relay serves was claimed elsewhere: its client came back through another
    // relay. The heartbeat finds out which of this relay's sessions is stale.
    if (verb == "claim" &&
        (local_.local(tunnel_kind::http, name) || local_.local(tunnel_kind::tls, name)))
        beat_now();
}

void cluster_registry::beat_now() {
    beat_soon_ = true;
    beat_.cancel();
}

asio::awaitable<void> cluster_registry::run() {
    while (!stopped_) {
        beat_soon_ = false;
        co_await heartbeat();
        if (stopped_) break;
        if (beat_soon_) continue;
        beat_.expires_after(beat);
        co_await beat_.async_wait(use_tuple);
    }
}

void cluster_registry::stop() {
    stopped_ = true;
    beat_.cancel();
    events_.close();
}

asio::awaitable<void> cluster_registry::heartbeat() {
    if (!redis_.connected()) {
        if (clock::now() < next_connect_) co_return;
        auto r = co_await connect();
        if (!r) co_return;
    } else if (!events_.connected()) {
        co_await subscribe();
    }
    std::string ports;
    local_.for_each_port([&](relay::tunnel& t) {
        if (auto s = t.owner.lock(); s && !s->closed)
            ports += (ports.empty() ? "" : ",") + std::to_string(t.port);
    });
    std::vector<std::string> beat_args{"EVAL", std::string(beat_script), "0", cfg_.node_id,
                                       millis(node_ttl), cfg_.advertise.to_string(),
                                       std::move(ports)};
    const std::string digest =
        shared_config ? config_digest(cfg_.secret, shared_config()).substr(0, 16) : "";
    beat_args.push_back(digest);
    if (token_counts)
        for (const auto& t : token_counts()) {
            if (t.tunnels > 0) {
                beat_args.push_back(token_field(t.token_hex, token_count::tunnels));
                beat_args.push_back(std::to_string(t.tunnels));
            }
            if (t.sessions > 0) {
                beat_args.push_back(token_field(t.token_hex, token_count::sessions));
                beat_args.push_back(std::to_string(t.sessions));
            }
        }
    auto nodes = co_await redis_.command(std::move(beat_args));
    if (!nodes) {
        set_degraded(true, nodes.error());
        co_return;
    }
    nodes_.clear();
    for (std::size_t i = 0; i + 3 < nodes->elements.size(); i += 4) {
        const auto& e = nodes->elements;
        const std::string& theirs = e[i + 3].text;
        nodes_.push_back({e[i].text, e[i + 1].text, e[i + 2].text, theirs.empty() || theirs == digest});
        if (nodes_.back().same_config) {
            differing_.erase(e[i].text);
        } else if (auto& warned = differing_[e[i].text]; warned != theirs) {
            warned = theirs;
            spdlog::warn("cluster: relay {} has another config than this one (tokens, sites, "
                         "domain or per-token limits; digest {} against {}): every relay of a "
                         "cluster needs the same, or visitors and clients are served differently "
                         "at each",
                         e[i].text, theirs, digest);
        }
    }
    if (on_ports) {
        // The other relays' TCP tunnel ports, where this relay holds none of its own.
        std::map<std::uint16_t, std::string> remote_ports;
        const auto& e = nodes->elements;
        for (std::size_t i = 0; i + 3 < e.size(); i += 4) {
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
    std::vector<std::string> groups;
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
        groups.push_back(t.group.empty() ? "0" : "1");
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
    command.insert(command.end(), groups.begin(), groups.end());
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
                                                                 tunnel_kind kind, bool group) {
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
                                     std::to_string(static_cast<int>(kind)),
                                     group ? "1" : "0"};
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
                                   since_of(t), t.kind, !t.group.empty());
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
                                   tunnel_kind::tcp, false);
    if (held && !*held) {
        if (!before) local_.drop_port(port, who);
        co_return false;
    }
    if (on_port_claimed) on_port_claimed(port);  // this relay listens on it for its own client now
    if (held) beat_now();  // the other relays learn the port is this relay's at once
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
        beat_now();  // its port leaves this relay's list
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
    const std::vector<std::string> lookup{"EVAL", std::string(lookup_script), "1", name_key(name),
                                          std::string(node_prefix)};
    auto reply = co_await redis_.command(lookup);
    if (reply && reply->elements.size() < 7 && clock::now() < settled_at_) {
        // Nobody holds it, says a Redis that came back moments ago: asked again once every
        // relay has beaten since.
        asio::steady_timer settle(io_);
        settle.expires_at(settled_at_);
        auto settled = settle.async_wait(use_tuple);
        co_await std::move(settled);
        if (!redis_.connected()) co_return;
        reply = co_await redis_.command(lookup);
    }
    if (!reply) {
        set_degraded(true, reply.error());
        co_return;
    }
    known k;
    const auto& e = reply->elements;
    if (e.size() >= 7 && e.size() % 2 == 1 && e[0].text != cfg_.node_id) {
        relay::remote_tunnel where;
        where.node = e[0].text;
        where.kind = e[5].text == "3" ? tunnel_kind::tls : tunnel_kind::http;
        where.link = e[4].text;
        if (!where.link.empty()) where.links.push_back(where.link);
        where.owner_cache = e[3].text == "1";
        where.holder = e[6].text;
        for (std::size_t i = 7; i + 1 < e.size(); i += 2)  // a group's other relays
            if (e[i].text != cfg_.node_id) where.links.push_back(e[i + 1].text);
        where.serving = e[1].text == "live" && !where.links.empty();
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
                                    slot.where->links == k.where->links &&
                                    slot.where->holder == k.where->holder &&
                                    slot.where->owner_cache == k.where->owner_cache &&
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

asio::awaitable<std::optional<std::uint32_t>> cluster_registry::admit_token(
    const std::string& token_hex, token_count what, std::uint32_t local_after,
    std::uint32_t limit) {
    // Redis away: this relay's own count decides (degraded, like its claims).
    if (!redis_.connected()) co_return std::nullopt;
    std::vector<std::string> command{"EVAL",
                                     std::string(admit_script),
                                     "0",
                                     cfg_.node_id,
                                     token_field(token_hex, what),
                                     std::to_string(local_after),
                                     std::to_string(limit),
                                     millis(node_ttl)};
    auto reply = co_await redis_.command(std::move(command));
    if (!reply) {
        if (redis_.connected())
            spdlog::error("cluster: Redis refused a per-token count: {}", reply.error());
        else
            set_degraded(true, reply.error());
        co_return std::nullopt;
    }
    if (reply->kind != redis_reply::type::integer || reply->integer < 0) co_return std::nullopt;
    co_return static_cast<std::uint32_t>(reply->integer);
}

}  // namespace porthole::cluster
