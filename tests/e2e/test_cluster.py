"""A cluster of relays (README "Several relays"): three relays share one redis-server on loopback.
Every tunnel is reached through every relay, carried over the inter-relay link to the relay that
holds it; a name is never held through two relays at once; a client whose relay is killed comes
back through another and is served again at every relay; the link refuses a peer without the
cluster secret."""
import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
import websockets

from origin import pattern_sha256
from helpers import BIN, Relay, make_cert, accepts, curl, free_port, free_port_range, wait_until

TOKEN = "cluster-test-token-0123456789abcdef"


@pytest.fixture
def redis(group, tmp_path):
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.fail("redis-server/redis-cli not installed (run scripts/install-deps)")

    class Redis:
        def __init__(self):
            self.port = free_port()
            self.dir = tmp_path / "redis"
            self.dir.mkdir()
            self.proc = None
            self.start()

        def start(self):
            self.proc = group.spawn("redis", [
                "redis-server", "--port", self.port, "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"])
            wait_until(lambda: accepts(self.port) or not self.proc.alive(), 10)
            assert self.proc.alive(), self.proc.describe()

        def cli(self, *args):
            out = subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                                 capture_output=True, text=True, timeout=10)
            return out.stdout.strip()

        def kill(self):
            self.proc.signal(signal.SIGKILL)
            self.proc.wait_exit()

    return Redis()


class ClusterRelay(Relay):
    """A relay on an address of its own (127.0.0.N): relays of a cluster listen on the same
    TCP tunnel ports, as on machines of their own."""

    def __init__(self, group, host, tcp_ports, extra):
        self.host = host
        super().__init__(group, extra=extra, tcp_ports=tcp_ports)

    @property
    def args(self):
        return [BIN, "server", "--domain", self.domain,
                "--http-addr", "%s:%d" % (self.host, self.http_port),
                "--control-addr", "%s:%d" % (self.host, self.control_port),
                "--tcp-ports", "%d-%d" % (self.tcp_low, self.tcp_high)] + self.extra

    @property
    def server(self):
        return "%s:%d" % (self.host, self.control_port)

    def wait_listening(self, timeout=10):
        wait_until(lambda: not self.proc.alive() or (accepts(self.control_port, self.host)
                                                     and accepts(self.http_port, self.host)),
                   timeout, message="relay listens")
        assert self.proc.alive(), self.proc.describe()


@pytest.fixture
def cluster(group, tmp_path, redis):
    """cluster(n) -> n relays of one cluster, each with its own config file."""
    secret = tmp_path / "cluster.key"
    secret.write_text(os.urandom(32).hex() + "\n")
    secret.chmod(0o600)
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    made = []
    tcp_range = free_port_range()  # the same on every relay, as a cluster's config has it

    def make(n=3, secret_file=secret, https=False, extra_config=""):
        relays = []
        for i in range(n):
            node = "relay-%s" % "abcdefgh"[len(made) + i]
            link, metrics = free_port(), free_port()
            config = tmp_path / ("%s.toml" % node)
            config.write_text(
                'tokens_file = "%s"\nlease_grace = 30\nmetrics_addr = "127.0.0.1:%d"\n'
                'cluster = { redis = "redis://127.0.0.1:%d/0", node_id = "%s", '
                'advertise = "127.0.0.1:%d", secret_file = "%s" }\n'
                % (tokens, metrics, redis.port, node, link, secret_file) + extra_config)
            host = "127.0.0.%d" % (len(made) + i + 1)
            admin_dir = tmp_path / ("%s-admin" % node)
            admin_dir.mkdir()
            extra = ["--config", str(config), "--admin-socket", str(admin_dir / "admin.sock")]
            https_port = free_port() if https else None
            if https:
                extra += ["--https-addr", "%s:%d" % (host, https_port)]
            r = ClusterRelay(group, host, tcp_range, extra)
            r.https_port = https_port
            r.admin_socket = admin_dir / "admin.sock"
            r.node, r.link_port, r.config, r.metrics_port = node, link, config, metrics
            wait_until(lambda: accepts(link), 10, message="%s's link listens" % node)
            relays.append(r)
        made.extend(relays)
        return relays

    return make


