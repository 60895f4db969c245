"""A relay with `threads = 2`: a second event loop listens on the HTTP address too (SO_REUSEPORT)
and serves the routes any loop may serve; a tunnel, an unknown host, and a route whose policies
keep state are handed to the first loop, once per connection, with the bytes already read.

Visitors open a new connection per request so the kernel spreads them over both loops. That the
second loop served is read from its thread's CPU time (/proc/PID/task/*/schedstat, thread
porthole-loop1)."""
import http.client
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request

import pytest

from helpers import BIN, Relay, accepts, curl, free_port, make_cert, wait_until
from test_acme import acme_relay, https_url, new_pebble
from test_cache import running_origin
from test_metrics import metrics_address
from test_admin import call
from test_policies import basic, sha_crypt_line
from test_policy_bandwidth import RATE, assert_rate, download
from test_policy_jwt import AUDIENCE, ISSUER, JwksServer, Key, jwks, signed
from test_reverse_proxy import (HOST, Visitor, get, http_url, parallel, redis_cli, site,
                                start_redis, start_relay, tally)


def loop_cpu_ns(pid):
    """Nanoseconds on a CPU of each thread of `pid`, by thread name (schedstat's first field)."""
    spent = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            name = f.read().strip()
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            spent[name] = spent.get(name, 0) + int(f.read().split()[0])
    return spent


def loop1_ns(pid):
    """The second loop's CPU time so far, once its thread is there (it starts with the relay's
    listeners already open)."""
    wait_until(lambda: "porthole-loop1" in loop_cpu_ns(pid), 10, message="the second loop")
    return loop_cpu_ns(pid)["porthole-loop1"]


def second_loop_worked(pid, before):
    """The second loop spent over a millisecond on a CPU since `before`: it served requests (an
    idle loop wakes once a second for microseconds)."""
    return loop_cpu_ns(pid)["porthole-loop1"] - before > 1_000_000


def metric(port, prefix):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix))


def config(metrics_port, *sites):
    return 'threads = 2\nmetrics_addr = "127.0.0.1:%d"\n' % metrics_port + "".join(sites)


def test_two_loops_serve_sites_tunnels_and_a_rate_limit_and_hand_unknown_hosts_to_the_first(
        group, tmp_path, backend, make_agent):
    web, tun = backend("web"), backend("tun")
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, config(
        metrics_port,
        site([HOST], [{"upstream": "[%s]" % http_url(web)}]),
        site(["limited.test"], [{"upstream": "[%s]" % http_url(web)}],
             policies='[{ type = "rate_limit", rate = "1/h", burst = 10, key = "ip" }]')))
    make_agent(relay, "http", tun.port, "--subdomain", "preview")
    before = loop1_ns(relay.pid)

    answers = [get(relay.http_port, "/s/%d" % i) for i in range(600)]
    assert tally(answers) == {"web": 600}
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    # The counters of both loops add up in /metrics (a worker publishes each second).
    wait_until(lambda: metric(metrics_port,
                              'porthole_requests_total{site="%s",code_class="2xx"}' % HOST) == 600,
               5)

    # A tunnel: every request reaches the client whichever loop accepted it.
    tunnel_host = "preview.localhost:%d" % relay.http_port
    assert tally(get(relay.http_port, "/t/%d" % i, host=tunnel_host) for i in range(40)) == \
        {"tun": 40}
    # An unknown host is the first loop's 404.
    assert {get(relay.http_port, "/u", host="nobody.localhost").status for _ in range(10)} == {404}
    # rate_limit keeps one count for the relay, not one per loop: every loop takes from the
    # first loop's table, and exactly the burst passes. No visitor is handed over for it.
    handed = metric(metrics_port, 'porthole_loop_handovers_total{what="visitor"}')
    statuses = [get(relay.http_port, "/r/%d" % i, host="limited.test").status for i in range(30)]
    assert statuses.count(200) == 10 and statuses.count(429) == 20, statuses
    assert metric(metrics_port, 'porthole_loop_handovers_total{what="visitor"}') == handed


