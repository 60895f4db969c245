"""The relay as a reverse proxy: [[sites]] from the config file route by host and path to pools of
http, https, unix and tunnel members, balanced by policy, kept healthy by active checks and
passive ejection, with retries; `porthole proxy` is the same engine with one catch-all site.

Backends are the small servers of backends.py: each answers "ID METHOD TARGET" and logs what it
served, so counts are taken where the requests land."""
import http.client
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

import backends
from helpers import BIN, accepts, free_port, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "shop.test"


# -- visitors ------------------------------------------------------------------

class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def backend(self):
        """The id of the backend that answered (its X-Backend header), None for the relay's own answers."""
        return self.header("X-Backend")

    def __repr__(self):
        return "Answer(%s, %r)" % (self.status, self.body[:200])


def send(conn, path, host, headers, method):
    h = {"Host": host}
    h.update(headers or {})
    conn.request(method, path, headers=h)
    r = conn.getresponse()
    return Answer(r.status, r.getheaders(), r.read())


def get(port, path="/", host=HOST, source=None, headers=None, timeout=5, method="GET"):
    """One request on a new connection, optionally from a chosen loopback source address."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        return send(conn, path, host, headers, method)
    finally:
        conn.close()


class Visitor:
    """One kept-alive connection to the relay."""

    def __init__(self, port, host=HOST, timeout=5):
        self.port, self.host, self.timeout = port, host, timeout
        self.conn = None

    def get(self, path="/", headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            return send(self.conn, path, self.host, headers, "GET")
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def tally(answers):
    counts = {}
    for a in answers:
        counts[a.backend] = counts.get(a.backend, 0) + 1
    return counts


def get_many(port, n, path="/t", host=HOST):
    """n GETs over one kept-alive connection; every one must be a 200."""
    v = Visitor(port, host)
    try:
        answers = [v.get("%s/%d" % (path, i)) for i in range(n)]
    finally:
        v.close()
    bad = [a for a in answers if a.status != 200]
    assert not bad, "%d of %d GETs failed, first: %r" % (len(bad), n, bad[0])
    return answers


# -- relay and backends -----------------------------------------------------------

def http_url(b):
    return '"http://127.0.0.1:%d"' % b.port


def site(hosts, routes, **settings):
    """TOML for one [[sites]] table; routes is a list of dicts of route keys (values are TOML)."""
    lines = ["[[sites]]", "hosts = [%s]" % ", ".join('"%s"' % h for h in hosts)]
    lines += ["%s = %s" % kv for kv in settings.items()]
    for r in routes:
        lines.append("[[sites.routes]]")
        lines += ["%s = %s" % kv for kv in r.items()]
    return "\n".join(lines) + "\n"


def start_relay(group, tmp_path, toml):
    path = tmp_path / "relay.toml"
    path.write_text(toml)
    return group.relay("--config", str(path))


@pytest.fixture
def proc_backend(group):
    """proc_backend(id) -> (Proc, port): a backend in a process of its own, so SIGKILL is real."""

    def make(backend_id):
        p = group.spawn("backend-" + backend_id,
                        [sys.executable, os.path.join(HERE, "backends.py"), backend_id])
        line = wait_until(lambda: next((l for l in p.lines if "listening on" in l), None)
                          or (not p.alive() and pytest.fail(p.describe())), 10)
        return p, int(line.rsplit(" ", 1)[1])

    return make


def sigkill(proc):
    proc.signal(signal.SIGKILL)
    proc.wait_exit(5)


def parallel(threads, fn):
    with ThreadPoolExecutor(threads) as pool:
        return [f.result() for f in [pool.submit(fn, i) for i in range(threads)]]


# -- 1-5: load-balancing policies -----------------------------------------------------

def test_round_robin_gives_each_of_three_backends_a_third(group, tmp_path, backend):
    bs = [backend(i) for i in "abc"]
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s]" % ", ".join(http_url(b) for b in bs), "lb_policy": '"round_robin"'}]))
    counts = tally(get_many(relay.http_port, 300))
    for b in bs:
        assert 95 <= counts.get(b.backend_id, 0) <= 105, counts
        assert b.requests() == counts[b.backend_id], (b.backend_id, b.requests(), counts)


def test_round_robin_follows_weights(group, tmp_path, backend):
    heavy, light = backend("heavy"), backend("light")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": '[{ url = %s, weight = 3 }, %s]' % (http_url(heavy), http_url(light)),
        "lb_policy": '"round_robin"'}]))
    counts = tally(get_many(relay.http_port, 400))
    assert 0.70 <= counts.get("heavy", 0) / 400 <= 0.80, counts
    assert heavy.requests() + light.requests() == 400


def test_least_conn_sends_most_requests_to_the_fast_backend(group, tmp_path, backend):
    slow, fast = backend("slow", delay=0.3), backend("fast")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s, %s]" % (http_url(slow), http_url(fast)), "lb_policy": '"least_conn"'}]))
    answers = sum(parallel(8, lambda i: get_many(relay.http_port, 12, "/w%d" % i)), [])
    counts = tally(answers)
    # round robin would give the slow one half; least_conn sees its requests pile up
    assert counts.get("fast", 0) >= 0.75 * len(answers), counts
    assert slow.requests() == counts.get("slow", 0)


def test_random_two_spreads_over_three_members(group, tmp_path, backend):
    bs = [backend(i) for i in "abc"]
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s]" % ", ".join(http_url(b) for b in bs), "lb_policy": '"random_two"'}]))
    counts = tally(get_many(relay.http_port, 300))
    for b in bs:
        assert 60 <= counts.get(b.backend_id, 0) <= 141, counts


def test_ip_hash_keeps_a_source_on_one_member_and_moves_only_a_dead_members_sources(
        group, tmp_path, proc_backend):
    procs = {i: proc_backend(i) for i in "abc"}
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s]" % ", ".join('"http://127.0.0.1:%d"' % port for _, port in procs.values()),
        "lb_policy": '"ip_hash"', "max_fails": 1, "eject_time": '"60s"'}]))
    sources = ["127.0.0.%d" % n for n in range(2, 61)]

    def members(source, n=3):
        answers = [get(relay.http_port, "/ip/%d" % i, source=source) for i in range(n)]
        assert all(a.status == 200 for a in answers), (source, answers)
        return {a.backend for a in answers}

    before = {}
    for s in sources:
        m = members(s)
        assert len(m) == 1, "%s was spread over %s" % (s, m)
        before[s] = m.pop()
    per_member = {i: sum(1 for v in before.values() if v == i) for i in "abc"}
    assert all(n >= 6 for n in per_member.values()), per_member

    sigkill(procs["b"][0])
    for s in sources:  # the first requests after the kill find b dead; every one must still succeed
        members(s, 1)
    after = {}
    for s in sources:
        m = members(s)
        assert len(m) == 1, "%s was spread over %s after b died" % (s, m)
        after[s] = m.pop()
    assert "b" not in after.values()
    stayed_wrongly_moved = [s for s in sources if before[s] != "b" and after[s] != before[s]]
    assert not stayed_wrongly_moved, "sources on surviving members moved: %s" % [
        (s, before[s], after[s]) for s in stayed_wrongly_moved]
    moved = sum(1 for s in sources if before[s] != after[s])
    assert 0.15 <= moved / len(sources) <= 0.52, (moved, per_member)


COOKIE = re.compile(r"shopid=([^;]+); Path=/; HttpOnly")


def test_cookie_policy_sticks_a_visitor_to_its_member(group, tmp_path, backend):
    bs = [backend(i) for i in "abc"]
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s]" % ", ".join(http_url(b) for b in bs), "lb_policy": '"cookie"',
        "cookie_name": '"shopid"'}]))
    first = get(relay.http_port, "/c")
    assert first.status == 200, first
    m = COOKIE.fullmatch(first.header("Set-Cookie") or "")
    assert m, first.headers
    value = m.group(1)
    for i in range(20):
        a = get(relay.http_port, "/c/%d" % i, headers={"Cookie": "other=1; shopid=" + value})
        assert a.status == 200 and a.backend == first.backend, (i, a, first)
        assert a.header("Set-Cookie") is None, a.headers  # the cookie already names the member

    member_of = {value: first.backend}
    for i in range(12):  # new visitors, each from an address of its own: each is assigned, and
        a = get(relay.http_port, "/new/%d" % i, source="127.0.0.%d" % (100 + i))  # a value names one member
        m = COOKIE.fullmatch(a.header("Set-Cookie") or "")
        assert a.status == 200 and m, (a, a.headers)
        assert member_of.setdefault(m.group(1), a.backend) == a.backend, (member_of, a)
    assert len(set(member_of.values())) >= 2, "every new visitor went to one member: %s" % member_of
    assert len(member_of) == len(set(member_of.values())), member_of
    for v, member in member_of.items():
        a = get(relay.http_port, "/again", headers={"Cookie": "shopid=" + v})
        assert a.status == 200 and a.backend == member, (v, member, a)

    bogus = get(relay.http_port, "/bogus", headers={"Cookie": "shopid=not-a-member"})
    m = COOKIE.fullmatch(bogus.header("Set-Cookie") or "")
    assert bogus.status == 200 and m, bogus.headers  # a value naming no member is replaced
    assert member_of.setdefault(m.group(1), bogus.backend) == bogus.backend, (member_of, bogus)
    again = get(relay.http_port, "/bogus/again", headers={"Cookie": "shopid=" + m.group(1)})
    assert again.status == 200 and again.backend == bogus.backend, (again, bogus)


# -- 6-8: failures, ejection, health ---------------------------------------------------

def test_a_backend_killed_mid_load_costs_no_request(group, tmp_path, proc_backend):
    (pa, port_a), (pb, port_b) = proc_backend("a"), proc_backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": '["http://127.0.0.1:%d", "http://127.0.0.1:%d"]' % (port_a, port_b)}]))
    done, lock, killed = [0], threading.Lock(), threading.Event()
    failures, served_after_kill = [], []

    def load(t):
        v = Visitor(relay.http_port)
        for i in range(100):
            was_killed = killed.is_set()
            try:
                a = v.get("/load/%d/%d" % (t, i))
                if a.status != 200:
                    failures.append((t, i, a))
                elif was_killed:
                    served_after_kill.append(a.backend)
            except Exception as e:  # noqa: BLE001 -- any error is a failed GET
                failures.append((t, i, repr(e)))
            with lock:
                done[0] += 1
                if done[0] == 150:
                    sigkill(pb)
                    killed.set()
        v.close()

    parallel(4, load)
    assert killed.is_set()
    assert not failures, "%d failed GETs, first: %r" % (len(failures), failures[:3])
    assert served_after_kill and set(served_after_kill) == {"a"}, set(served_after_kill)


def test_passive_ejection_after_max_fails_5xx(group, tmp_path, backend):
    broken, good = backend("broken", status=500), backend("good")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s, %s]" % (http_url(broken), http_url(good)), "max_fails": 3,
        "eject_time": '"60s"'}]))
    v = Visitor(relay.http_port)
    answers = [v.get("/p/%d" % i) for i in range(30)]
    v.close()
    assert broken.requests() == 3, (broken.requests(), answers)
    assert good.requests() == 30 - sum(1 for a in answers if a.backend == "broken")
    assert all(a.status == 200 and a.backend == "good" for a in answers[10:]), answers[10:]
    # The log names the ejection and what the last failure was.
    assert ("http://127.0.0.1:%d ejected for 60000 ms after 3 failures in a row "
            "(the last: a 5xx answer)" % broken.port) in relay.proc.stderr_text(), relay.proc.stderr_text()


def test_exchanges_in_flight_at_an_ejection_do_not_eject_the_backend_again(group, tmp_path):
    """A backend that takes eight requests at once and closes them all without an answer: the
    first failure ejects it, for eject_time and not for a doubled one, and the seven failures of
    exchanges already under way when it went out count no further."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    listener.settimeout(10)
    held = []

    def hold_then_close():
        try:
            while len(held) < 8:
                conn, _ = listener.accept()
                conn.recv(4096)
                held.append(conn)
        except OSError:
            pass
        for conn in held:
            conn.close()

    closer = threading.Thread(target=hold_then_close, daemon=True)
    closer.start()
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": '["http://127.0.0.1:%d"]' % listener.getsockname()[1], "max_fails": 1,
        "eject_time": '"60s"'}]))
    answers = parallel(8, lambda i: get(relay.http_port, "/held/%d" % i, timeout=15))
    closer.join(15)
    listener.close()
    assert len(held) == 8, "the backend held %d requests" % len(held)
    assert all(a.status in (502, 503) for a in answers), answers
    log = relay.proc.stderr_text()
    ejections = [line for line in log.splitlines() if " ejected for " in line]
    # One ejection per event loop that saw a failure (each loop keeps its own pool).
    assert 1 <= len(ejections) <= 2, log
    assert all("ejected for 60000 ms after 1 failures in a row (the last: the connection closed "
               "without a response)" in line for line in ejections), ejections