def get(relay, name, path="/", timeout=10, *args):
    """GET through one relay, at its own address (curl's --resolve would say 127.0.0.1)."""
    return curl("http://%s.localhost:%d%s" % (name, relay.http_port, path), "--connect-to",
                "::%s:%d" % (relay.host, relay.http_port), *args, timeout=timeout)


def served_everywhere(relays, name, status=200):
    def ok():
        return all(get(r, name).status == status for r in relays)
    wait_until(ok, 10, message="%s answers %d at every relay" % (name, status))


def test_every_tunnel_is_reached_through_every_relay(group, cluster, origin, redis):
    relays = cluster(3)
    agents = []
    for i, r in enumerate(relays):
        agents.append(group.agent(r, "http", origin.server_port, "--subdomain", "app%d" % i,
                                  token=TOKEN))
    for i in range(3):
        served_everywhere(relays, "app%d" % i)
    # The registry in Redis names the holding relay, and a digest, never the token.
    for i, r in enumerate(relays):
        assert redis.cli("HGET", "porthole:name:app%d" % i, "node") == r.node
        assert TOKEN not in redis.cli("HGETALL", "porthole:name:app%d" % i)
    # The request reached the origin through the link with the visitor's own head intact.
    r = get(relays[2], "app0", "/headers")
    assert r.status == 200, r
    assert r.json()["headers"]["host"] == "app0.localhost:%d" % relays[2].http_port
    # A name nobody holds is a 404 at every relay.
    for r in relays:
        assert get(r, "nobody").status == 404
    # The hops are counted at both ends.
    out = metric(relays[2], 'porthole_cluster_carried_total{direction="out"}')
    assert out and float(out.split()[-1]) >= 2, out
    inbound = metric(relays[0], 'porthole_cluster_carried_total{direction="in"}')
    assert inbound and float(inbound.split()[-1]) >= 2, inbound
    assert metric(relays[0], "porthole_cluster_degraded").endswith(" 0")
    # The admin API and command show the cluster as this relay sees it.
    def admin(r, *args):
        return subprocess.run([BIN, "admin", "--socket", str(r.admin_socket)] + list(args),
                              capture_output=True, text=True, timeout=10)
    wait_until(lambda: len(json.loads(admin(relays[1], "--json", "cluster").stdout)["relays"]) == 3,
               5, message="relay-b sees three relays alive")
    doc = json.loads(admin(relays[1], "--json", "cluster").stdout)
    assert doc["node"] == "relay-b" and doc["degraded"] is False
    assert sorted(x["node"] for x in doc["relays"]) == ["relay-a", "relay-b", "relay-c"]
    assert "redis://" not in doc["redis"] and str(redis.port) in doc["redis"]
    table = admin(relays[2], "cluster").stdout
    assert "RELAY" in table and "relay-a" in table and ": ok" in table, table
    assert "carried over the link: " in table


def test_a_large_body_and_a_websocket_cross_the_link(group, cluster, origin, ws_origin):
    relays = cluster(2)
    group.agent(relays[0], "http", origin.server_port, "--subdomain", "big", token=TOKEN)
    served_everywhere(relays, "big")
    r = get(relays[1], "big", "/bytes?n=5000000", 30)
    assert r.status == 200
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(5000000)
    group.agent(relays[0], "http", ws_origin, "--subdomain", "ws", token=TOKEN)
    wait_until(lambda: get(relays[1], "ws").status in (400, 426), 10)

    async def run():
        sock = socket.create_connection((relays[1].host, relays[1].http_port))
        async with websockets.connect("ws://ws.localhost/", sock=sock) as ws:
            for m in ("across the link", "x" * 100000):
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 10) == m

    asyncio.run(run())