def test_the_second_loop_carries_tunnels_over_data_connections_the_first_hands_it(
        group, tmp_path, backend, make_agent):
    """A tunnel without policies or cache is served by whichever loop accepted the visitor: the
    first loop hands a data connection of its client to the second, never the visitor to the
    first. An owner's rate limit and bandwidth limit are carried too, every loop taking from the
    first loop's objects. A tunnel the relay caches (its owner asked, with --cache) is handed to
    the first loop, which keeps it."""
    tun, guarded, limited, shaped, web = backend("tun"), backend("guarded"), \
        backend("limited"), backend("shaped"), backend("web")
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, config(
        metrics_port, site([HOST], [{"upstream": "[%s]" % http_url(web)}]))
        .replace("threads = 2\n", "threads = 2\nmax_connections_per_tunnel = 4\n") +
        '[tunnel_policy]\ncache = { memory = "1MiB", opt_in = true }\n')
    plain_agent = make_agent(relay, "http", tun.port, "--subdomain", "plain")
    make_agent(relay, "http", limited.port, "--subdomain", "limited", "--rate-limit", "20/h")
    make_agent(relay, "http", guarded.port, "--subdomain", "guarded", "--cache")
    owner_config = tmp_path / "porthole.toml"
    owner_config.write_text('server = "%s"\n[tunnels.web]\ntype = "http"\ntarget = "%d"\n'
                            'subdomain = "shaped"\n[[tunnels.web.policies]]\n'
                            'type = "bandwidth"\ndown = "100MiB/s"\n' % (relay.server, shaped.port))
    group.spawn("shaped", [BIN, "start", "--config", str(owner_config), "--all", "--json",
                           "--inspect=false"]).wait_event("ready")
    handovers = 'porthole_loop_handovers_total{what="%s"}'
    before = loop1_ns(relay.pid)

    # New connections, one after another: the tunnel's slot each held goes back to the first
    # loop when the second closes the data connection, or the fifth would be refused (503).
    plain = "plain.localhost:%d" % relay.http_port
    answers = [get(relay.http_port, "/p/%d" % i, host=plain) for i in range(300)]
    assert tally(answers) == {"tun": 300}
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    wait_until(lambda: metric(metrics_port, handovers % "data") > 0, 5)
    assert metric(metrics_port, handovers % "visitor") == 0
    # Counted under the tunnel's name whichever loop served it (a worker publishes each second).
    wait_until(lambda: metric(metrics_port, 'porthole_requests_total{tunnel="plain",'
                                            'code_class="2xx"}') == 300, 5)

    # The owner's rate limit: served by every loop, exactly the burst passes.
    limited_host = "limited.localhost:%d" % relay.http_port
    statuses = [get(relay.http_port, "/l/%d" % i, host=limited_host).status for i in range(40)]
    assert statuses.count(200) == 20 and statuses.count(429) == 20, statuses
    assert metric(metrics_port, handovers % "visitor") == 0
    assert limited.requests() == 20

    # The owner's bandwidth shaper is the relay's: served by every loop too.
    before = loop1_ns(relay.pid)
    shaped_host = "shaped.localhost:%d" % relay.http_port
    assert tally(get(relay.http_port, "/s/%d" % i, host=shaped_host)
                 for i in range(100)) == {"shaped": 100}
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    assert metric(metrics_port, handovers % "visitor") == 0

    # A cached tunnel is the first loop's (its keys name the holder its sessions know):
    # connections are handed to it.
    guarded_host = "guarded.localhost:%d" % relay.http_port
    assert tally(get(relay.http_port, "/g/%d" % i, host=guarded_host)
                 for i in range(40)) == {"guarded": 40}
    wait_until(lambda: metric(metrics_port, handovers % "visitor") > 0, 5)

    # One kept-alive connection going from a carried tunnel to a site, to the guarded tunnel
    # and back: each answered, in order, by the right backend.
    for _ in range(10):
        v = Visitor(relay.http_port, host=plain)
        try:
            got = [v.get("/1").backend]
            v.host = HOST
            got.append(v.get("/2").backend)
            v.host = guarded_host
            got.append(v.get("/3").backend)
            v.host = plain
            got.append(v.get("/4").backend)
        finally:
            v.close()
        assert got == ["tun", "web", "guarded", "tun"], got

    # The client goes: the tunnel is the first loop's 404 on every loop at once.
    plain_agent.signal(signal.SIGTERM)
    wait_until(lambda: {get(relay.http_port, "/gone", host=plain).status for _ in range(10)} ==
               {404}, 10)