def test_a_visitor_who_leaves_before_the_answer_is_not_the_backends_failure(
        group, tmp_path, backend):
    """The backend answers after the visitor has gone (a reset): nothing of the answer reaches
    anyone, and the backend is neither asked again nor counted as failing."""
    slow = backend("slow")
    slow.delay = 0.4
    metrics_port = free_port()
    relay = start_relay(group, tmp_path, 'metrics_addr = "127.0.0.1:%d"\n' % metrics_port + site(
        [HOST], [{"upstream": "[%s]" % http_url(slow), "max_fails": 1, "eject_time": '"60s"'}]))

    def unanswered():  # requests the relay ended with no answer sent
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port,
                                      timeout=5).read().decode()
        name = 'porthole_requests_total{site="%s",code_class="none"} ' % HOST
        return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))

    for i in range(3):
        s = socket.create_connection(("127.0.0.1", relay.http_port))
        s.sendall(b"GET /left/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, HOST.encode()))
        wait_until(lambda: slow.requests() == i + 1, 5, message="the request reached the backend")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset, before the answer
        # The answer comes, and finds the visitor gone.
        wait_until(lambda: unanswered() == i + 1, 5, message="the exchange did not end")
    slow.delay = 0
    answer = get(relay.http_port, "/after")
    assert answer.status == 200 and answer.backend == "slow", answer
    assert slow.requests() == 4  # each asked once: none tried again
    assert " ejected for " not in relay.proc.stderr_text(), relay.proc.stderr_text()


class Traffic:
    """A thread that keeps sending GETs until stopped; every answer must be a 200."""

    def __init__(self, port):
        self.port = port
        self.bad = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        v = Visitor(self.port)
        while not self._stop.is_set():
            try:
                a = v.get("/traffic/%d" % self.count)
                if a.status != 200:
                    self.bad.append(a)
            except Exception as e:  # noqa: BLE001
                self.bad.append(repr(e))
            self.count += 1
            self._stop.wait(0.01)  # pacing, not synchronization
        v.close()

    def stop(self):
        self._stop.set()
        self._thread.join(10)


def kinds(b, kind, since=0.0):
    return [t for t, k, _ in b.events() if k == kind and t >= since]


def test_active_health_checks_take_a_member_out_after_fall_and_back_after_rise(
        group, tmp_path, backend):
    a, b = backend("a"), backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s, %s]" % (http_url(a), http_url(b)), "health_path": '"/healthz"',
        "health_interval": '"200ms"', "health_timeout": '"100ms"', "health_status": '"2xx"',
        "rise": 2, "fall": 3}]))
    traffic = Traffic(relay.http_port)
    try:
        wait_until(lambda: a.requests() >= 3 and b.requests() >= 3 and len(kinds(a, "health-ok")) >= 2,
                   5, message="both members serving and checked")
        flip = time.monotonic()
        a.health = 500
        fails = wait_until(lambda: (lambda f: f if len(f) >= 5 else None)(kinds(a, "health-fail", flip)),
                           5, message="5 failing checks of a")
        assert fails[2] - fails[0] < 1.0, "checks are not 200ms apart: %s" % fails
        reqs = kinds(a, "req", flip)
        assert [t for t in reqs if fails[1] + 0.02 < t < fails[2]], \
            "a was taken out before its 3rd failing check (fall = 3)"
        late = [t - fails[2] for t in reqs if t > fails[2] + 0.1]
        assert not late, "a got requests after fall checks failed: %s s after" % late

        back = time.monotonic()
        a.health = 200
        first = wait_until(lambda: (kinds(a, "req", back) or [None])[0], 5,
                           message="a serving again after passing checks")
        oks = kinds(a, "health-ok", back)
        assert len(oks) >= 2 and first > oks[1], \
            "a got a request at %.3f before its 2nd passing check (rise = 2): %s" % (first, oks)
        assert first - oks[1] < 0.5, (first, oks)
    finally:
        traffic.stop()
    assert not traffic.bad, traffic.bad[:3]