def test_a_name_claimed_through_two_relays_at_once_has_one_owner(group, cluster, origin):
    a, b = cluster(2)
    # Two clients with different ids race for one name through two relays, many rounds.
    for round_ in range(20):
        name = "race%d" % round_
        one = group.agent(a, "http", origin.server_port, "--subdomain", name, token=TOKEN,
                          wait_ready=False)
        two = group.agent(b, "http", origin.server_port, "--subdomain", name, token=TOKEN,
                          wait_ready=False)
        got = []
        for p in (one, two):
            wait_until(lambda: p.events and p.events[-1].get("event") in ("ready", "error")
                       or not p.alive(), 15)
            got.append(p.events[-1].get("event") if p.events else "exited")
        assert sorted(got).count("ready") == 1, (name, got, one.describe(), two.describe())
        one.stop()
        two.stop()


def test_a_client_whose_relay_is_killed_is_served_again_through_another(group, cluster, origin):
    a, b, c = cluster(3)
    agent = group.agent("%s,%s" % (a.server, b.server), "http", origin.server_port,
                        "--subdomain", "moves", token=TOKEN)
    served_everywhere([a, b, c], "moves")
    a.proc.signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: get(c, "moves", timeout=3).status == 200, 15,
               message="the tunnel is served again through another relay")
    took = time.monotonic() - killed
    assert get(b, "moves").status == 200
    print("served again %.2f s after kill -9" % took)


def test_the_link_refuses_a_peer_without_the_cluster_secret(group, cluster, tmp_path, origin):
    a, = cluster(1)
    wrong = tmp_path / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")
    wrong.chmod(0o600)
    intruder, = cluster(1, secret_file=wrong)
    group.agent(a, "http", origin.server_port, "--subdomain", "guarded", token=TOKEN)
    assert get(a, "guarded").status == 200
    r = get(intruder, "guarded")
    assert r.status == 502, r
    wait_until(lambda: "cluster link: refused a connection" in a.proc.stderr_text(), 10)
    # A plain TCP peer gets nothing either.
    with socket.create_connection(("127.0.0.1", a.link_port), timeout=5) as s:  # link on 0.0.0.0
        s.sendall(b"GET / HTTP/1.1\r\nHost: guarded.localhost\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert b"HTTP/1.1" not in data


def metric(relay_obj, name):
    text = curl("http://127.0.0.1:%d/metrics" % relay_obj.metrics_port).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return line
    return None


def test_a_relay_back_from_a_redis_restart_first_waits_for_the_others_claims(
        group, cluster, origin, redis):
    a, b = cluster(2)
    group.agent(b, "http", origin.server_port, "--subdomain", "quiet", token=TOKEN)
    wait_until(lambda: get(b, "quiet").status == 200, 10, message="quiet is served at relay-b")
    redis.kill()
    wait_until(lambda: "is unreachable" in a.proc.stderr_text()
               and "is unreachable" in b.proc.stderr_text(), 10,
               message="both relays log that Redis is away")
    # relay-b cannot come back (nor claim `quiet` again) until it is let go on.
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        redis.start()
        wait_until(lambda: "is back" in a.proc.stderr_text(), 10,
                   message="relay-a logs that Redis is back")
        answers = []
        asking = threading.Thread(target=lambda: answers.append(get(a, "quiet")))
        asking.start()
        time.sleep(0.3)
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    asking.join(15)
    # The empty Redis said nobody holds `quiet`: relay-a asked again once every relay had had
    # its heartbeat, and carried the visitor to relay-b rather than answering 404.
    assert [r.status for r in answers] == [200], answers


def test_a_redis_restart_under_load_loses_no_request(group, cluster, origin, redis):
    a, b = cluster(2)
    group.agent(a, "http", origin.server_port, "--subdomain", "steady", token=TOKEN)
    served_everywhere([a, b], "steady")
    failures, count = [], [0]
    stop = threading.Event()

    def load():
        while not stop.is_set():
            for r in (a, b):
                got = get(r, "steady", timeout=5)
                count[0] += 1
                if got.status != 200:
                    failures.append((r.node, got.status, got.body[:200]))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.3)
        redis.kill()
        wait_until(lambda: "is unreachable" in a.proc.stderr_text(), 10,
                   message="relay-a logs that Redis is away")
        # Degraded: a new tunnel is taken locally all the same.
        late = group.agent(b, "http", origin.server_port, "--subdomain", "late", token=TOKEN)
        assert get(b, "late").status == 200
        time.sleep(1)
        redis.start()
        wait_until(lambda: "is back" in a.proc.stderr_text() and "is back" in b.proc.stderr_text(),
                   10, message="both relays log that Redis is back")
        # Reconciled: the registry holds both names again, each with its relay.
        wait_until(lambda: redis.cli("HGET", "porthole:name:steady", "node") == a.node
                   and redis.cli("HGET", "porthole:name:late", "node") == b.node, 10)
        served_everywhere([a, b], "late")
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join(30)
    assert count[0] > 20
    assert failures == [], failures[:5]
    assert late.alive()