def test_a_tunnel_whose_policies_keep_no_state_is_carried_by_every_loop(
        group, tmp_path, backend, make_agent):
    """IP rules, the relay's and the owner's, keep no state: the loop that accepted a visitor
    judges it with steps of its own, and the client hears of each refusal through the first
    loop, which holds its session."""
    tun = backend("tun")
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, config(metrics_port) +
                        '[[tunnel_policy.policies]]\ntype = "ip_deny"\ncidrs = ["127.0.0.3/32"]\n')
    agent = make_agent(relay, "http", tun.port, "--subdomain", "ruled", "--deny-ip", "127.0.0.2/32")
    host = "ruled.localhost:%d" % relay.http_port
    handovers = 'porthole_loop_handovers_total{what="%s"}'
    before = loop1_ns(relay.pid)
    assert tally(get(relay.http_port, "/ok/%d" % i, host=host) for i in range(200)) == {"tun": 200}
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    for source in ("127.0.0.2", "127.0.0.3"):  # the owner's rule, then the relay's
        assert {get(relay.http_port, "/no/" + source, host=host, source=source).status
                for _ in range(20)} == {403}
    assert tun.requests() == 200
    assert metric(metrics_port, handovers % "visitor") == 0
    wait_until(lambda: metric(metrics_port, handovers % "data") > 0, 5)

    # Each of the 40 refusals reached the owner's request events, whichever loop made it.
    def refusals():
        return [e for e in agent.events if e.get("event") == "request" and e.get("policy")]
    wait_until(lambda: len(refusals()) == 40, 10, message="40 refusals in the client's events")
    assert {(e["uri"], e["policy"], e["status"]) for e in refusals()} == \
        {("/no/127.0.0.2", "ip_deny", 403), ("/no/127.0.0.3", "ip_deny", 403)}


def test_the_relays_tunnel_rate_limit_and_bandwidth_are_the_relays_on_every_loop(
        group, tmp_path, backend, make_agent):
    """A rate limit and a bandwidth limit in [tunnel_policy] are built per tunnel name on each
    loop, and every loop takes the first one's objects for the name: each tunnel gets exactly
    its burst, whichever loops its visitors reach, its count survives other tunnels coming and
    going, and no visitor is handed over. A reload starts the counts again."""
    a, b = backend("a"), backend("b")
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, config(metrics_port) +
                        '[[tunnel_policy.policies]]\ntype = "rate_limit"\nrate = "1/h"\n'
                        'burst = 15\nkey = "route"\n'
                        '[[tunnel_policy.policies]]\ntype = "bandwidth"\ndown = "100MiB/s"\n')
    make_agent(relay, "http", a.port, "--subdomain", "alpha")
    handovers = 'porthole_loop_handovers_total{what="visitor"}'
    before = loop1_ns(relay.pid)

    def statuses(name, n):
        host = "%s.localhost:%d" % (name, relay.http_port)
        return [get(relay.http_port, "/r/%d" % i, host=host).status for i in range(n)]

    first = statuses("alpha", 20)
    # Another tunnel comes: each worker builds its routes again, and takes the same counts.
    make_agent(relay, "http", b.port, "--subdomain", "beta")
    later = statuses("alpha", 10)
    assert (first + later).count(200) == 15 and (first + later).count(429) == 15, (first, later)
    beta = statuses("beta", 30)
    assert beta.count(200) == 15 and beta.count(429) == 15, beta  # its own burst
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    assert metric(metrics_port, handovers) == 0
    assert a.requests() == 15 and b.requests() == 15
    relay.proc.signal(signal.SIGHUP)  # a reload: the counts start again
    wait_until(lambda: get(relay.http_port, "/again", host="alpha.localhost:%d"
                           % relay.http_port).status == 200, 10)