# -- 9-11: tunnel, https and unix members ----------------------------------------------

def test_a_site_mixing_a_backend_and_a_tunnel_survives_the_tunnel_dying(
        group, tmp_path, backend, make_agent):
    web, tun = backend("web"), backend("tun")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": '[%s, "tunnel:shop-preview"]' % http_url(web), "lb_policy": '"round_robin"'}]))
    agent = make_agent(relay, "http", tun.port, "--subdomain", "shop-preview")
    counts = tally(get(relay.http_port, "/new/%d" % i) for i in range(40))
    assert counts == {"web": 20, "tun": 20}, counts
    # a host no site claims still reaches the tunnel of that name
    own = get(relay.http_port, "/own", host="shop-preview.localhost:%d" % relay.http_port)
    assert own.status == 200 and own.backend == "tun", own

    sigkill(agent)
    start = time.monotonic()
    answers = get_many(relay.http_port, 40, "/after")
    assert tally(answers) == {"web": 40}
    assert time.monotonic() - start < 10, "40 GETs took %.1fs" % (time.monotonic() - start)


def test_a_kept_alive_visitor_is_balanced_per_request_over_a_tunnel_member(
        group, tmp_path, backend, make_agent):
    """Round robin over one http member and one tunnel member, all requests on one connection:
    each request is balanced, as it is between http members."""
    web, tun = backend("web"), backend("tun")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": '[%s, "tunnel:shop-preview"]' % http_url(web), "lb_policy": '"round_robin"'}]))
    make_agent(relay, "http", tun.port, "--subdomain", "shop-preview")
    counts = tally(get_many(relay.http_port, 40))
    assert counts.get("web", 0) >= 15 and counts.get("tun", 0) >= 15, counts