def redis_ping(host, port):
    out = subprocess.run(["redis-cli", "-h", host, "-p", str(port), "PING"],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip() == "PONG"


def test_a_tcp_tunnel_is_reached_through_every_relay(group, cluster, redis):
    relays = cluster(3)
    a = relays[0]
    # The service behind the tunnel: redis itself (PING -> PONG).
    agent = group.agent("%s,%s" % (a.server, relays[1].server), "tcp", redis.port, token=TOKEN)
    port = int(agent.ready["url"].rsplit(":", 1)[1])
    assert redis.cli("HGET", "porthole:port:%d" % port, "node") == a.node
    # Every relay listens on the port within a heartbeat and carries visitors to relay-a.
    for r in relays:
        wait_until(lambda: redis_ping(r.host, port), 10,
                   message="PING through %s answered" % r.node)
    # Its relay killed, the client claims the port through the next relay; every relay left
    # serves it again.
    a.proc.signal(signal.SIGKILL)
    for r in relays[1:]:
        wait_until(lambda: redis_ping(r.host, port), 10,
                   message="PING through %s answered after the failover" % r.node)
    assert redis.cli("HGET", "porthole:port:%d" % port, "node") == relays[1].node


def test_a_name_taken_twice_while_redis_was_away_goes_to_the_older_tunnel(group, cluster, origin,
                                                                           redis):
    a, b = cluster(2)
    redis.kill()
    first = group.agent(a, "http", origin.server_port, "--subdomain", "twice", token=TOKEN)
    second = group.agent(b, "http", origin.server_port, "--subdomain", "twice", token=TOKEN)
    for r in (a, b):  # both took it locally, degraded
        wait_until(lambda: "is unreachable" in r.proc.stderr_text(), 5,
                   message="%s logs that Redis is away" % r.node)
    redis.start()
    wait_until(lambda: redis.cli("HGET", "porthole:name:twice", "node") == a.node, 10,
               message="the older tunnel's relay holds the name in Redis")
    wait_until(lambda: "another relay of the cluster holds its name" in b.proc.stderr_text(), 10,
               message="relay-b ends the session that lost the name")
    served_everywhere([a, b], "twice")
    # The client that lost it is told why when it asks again.
    wait_until(lambda: "in use by another client" in second.stdout_text() + second.stderr_text(),
               15, message="the losing client hears why")
    assert first.alive()


def test_a_tls_passthrough_tunnel_is_reached_through_every_relay(group, cluster, tmp_path):
    cert, key = make_cert(tmp_path, "svc.localhost")
    service_port = free_port()
    group.spawn("s_server", ["openssl", "s_server", "-accept", "127.0.0.1:%d" % service_port,
                             "-cert", str(cert), "-key", str(key), "-www", "-quiet"])
    wait_until(lambda: accepts(service_port), 10, message="openssl s_server did not start")
    relays = cluster(2, https=True)
    group.agent(relays[0], "tls", service_port, "--subdomain", "svc", token=TOKEN)
    for r in relays:
        # The visitor verifies the service's own certificate: neither relay decrypted.
        got = curl("https://svc.localhost:%d/" % r.https_port, "--cacert", str(cert),
                   "--connect-to", "::%s:%d" % (r.host, r.https_port))
        assert got.status == 200 and b"s_server" in got.body, (r.node, got)


def test_changes_are_announced_on_the_channel_and_heard_by_every_relay(group, cluster, origin,
                                                                       redis):
    a, b = cluster(2)
    heard = group.spawn("subscriber", ["redis-cli", "-p", str(redis.port), "--raw", "SUBSCRIBE",
                                       "porthole:events"])
    wait_until(lambda: "porthole:events" in heard.stdout_text(), 10,
               message="redis-cli subscribed")
    agent = group.agent(b, "http", origin.server_port, "--subdomain", "heard", token=TOKEN)
    wait_until(lambda: "claim porthole:name:heard relay-b" in heard.stdout_text(), 10,
               message="the claim is announced")
    # relay-a learns the name, and keeps the answer while relay-b serves it.
    served_everywhere([a, b], "heard")
    # The client stops cleanly: its name is released and announced, and relay-a, which heard
    # it, forgets where it was served.
    agent.stop()
    wait_until(lambda: "release porthole:name:heard relay-b" in heard.stdout_text(), 10,
               message="the release is announced")
    wait_until(lambda: float(metric(a, "porthole_cluster_events_total").split()[-1]) >= 2, 10,
               message="relay-a heard the claim and the release")
    assert get(a, "heard").status == 404
    # The same name through relay-a now: relay-b hears it and sends its visitors there.
    group.agent(a, "http", origin.server_port, "--subdomain", "heard", token=TOKEN)
    wait_until(lambda: "claim porthole:name:heard relay-a" in heard.stdout_text(), 10)
    served_everywhere([a, b], "heard")
    # A TCP tunnel's port is announced with its relay's list, and the other relay listens on it.
    group.agent(a, "tcp", origin.server_port, token=TOKEN)
    wait_until(lambda: "ports relay-a" in heard.stdout_text(), 10,
               message="relay-a's new port list is announced")
    assert "token" not in heard.stdout_text().replace("porthole:events", "")


def test_per_token_limits_count_every_relay(group, cluster, origin, redis):
    a, b, c = cluster(3, extra_config="max_tunnels_per_token = 2\n")
    one = group.agent(a, "http", origin.server_port, "--subdomain", "first", token=TOKEN)
    group.agent(b, "http", origin.server_port, "--subdomain", "second", token=TOKEN)
    # relay-c holds none of this token's tunnels; the other two hold the limit.
    third = group.agent(c, "http", origin.server_port, "--subdomain", "third", token=TOKEN,
                        wait_ready=False)
    assert third.wait_exit(15) != 0
    assert "at most 2 tunnels across the cluster's relays; 0 are here and 2 on the others" in \
        third.stderr_text(), third.describe()
    # Counts are digests in Redis, never the token.
    assert TOKEN not in redis.cli("HGETALL", "porthole:tokens:relay-a")
    # One tunnel goes: its relay's count drops at the next heartbeat, and a tunnel fits again.
    one.stop()
    def fits():
        p = group.agent(c, "http", origin.server_port, "--subdomain", "third", token=TOKEN,
                        wait_ready=False)
        wait_until(lambda: p.events and p.events[-1].get("event") in ("ready", "error")
                   or not p.alive(), 15)
        return p.alive() and p.events[-1].get("event") == "ready"
    wait_until(fits, 10, message="a tunnel fits once relay-a's count dropped")


def test_per_token_session_limit_counts_every_relay(group, cluster, origin):
    a, b, c = cluster(3, extra_config="max_sessions_per_token = 2\n")
    group.agent(a, "http", origin.server_port, token=TOKEN)
    group.agent(b, "http", origin.server_port, token=TOKEN)
    third = group.agent(c, "http", origin.server_port, token=TOKEN, wait_ready=False)
    assert third.wait_exit(15) != 0
    assert ("this token already has 0 clients connected to this relay and 2 to the cluster's "
            "other relays (max_sessions_per_token)") in third.stderr_text(), third.describe()


def test_a_relay_whose_config_differs_is_logged_and_shown(group, cluster, origin):
    a, b = cluster(2)
    c, = cluster(1, extra_config="max_tunnels_per_token = 7\n")
    wait_until(lambda: "relay relay-c has another config than this one" in a.proc.stderr_text(),
               10, message="relay-a warns of relay-c's config")
    out = subprocess.run([BIN, "admin", "--socket", str(a.admin_socket), "--json", "cluster"],
                         capture_output=True, text=True, timeout=10).stdout
    seen = {r["node"]: r["config"] for r in json.loads(out)["relays"]}
    assert seen == {"relay-a": "same", "relay-b": "same", "relay-c": "differs"}, seen
    assert "relay relay-b has another config" not in a.proc.stderr_text()



def test_a_relay_whose_site_policies_differ_is_shown_as_differing(group, cluster, origin):
    """The digest covers the sites' policies as their tables are written, whatever the order of
    their keys: a relay that guards a site otherwise stands out."""
    site = ('[[sites]]\nhosts = ["app.test"]\n[[sites.routes]]\nupstream = ["http://127.0.0.1:%d"]\n'
            '[[sites.policies]]\n' % origin.server_port)
    a, = cluster(1, extra_config=site + 'type = "ip_allow"\ncidrs = ["10.0.0.0/8"]\n')
    cluster(1, extra_config=site + 'cidrs = ["10.0.0.0/8"]\ntype = "ip_allow"\n')
    cluster(1, extra_config=site + 'type = "ip_allow"\ncidrs = ["0.0.0.0/0"]\n')
    wait_until(lambda: "relay relay-c has another config than this one" in a.proc.stderr_text(),
               10, message="relay-a warns of relay-c's policies")

    def seen():
        out = subprocess.run([BIN, "admin", "--socket", str(a.admin_socket), "--json", "cluster"],
                             capture_output=True, text=True, timeout=10).stdout
        return {r["node"]: r["config"] for r in json.loads(out)["relays"]}
    wait_until(lambda: len(seen()) == 3, 10)
    assert seen() == {"relay-a": "same", "relay-b": "same", "relay-c": "differs"}, seen()
    assert "relay relay-b has another config" not in a.proc.stderr_text()


def test_a_tunnel_group_whose_members_are_on_two_relays_keeps_both(group, cluster, backend,
                                                                   redis):
    """Two clients of one group, each through another relay: neither ends the other's session,
    the name stays held, and visitors at a relay without a member are spread over both. When
    the relay the name's key names loses its client, the other relay takes the key over."""
    a, b, c = cluster(3)
    one, two = backend("one"), backend("two")
    first = group.agent(a, "http", one.port, "--subdomain", "pool", "--group", "pool-key",
                        token=TOKEN)
    served_everywhere([a, b, c], "pool")
    second = group.agent(b, "http", two.port, "--subdomain", "pool", "--group", "pool-key",
                         token=TOKEN)
    # Several heartbeats: a member whose relay lost the name would have its session ended.
    deadline = time.monotonic() + 4
    answered = set()
    while time.monotonic() < deadline:
        for r in (a, b, c):
            got = get(r, "pool", "/who")
            assert got.status == 200, got
            answered.add(got.text.split(" ", 1)[0])
    assert first.alive() and second.alive()
    # One session each, all along.
    for relay in (a, b):
        assert "another relay of the cluster holds" not in relay.proc.stderr_text(), \
            relay.proc.stderr_text()
    assert [e["event"] for e in first.events + second.events].count("ready") == 2, \
        first.events + second.events
    assert answered == {"one", "two"}, answered
    # Redis names relay-a, and relay-b beside it.
    assert redis.cli("HGET", "porthole:name:pool", "node") == "relay-a"
    assert redis.cli("ZRANGE", "porthole:members:porthole:name:pool", "0", "-1") == "relay-b"
    # relay-c spreads its visitors over both relays.
    spread = [get(c, "pool", "/spread/%d" % i).text.split(" ", 1)[0] for i in range(20)]
    assert spread.count("one") >= 5 and spread.count("two") >= 5, spread

    first.signal(signal.SIGTERM)
    assert first.wait_exit(10) == 0
    wait_until(lambda: redis.cli("HGET", "porthole:name:pool", "node") == "relay-b", 10,
               message="relay-b takes the name over")
    wait_until(lambda: all(get(r, "pool", "/after").text.startswith("two ") for r in (a, b, c)),
               10, message="every relay reaches the member left")
    assert second.alive()