def test_password_checks_are_made_on_every_loop(group, tmp_path, backend, make_agent):
    """basic_auth keeps only a cache of the credentials it verified: a site route and a tunnel
    guarded by one are served by whichever loop accepted the visitor, each loop checking the
    password itself, and a wrong one is refused on every loop."""
    web, tun = backend("web"), backend("tun")
    metrics_port = free_port()
    user = sha_crypt_line("bob", "correct-horse-battery")
    relay = start_relay(group, tmp_path, config(metrics_port, site(
        [HOST], [{"upstream": "[%s]" % http_url(web)}],
        policies='[{ type = "basic_auth", users = ["%s"] }]' % user)))
    make_agent(relay, "http", tun.port, "--subdomain", "locked",
               "--basic-auth", "bob:correct-horse-battery")
    good = [("Authorization", basic("bob", "correct-horse-battery"))]
    bad = [("Authorization", basic("bob", "wrong-horse"))]
    tunnel_host = "locked.localhost:%d" % relay.http_port
    handovers = 'porthole_loop_handovers_total{what="%s"}'
    before = loop1_ns(relay.pid)
    for host, name in ((HOST, "web"), (tunnel_host, "tun")):
        assert tally(get(relay.http_port, "/ok/%d" % i, host=host, headers=good)
                     for i in range(150)) == {name: 150}
        assert {get(relay.http_port, "/no", host=host, headers=bad).status
                for _ in range(20)} == {401}
        assert {get(relay.http_port, "/none", host=host).status for _ in range(20)} == {401}
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    assert metric(metrics_port, handovers % "visitor") == 0
    assert web.requests() == 150 and tun.requests() == 150


def test_jwt_with_a_jwks_url_is_checked_on_every_loop_with_the_keys_the_first_fetched(
        group, tmp_path, backend):
    """A jwks_url is fetched by the first loop alone, once per refresh; every loop checks tokens
    with the keys it brought, and with the new ones as soon as a refresh replaces them."""
    old, new = Key("EdDSA", "old"), Key("EdDSA", "new")
    server = JwksServer(jwks(old))
    try:
        web = backend("web")
        metrics_port = free_port()
        started = time.monotonic()
        relay = start_relay(group, tmp_path, config(metrics_port, site(
            [HOST], [{"upstream": "[%s]" % http_url(web)}],
            policies='[{ type = "jwt", jwks_url = "%s", jwks_refresh = "1s", issuer = "%s", '
                     'audience = "%s" }]' % (server.url, ISSUER, AUDIENCE))))

        def bearer(key):
            return [("Authorization", "Bearer " + signed(key))]

        def statuses(key, n):
            return {get(relay.http_port, "/t", headers=bearer(key)).status for _ in range(n)}

        wait_until(lambda: statuses(old, 1) == {200}, 10, message="the key set to be fetched")
        before = loop1_ns(relay.pid)
        assert tally(get(relay.http_port, "/ok/%d" % i, headers=bearer(old))
                     for i in range(150)) == {"web": 150}
        assert statuses(new, 20) == {401}
        assert second_loop_worked(relay.pid, before), "the second loop served nothing"
        assert metric(metrics_port, 'porthole_loop_handovers_total{what="visitor"}') == 0

        server.set(jwks(new))  # the issuer rotates its key
        wait_until(lambda: statuses(new, 1) == {200}, 10, message="the rotated key set")
        before = loop1_ns(relay.pid)
        assert statuses(new, 60) == {200}  # on every loop at once
        assert statuses(old, 20) == {401}
        assert second_loop_worked(relay.pid, before), "the second loop served nothing"
        # One fetch a second for the relay, not one per loop (and a first one at start).
        assert server.count() <= time.monotonic() - started + 2, server.count()
        assert web.requests() == 150 + 1 + 60 + 1
    finally:
        server.close()


@pytest.fixture
def cache_origin():
    with running_origin() as server:
        yield server