def make_ca_and_cert(d):
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "2", "-subj", "/CN=porthole test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                               "basicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    return d / "ca.pem", d / "server.pem", d / "server.key"


class TlsBackend(backends.Backend):
    def __init__(self, backend_id, cert, key):
        super().__init__(backend_id)
        self.sni = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)

    def get_request(self):
        conn, addr = self.socket.accept()
        conn.settimeout(5)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            raise
        tls.settimeout(None)
        return tls, addr


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_https_backend_verified_against_its_ca_file(group, tmp_path, name):
    ca, cert, key = make_ca_and_cert(tmp_path)
    tls = TlsBackend("tls", cert, key)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    try:
        member = '["https://%s:%d"]' % (name, tls.port)
        relay = start_relay(group, tmp_path,
                            site(["trusted.test"], [{"upstream": member, "ca_file": '"%s"' % ca}]) +
                            site(["system.test"], [{"upstream": member}]))
        ok = get(relay.http_port, "/secure?q=1", host="trusted.test")
        assert ok.status == 200 and ok.text == "tls GET /secure?q=1\n", ok
        # SNI is the member's host name; an IP address is never sent as SNI (RFC 6066)
        assert tls.sni == ([name] if name == "localhost" else [None]), tls.sni
        untrusted = get(relay.http_port, "/secure", host="system.test")
        assert untrusted.status == 502, untrusted
        assert tls.requests() == 1
    finally:
        backends.stop_backend(tls)