def test_a_cached_site_is_served_by_every_loop_from_one_cache(group, tmp_path, cache_origin):
    """A site's cache is the relay's: a response one loop stored is a hit on the other, misses
    for one URL collapse into one origin request whichever loops they reach, the counts are the
    sum of both loops', and a purge empties it for every loop. No visitor is handed over."""
    metrics_port = free_port()
    sock = tmp_path / "admin.sock"
    relay = start_relay(group, tmp_path, 'admin_socket = "%s"\n' % sock + config(
        metrics_port,
        site([HOST], [{"upstream": '["http://127.0.0.1:%d"]' % cache_origin.port}]) +
        'cache = { memory = "16MiB" }\n'))
    wait_until(lambda: sock.exists(), 10)
    handovers = 'porthole_loop_handovers_total{what="visitor"}'

    # Stored by whichever loop missed; every later request is a hit, on both loops.
    before = loop1_ns(relay.pid)
    answers = [get(relay.http_port, "/a?cc=max-age=60") for _ in range(200)]
    assert {a.status for a in answers} == {200} and len({a.body for a in answers}) == 1
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    assert cache_origin.counts["/a"] == 1
    assert sum(a.header("Cache-Status").startswith("porthole; hit") for a in answers) == 199

    # 60 visitors at once, on new connections over both loops, miss one slow URL: one fetch.
    path = "/slow?cc=max-age=60&delay=1"
    answers = parallel(60, lambda _: get(relay.http_port, path, timeout=15))
    assert {a.status for a in answers} == {200} and len({a.body for a in answers}) == 1
    assert cache_origin.counts["/slow"] == 1

    # One loop's counts and the other's, in one cache: the waiters were answered by the hit.
    stats = call(sock, "GET", "/api/cache").json()["caches"][0]
    assert (stats["hits"], stats["misses"], stats["stores"]) == (199 + 59, 2, 2), stats
    assert stats["collapsed"] >= 1, stats
    assert metric(metrics_port, 'porthole_cache_requests_total{cache="%s",result="hit"}'
                  % HOST) == stats["hits"]

    # A purge through the first loop empties it for both.
    subprocess.run([BIN, "admin", "--socket", str(sock), "cache", "purge",
                    "http://%s/a?cc=max-age=60" % HOST], check=True, capture_output=True)
    answers = [get(relay.http_port, "/a?cc=max-age=60") for _ in range(40)]
    assert cache_origin.counts["/a"] == 2
    assert metric(metrics_port, handovers) == 0


def test_every_loops_counts_and_events_are_in_metrics_and_the_admin_api_at_once(
        group, tmp_path):
    """A worker's counters are asked for at each scrape, and its recent events are the first
    loop's too: nothing waits for a worker's once-a-second copy."""
    closed = free_port()  # nothing listens: each request is the relay's 502, an error event
    metrics_port = free_port()
    sock = tmp_path / "admin.sock"
    relay = start_relay(group, tmp_path, 'admin_socket = "%s"\n' % sock + config(
        metrics_port, site([HOST], [{"upstream": '["http://127.0.0.1:%d"]' % closed,
                                  "max_fails": "0"}])))
    wait_until(lambda: sock.exists(), 10)
    before = loop1_ns(relay.pid)
    for i in range(40):
        assert get(relay.http_port, "/down/%d" % i).status == 502
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    assert metric(metrics_port,
                  'porthole_requests_total{site="%s",code_class="5xx"}' % HOST) == 40
    events = call(sock, "GET", "/api/recent").json()["events"]
    assert sorted(e["path"] for e in events) == sorted("/down/%d" % i for i in range(40))
    assert {(e["kind"], e["reason"], e["status"]) for e in events} == {("error", "connect", 502)}
    assert sorted(e["seq"] for e in events) == list(range(1, 41))
    assert [e["path"] for e in events] == ["/down/%d" % i for i in range(39, -1, -1)]


def loops_of(pid):
    return sorted(n for n in loop_cpu_ns(pid) if n.startswith("porthole-loop"))


class PinnedRelay(Relay):
    """A relay started on CPU 0 only (taskset): its affinity mask holds one core."""

    @property
    def args(self):
        return ["taskset", "-c", "0"] + super().args


def test_the_relay_runs_one_event_loop_per_core_it_may_use_by_default(group, backend):
    """No `threads` set: as many loops as CPUs in the relay's affinity mask (the first, plus
    porthole-loop1... for the others); pinned to one CPU, one loop."""
    cores = len(os.sched_getaffinity(0))
    relay = group.relay()
    assert get(relay.http_port, "/", host="nobody.localhost").status == 404  # started
    assert loops_of(relay.pid) == sorted("porthole-loop%d" % i for i in range(1, cores))
    web = backend("web")
    pinned = PinnedRelay(group)
    assert get(pinned.http_port, "/", host="nobody.localhost").status == 404
    assert loops_of(pinned.pid) == []
    # porthole proxy too.
    proxy = group.spawn("proxy", [BIN, "proxy", "--listen", "127.0.0.1:0", "--json",
                                  "http://127.0.0.1:%d" % web.port])
    line = wait_until(lambda: next((l for l in proxy.lines if '"listening"' in l), None), 10)
    port = int(json.loads(line)["http"].rsplit(":", 1)[1])
    assert get(port, "/x").backend == "web"
    assert loops_of(proxy.pid) == sorted("porthole-loop%d" % i for i in range(1, cores))


def test_a_reload_reaches_the_second_loop_and_sigterm_stops_both(group, tmp_path, backend):
    a, b = backend("a"), backend("b")
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, config(
        metrics_port, site([HOST], [{"upstream": "[%s]" % http_url(a)}])))
    assert tally(get(relay.http_port, "/%d" % i) for i in range(40)) == {"a": 40}
    # Kept-alive connections opened before the reload, on either loop, use the new table after.
    kept = [Visitor(relay.http_port) for _ in range(10)]
    assert {v.get("/before").backend for v in kept} == {"a"}
    (tmp_path / "relay.toml").write_text(config(
        metrics_port, site([HOST], [{"upstream": "[%s]" % http_url(b)}])))
    relay.proc.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in relay.proc.stderr_text(), 10)
    # Posted to the second loop right after the first applied it.
    wait_until(lambda: tally(get(relay.http_port, "/%d" % i) for i in range(40)) == {"b": 40}, 5)
    assert {v.get("/after").backend for v in kept} == {"b"}
    for v in kept:
        v.close()

    start = time.monotonic()
    relay.proc.signal(signal.SIGTERM)
    assert relay.proc.wait_exit(15) == 0
    assert time.monotonic() - start < 5


def test_a_bandwidth_budget_is_one_for_the_relay_whichever_loops_its_visitors_reach(
        group, tmp_path, origin):
    """Eight downloads at once, on new connections spread over both loops, share one budget of
    256 KiB/s: together they take as long as the budget says, not half as long as two loops'
    budgets would. No visitor is handed over."""
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, config(metrics_port, site(
        [HOST], [{"upstream": '["http://127.0.0.1:%d"]' % origin.port}],
        policies='[{ type = "bandwidth", down = "256KiB/s" }]')))
    size = RATE // 2
    before = loop1_ns(relay.pid)
    start = time.monotonic()
    results = parallel(8, lambda _: download(relay.http_port, size))
    elapsed = time.monotonic() - start
    assert all(len(body) == size for body, _ in results)
    assert second_loop_worked(relay.pid, before), "the second loop served nothing"
    assert_rate(8 * size, elapsed, RATE, "eight downloads over two loops")
    assert metric(metrics_port, 'porthole_loop_handovers_total{what="visitor"}') == 0


# A route with a tunnel: member is the first loop's, which holds the sessions.
HELD = '["tunnel:held"]'


def test_a_kept_alive_connection_moves_to_the_first_loop_for_a_route_only_it_serves(
        group, tmp_path, backend, make_agent):
    """One connection: requests for a route any loop serves, then for one whose member is a
    tunnel, then the first again. Wherever it was accepted, each is answered, in order, on the
    one connection."""
    web, held = backend("web"), backend("held")
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, config(metrics_port, site([HOST], [
        {"path": '"/held"', "upstream": HELD},
        {"upstream": "[%s]" % http_url(web)}])))
    make_agent(relay, "http", held.port, "--subdomain", "held")
    for _ in range(20):  # about half of these connections land on the second loop
        v = Visitor(relay.http_port)
        try:
            got = [v.get(p).backend for p in ("/a", "/held/x", "/b", "/held/y")]
        finally:
            v.close()
        assert got == ["web", "held", "web", "held"], got
    assert metric(metrics_port, 'porthole_loop_handovers_total{what="visitor"}') > 0