def test_a_member_named_by_host_name_is_resolved(group, tmp_path, backend):
    b = backend("named")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": '["http://localhost:%d"]' % b.port}]))
    a = get(relay.http_port, "/by-name")
    assert a.status == 200 and a.text == "named GET /by-name\n", a


def test_unix_socket_backend(group, tmp_path):
    path = tmp_path / "b.sock"
    assert len(str(path)) < 100
    ub = backends.start_unix_backend("unix", path)
    try:
        relay = start_relay(group, tmp_path, site([HOST], [{"upstream": '["unix:%s"]' % path}]))
        a = get(relay.http_port, "/over/unix?x=1")
        assert a.status == 200 and a.text == "unix GET /over/unix?x=1\n", a
        assert dict(ub.last_headers).get("Host") == HOST, ub.last_headers
    finally:
        backends.stop_backend(ub)


# -- 12-14: routing and errors -------------------------------------------------------

def test_strip_prefix_and_whole_segment_matching(group, tmp_path, backend):
    api, keep, rest = backend("api"), backend("keep"), backend("rest")
    relay = start_relay(group, tmp_path, site([HOST], [
        {"path": '"/api"', "strip_prefix": "true", "upstream": "[%s]" % http_url(api)},
        {"path": '"/keep"', "strip_prefix": "false", "upstream": "[%s]" % http_url(keep)},
        {"upstream": "[%s]" % http_url(rest)}]))
    expected = {
        "/api/items?x=1": "api GET /items?x=1\n",
        "/api": "api GET /\n",
        "/api?x=2": "api GET /?x=2\n",
        "/api/": "api GET /\n",
        "/keep/items?x=1": "keep GET /keep/items?x=1\n",
        "/keep": "keep GET /keep\n",
        "/apix": "rest GET /apix\n",
        "/apix/items": "rest GET /apix/items\n",
        "/": "rest GET /\n",
    }
    got = {p: get(relay.http_port, p).text for p in expected}
    assert got == expected