def test_https_sites_are_terminated_on_both_loops_and_other_names_reach_the_first(
        group, tmp_path, backend, make_agent):
    web, tun = backend("web"), backend("tun")
    cert, key = make_cert(tmp_path, HOST)
    https_port = free_port()
    path = tmp_path / "relay.toml"
    path.write_text(config(free_port(), site([HOST], [
        {"path": '"/held"', "upstream": '["tunnel:preview"]'},
        {"upstream": "[%s]" % http_url(web)}]))
        .replace("threads = 2\n", 'threads = 2\nhttps_addr = "127.0.0.1:%d"\n'
                 'tls_certificates = [{ cert = "%s", key = "%s" }]\n' % (https_port, cert, key)))
    relay = group.relay("--config", str(path))
    make_agent(relay, "http", tun.port, "--subdomain", "preview")
    verified = ssl.create_default_context(cafile=str(cert))

    def https_get(paths, host=HOST, context=verified):
        conn = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=5, context=context)
        try:
            out = []
            for p in paths:
                conn.request("GET", p, headers={"Host": host})
                r = conn.getresponse()
                out.append((r.status, r.getheader("X-Backend")))
                r.read()
            return out
        finally:
            conn.close()

    # SNI names the host while the connection goes to 127.0.0.1.
    def wrap_for(host, context):
        original = context.wrap_socket

        def wrap(sock, *a, **kw):
            kw["server_hostname"] = host
            return original(sock, *a, **kw)
        context.wrap_socket = wrap
        return context

    wrap_for(HOST, verified)
    before = loop1_ns(relay.pid)
    for i in range(200):
        assert https_get(["/s/%d" % i]) == [(200, "web")]
    assert second_loop_worked(relay.pid, before), "the second loop did no TLS"
    # A kept-alive TLS connection whose second request is the first loop's: handed over with its
    # TLS state, then answered there.
    for _ in range(10):
        assert https_get(["/a", "/held/1", "/b"]) == [(200, "web"), (200, "tun"), (200, "web")]
    # Another name (a tunnel) goes to the first loop before its handshake.
    unverified = wrap_for("preview.localhost", ssl._create_unverified_context())
    for i in range(20):
        assert https_get(["/t/%d" % i], host="preview.localhost", context=unverified) == \
            [(200, "tun")]


def test_connections_per_address_are_counted_over_both_loops(group, tmp_path, backend):
    web = backend("web")
    relay = start_relay(group, tmp_path, "max_connections_per_ip = 4\n" + config(
        free_port(), site([HOST], [{"upstream": "[%s]" % http_url(web)}])))
    visitors = [Visitor(relay.http_port) for _ in range(10)]
    try:
        statuses = sorted(v.get("/").status for v in visitors)
        # Whichever loop each connection landed on, four in all are let in.
        assert statuses == [200] * 4 + [429] * 6, statuses
    finally:
        for v in visitors:
            v.close()


def test_porthole_proxy_threads_on_any_free_port(group, backend):
    """--listen with port 0: the second loop listens on the port the first one got."""
    web = backend("web")
    p = group.spawn("proxy", [BIN, "proxy", "--threads", "2", "--listen", "127.0.0.1:0", "--json",
                              "http://127.0.0.1:%d" % web.port])
    line = wait_until(lambda: next((l for l in p.lines if '"listening"' in l), None), 10)
    port = int(json.loads(line)["http"].rsplit(":", 1)[1])
    before = loop1_ns(p.pid)
    assert tally(get(port, "/%d" % i) for i in range(400)) == {"web": 400}
    assert second_loop_worked(p.pid, before), "the second loop served nothing"


def test_every_loop_serves_https_with_an_issued_acme_certificate(group, origin, tmp_path):
    """Once a name has its certificate, the loop that accepted a visitor finishes the handshake
    itself: no connection is handed to the first loop, and the second loop serves its share."""
    pebble = new_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("http-01",), top_lines=["threads = 2"])
    group.agent(relay, "http", origin.port, "--subdomain", "app")
    root = pebble.root(tmp_path / "root.pem")
    assert curl(https_url(relay, "app") + "/", "--cacert", root).status == 200
    handed = 'porthole_loop_handovers_total{what="visitor"} '

    def visitors_handed():
        text = curl("http://%s/metrics" % metrics_address(relay)).text
        return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(handed))

    before, cpu_before = visitors_handed(), loop1_ns(relay.proc.pid)
    for _ in range(40):  # a new connection, and so a new handshake, each
        r = curl(https_url(relay, "app") + "/", "--cacert", root)
        assert r.status == 200 and r.body == b"hello from origin\n", r
    assert second_loop_worked(relay.proc.pid, cpu_before), "the second loop served nothing"
    assert visitors_handed() == before
    assert pebble.orders() == 1