def test_upstream_timeout_answers_504(group, tmp_path, backend):
    sleepy = backend("sleepy", delay=4)
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s]" % http_url(sleepy), "upstream_timeout": '"1s"'}]))
    start = time.monotonic()
    a = get(relay.http_port, "/slow", timeout=10)
    elapsed = time.monotonic() - start
    assert a.status == 504, a
    assert 0.9 <= elapsed < 3.0, "504 after %.2fs" % elapsed


def test_no_live_member_names_the_host_and_an_unrouted_path_is_404(group, tmp_path):
    relay = start_relay(group, tmp_path, site([HOST, "*.shop.test"], [{
        "path": '"/api"', "upstream": '["http://127.0.0.1:%d", "http://127.0.0.1:%d"]' % (
            free_port(), free_port()), "max_fails": 1, "eject_time": '"60s"'}]))
    for host in (HOST, "eu.shop.test", HOST, HOST):
        a = get(relay.http_port, "/api/x", host=host)
        assert a.status in (502, 503) and host in a.text, (host, a)
    unrouted = get(relay.http_port, "/elsewhere")
    assert unrouted.status == 404 and "no route of this site serves this path" in unrouted.text, unrouted


# -- 15: config errors --------------------------------------------------------------

# "#<" marks the lines an error may point at (the offending key, or its table's header).
CONFIG_ERRORS = {
    "unknown_scheme": ("ftp", """
[[sites]]
hosts = ["shop.test"]
[[sites.routes]]
upstream = ["http://127.0.0.1:1", "ftp://x"]  #<
"""),
    "route_shadowed_by_shorter_prefix": ("can never match", """
[[sites]]
hosts = ["shop.test"]
[[sites.routes]]
path = "/api"
upstream = ["http://127.0.0.1:1"]
[[sites.routes]]  #<
path = "/api/v1"  #<
upstream = ["http://127.0.0.1:2"]
"""),
    "route_after_catch_all": ("can never match", """
[[sites]]
hosts = ["shop.test"]
[[sites.routes]]
upstream = ["http://127.0.0.1:1"]
[[sites.routes]]  #<
path = "/late"  #<
upstream = ["http://127.0.0.1:2"]
"""),
    "host_claimed_twice": ("shop.test", """
[[sites]]
hosts = ["shop.test"]
[[sites.routes]]
upstream = ["http://127.0.0.1:1"]

[[sites]]  #<
hosts = ["other.test", "shop.test"]  #<
[[sites.routes]]
upstream = ["http://127.0.0.1:2"]
"""),
    "wildcard_claimed_twice": ("*.shop.test", """
[[sites]]
hosts = ["*.shop.test"]
[[sites.routes]]
upstream = ["http://127.0.0.1:1"]
[[sites]]  #<
hosts = ["*.shop.test"]  #<
[[sites.routes]]
upstream = ["http://127.0.0.1:2"]
"""),
    "unknown_route_key": ("did you mean 'lb_policy'", """
[[sites]]
hosts = ["shop.test"]
[[sites.routes]]
path = "/api"
lb_polcy = "round_robin"  #<
upstream = ["http://127.0.0.1:1"]
"""),
    "unknown_site_key": ("did you mean 'health_interval'", """
[[sites]]
hosts = ["shop.test"]
health_intervall = "1s"  #<
[[sites.routes]]
upstream = ["http://127.0.0.1:1"]
"""),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors_name_file_and_line(tmp_path, case):
    needle, text = CONFIG_ERRORS[case]
    text = text.lstrip("\n")
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.rstrip().endswith("#<")]
    path = tmp_path / ("%s.toml" % case)
    path.write_text(text)
    try:
        r = subprocess.run([BIN, "server", "--config", str(path),
                            "--http-addr", "127.0.0.1:%d" % free_port(),
                            "--control-addr", "127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail("the relay accepted %s and ran: %s" % (case, e.stdout))
    assert r.returncode != 0, r
    found = re.findall(re.escape(str(path)) + r":(\d+):", r.stderr)
    assert found and int(found[0]) in lines, "want %s:%s in %r" % (path, lines, r.stderr)
    assert needle in r.stderr, r.stderr


def test_a_valid_site_config_is_accepted(group, tmp_path, backend):
    """The control for the error cases: the same shapes, written right, start a relay."""
    b = backend("b")
    toml = (site(["shop.test", "*.shop.test"], [
        {"path": '"/api/v1"', "upstream": "[%s]" % http_url(b), "lb_policy": '"round_robin"'},
        {"path": '"/api"', "upstream": '[{ url = %s, weight = 2 }]' % http_url(b)},
        {"upstream": '["tunnel:shop-preview"]'}], lb_policy='"least_conn"', health_interval='"1s"',
        health_timeout='"500ms"', health_path='"/healthz"')
        + site(["other.test"], [{"upstream": "[%s]" % http_url(b)}]))
    relay = start_relay(group, tmp_path, toml)
    assert get(relay.http_port, "/api/v1/x", host="eu.shop.test").text == "b GET /api/v1/x\n"


def test_a_health_interval_shorter_than_the_default_timeout_is_accepted(group, tmp_path, backend):
    """health_interval = "1s" alone: the default health_timeout (2s) is the relay's, not the
    operator's; `porthole proxy --health-interval 1` shortens it to fit, so should the file."""
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [{
        "upstream": "[%s]" % http_url(b), "health_path": '"/healthz"', "health_interval": '"1s"'}]))
    assert get(relay.http_port, "/x").status == 200