def test_every_loop_pumps_tcp_tunnels_and_tcp_sites_the_first_loop_opens(
        group, tmp_path, make_agent):
    """A TCP tunnel's visitor and a [[tcp_sites]] visitor are accepted and connected by the first
    loop, which hands both ends to the loops in turn to carry the bytes. What it holds for each
    connection (the tunnel's slot, the backend's count) comes back to it when the pump ends."""
    _, tunneled = start_redis(group, tmp_path, "redis-tunneled")
    _, behind_site = start_redis(group, tmp_path, "redis-site")
    sock = tmp_path / "admin.sock"
    metrics_port, site_port = free_port(), free_port()
    relay = start_relay(group, tmp_path, config(metrics_port).replace(
        "threads = 2\n", 'threads = 2\nmax_connections_per_tunnel = 4\nadmin_socket = "%s"\n'
        % sock) + '[[tcp_sites]]\nlisten = "127.0.0.1:%d"\nupstream = ["tcp://127.0.0.1:%d"]\n'
        % (site_port, behind_site))
    agent = make_agent(relay, "tcp", tunneled)
    tunnel_port = int(agent.ready["url"].rsplit(":", 1)[1])
    wait_until(lambda: accepts(site_port) and sock.exists(), 10)
    before = loop1_ns(relay.pid)

    # One connection per command, one after another: with four connections allowed per tunnel,
    # a slot not given back by the loop that pumped would refuse the fifth.
    value = "v" * 100_000
    for i in range(60):
        for port in (tunnel_port, site_port):
            assert redis_cli(port, "set", "k%d" % i, value) == "OK"
            assert redis_cli(port, "strlen", "k%d" % i) == str(len(value))
    assert second_loop_worked(relay.pid, before), "the second loop pumped nothing"
    # The loops take turns: half of the 240 connections went to the second loop.
    wait_until(lambda: metric(metrics_port, 'porthole_loop_handovers_total{what="pump"}') == 120,
               5)
    assert metric(metrics_port, 'porthole_loop_handovers_total{what="visitor"}') == 0

    def open_counts():
        tunnels = call(sock, "GET", "/api/tunnels").json()["tunnels"]
        sites = call(sock, "GET", "/api/sites").json()["tcp_sites"]
        return ([t["open_connections"] for t in tunnels],
                [m["active"] for s in sites for m in s["members"]])
    wait_until(lambda: open_counts() == ([0], [0]), 5, message="every slot given back")
    # Counted as carried bytes whichever loop pumped them.
    wait_until(lambda: metric(metrics_port, 'porthole_bytes_total{direction="in"}') >
               2 * 60 * 100_000, 5)


def test_every_loop_passes_tls_tunnels_through(group, tmp_path, make_agent):
    """A ClientHello naming a TLS tunnel is passed through by the loop that accepted it, over a
    data connection the first loop hands it: no visitor is handed to the first loop."""
    cert, key = make_cert(tmp_path, "sealed.localhost")
    service_port = free_port()
    group.spawn("s_server", ["openssl", "s_server", "-accept", "127.0.0.1:%d" % service_port,
                             "-cert", str(cert), "-key", str(key), "-www", "-quiet"])
    wait_until(lambda: accepts(service_port), 10, message="openssl s_server did not start")
    https_port, metrics_port = free_port(), free_port()
    relay = start_relay(group, tmp_path, config(metrics_port).replace(
        "threads = 2\n", 'threads = 2\nhttps_addr = "127.0.0.1:%d"\n' % https_port))
    make_agent(relay, "tls", service_port, "--subdomain", "sealed")
    handovers = 'porthole_loop_handovers_total{what="%s"}'
    before = loop1_ns(relay.pid)
    for _ in range(60):  # a connection each: the kernel spreads them over both loops
        r = curl("https://sealed.localhost:%d/" % https_port, "--cacert", str(cert))
        assert r.status == 200 and b"s_server" in r.body, r
    assert second_loop_worked(relay.pid, before), "the second loop passed nothing through"
    assert metric(metrics_port, handovers % "visitor") == 0
    wait_until(lambda: metric(metrics_port, handovers % "data") > 0, 5)