# -- 16: porthole proxy ---------------------------------------------------------------

def start_proxy(group, *args):
    port = free_port()
    p = group.spawn("proxy", [BIN, "proxy", "--listen", "127.0.0.1:%d" % port] + list(args))
    return p, port


def test_porthole_proxy_round_robin(group, backend):
    a, b = backend("a"), backend("b")
    p, port = start_proxy(group, "http://127.0.0.1:%d" % a.port, "http://127.0.0.1:%d" % b.port)
    wait_until(lambda: any(l.startswith("porthole proxy") for l in p.lines)
               or (not p.alive() and pytest.fail(p.describe())), 10)
    counts = tally(get_many(port, 40, host="anything.example"))
    assert counts == {"a": 20, "b": 20}, counts


def test_porthole_proxy_health_path(group, backend):
    a, b = backend("a"), backend("b")
    p, port = start_proxy(group, "--json", "--health-path", "/healthz", "--health-interval", "1",
                          "http://127.0.0.1:%d" % a.port, "http://127.0.0.1:%d" % b.port)
    ev = wait_until(lambda: next(iter(p.events), None) or (not p.alive() and pytest.fail(p.describe())),
                    10)
    assert ev.get("event") == "listening", ev
    wait_until(lambda: len(kinds(a, "health-ok")) >= 1, 5, message="a checked at /healthz")
    assert tally(get_many(port, 10)) == {"a": 5, "b": 5}

    a.health = 503
    out = lambda: all(x.backend == "b" for x in get_many(port, 6))  # noqa: E731
    wait_until(out, 8, step=0.1, message="a taken out after failing /healthz")
    assert len(kinds(a, "health-fail")) >= 3, "out after fewer than 3 failing checks"
    assert tally(get_many(port, 10)) == {"b": 10}

    a.health = 200
    wait_until(lambda: "a" in tally(get_many(port, 4)), 6, step=0.1, message="a back after passing")


# -- 17: forwarding headers ------------------------------------------------------------

def test_forwarding_headers_reach_the_backend(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [{"upstream": "[%s]" % http_url(b)}]))

    def seen(**kw):
        a = get(relay.http_port, "/headers", source="127.0.0.7", **kw)
        assert a.status == 200, a
        return {k.lower(): v for k, v in json.loads(a.body)["headers"]}

    h = seen()
    assert h.get("host") == HOST
    assert h.get("x-forwarded-for") == "127.0.0.7", h
    assert h.get("x-forwarded-proto") == "http", h
    assert h.get("x-forwarded-host") == HOST, h
    assert "1.1 porthole" in (h.get("via") or ""), h

    with_port = "%s:%d" % (HOST, relay.http_port)
    h = seen(host=with_port, headers={"X-Forwarded-For": "203.0.113.9"})
    assert h.get("host") == with_port, h
    assert h.get("x-forwarded-host") == with_port, h
    # the client's own claim may be kept, but the address the relay saw comes last
    assert [x.strip() for x in h["x-forwarded-for"].split(",")][-1] == "127.0.0.7", h


def test_behind_trusted_proxies_the_visitor_is_the_forwarded_address(group, tmp_path, backend):
    """trusted_proxies: from a load balancer in the list, X-Forwarded-For names the visitor (for
    ip_hash, logs and the tunnel client) and X-Forwarded-Proto/-Host are kept; from anyone else
    they are not believed."""
    members = [backend("m%d" % i) for i in range(3)]
    relay = start_relay(group, tmp_path, 'trusted_proxies = ["127.0.0.8/29"]\n' + site(
        [HOST], [{"upstream": "[%s]" % ", ".join(http_url(m) for m in members),
                  "lb_policy": '"ip_hash"'}]))

    def seen(source, **headers):
        a = get(relay.http_port, "/headers", source=source, headers=headers)
        assert a.status == 200, a
        return a.backend, {k.lower(): v for k, v in json.loads(a.body)["headers"]}

    # one visitor, through two different trusted balancers, sticks to one member
    visitors = ["198.51.100.%d" % i for i in range(1, 13)]
    first = {v: seen("127.0.0.9", **{"X-Forwarded-For": v})[0] for v in visitors}
    again = {v: seen("127.0.0.10", **{"X-Forwarded-For": "6.6.6.6, " + v})[0] for v in visitors}
    assert first == again, (first, again)
    assert len(set(first.values())) >= 2, first  # and the visitors spread over the members

    _, h = seen("127.0.0.9", **{"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https",
                                "X-Forwarded-Host": "shop.example.com"})
    assert h["x-forwarded-for"] == "198.51.100.1, 127.0.0.9", h
    assert h["x-forwarded-proto"] == "https" and h["x-forwarded-host"] == "shop.example.com", h

    # an untrusted peer: its claims are appended to, never believed
    _, h = seen("127.0.0.2", **{"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https",
                                "X-Forwarded-Host": "evil.example"})
    assert h["x-forwarded-for"] == "198.51.100.1, 127.0.0.2", h
    assert h["x-forwarded-proto"] == "http" and h["x-forwarded-host"] == HOST, h
    spoofed = {seen("127.0.0.2", **{"X-Forwarded-For": v})[0] for v in visitors}
    assert len(spoofed) == 1, spoofed  # one peer address, one member, whatever it claims


# -- tcp sites ---------------------------------------------------------------------------

def start_redis(group, tmp_path, name):
    port = free_port()
    workdir = tmp_path / name
    workdir.mkdir()
    proc = group.spawn(name, [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
        "--protected-mode", "no"])
    wait_until(lambda: accepts(port) or not proc.alive(), 10)
    assert proc.alive(), proc.describe()
    return proc, port


def redis_cli(port, *args):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args),
                       capture_output=True, timeout=30, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_a_tcp_site_carries_redis_balanced_and_checked(group, tmp_path):
    """[[tcp_sites]]: a listener of the relay's own in front of two redis servers, round robin
    per connection; a connect check takes a dead one out, and every connection still gets an
    answer."""
    r1, p1 = start_redis(group, tmp_path, "redis-a")
    r2, p2 = start_redis(group, tmp_path, "redis-b")
    listen = free_port()
    relay = start_relay(group, tmp_path, (
        "[[tcp_sites]]\nlisten = \"127.0.0.1:%s\"\n"
        "upstream = [\"tcp://127.0.0.1:%s\", \"tcp://127.0.0.1:%s\"]\n"
        "health_interval = \"300ms\"\nfall = 1\n") % (listen, p1, p2))
    wait_until(lambda: accepts(listen), 10)
    ports = [redis_cli(listen, "config", "get", "port").splitlines()[-1] for _ in range(10)]
    assert sorted(set(ports)) == sorted({str(p1), str(p2)}) and ports.count(str(p1)) == 5, ports
    assert redis_cli(listen, "set", "k", "v") == "OK"
    sigkill(r2)
    # the check takes it out within a few intervals; until then a connect failure retries
    answers = [redis_cli(listen, "config", "get", "port").splitlines()[-1] for _ in range(10)]
    assert answers == [str(p1)] * 10, answers
    assert relay.proc.alive()
