"""Traffic policies on the relay (docs/policies.md): ip_allow / ip_deny, basic_auth, rate_limit,
headers, redirect, https_only, respond and max_body, per site ([[sites.policies]]), per route
([[sites.routes.policies]]) and for every HTTP tunnel ([[tunnel_policy.policies]]).

Backends are the small servers of backends.py ("ID METHOD TARGET", /headers echoes the request
head it received, .requests() counts what reached it), so "the backend never saw it" is counted
where the requests land. Visitors come from chosen loopback addresses (127.0.0.N) to be told apart.

Where docs/policies.md leaves a choice open, these tests take the most natural reading:
  * {remote_addr} is the visitor's address without a port; {host} is only checked with a Host
    that has no port (redirect templates say "without port"; header templates do not say).
  * {tunnel} is checked on [[tunnel_policy.policies]] (the tunnel's name) and on a backend route (empty);
    a site route whose members are `tunnel:NAME` is not asserted either way.
  * [[tunnel_policy.policies]] apply to a Host NAME.DOMAIN that no site claims, not to a site route whose
    upstream is `tunnel:NAME` (that route runs its site's and its own policies).
  * https_only with no HTTPS listener redirects to exactly https://HOST{uri} (Host sent without a
    port); with an HTTPS listener on another port the Location may carry that port.
  * A 429 carries RateLimit-Limit equal to the burst, RateLimit-Remaining: 0, and Retry-After and
    RateLimit-Reset as positive whole seconds (Reset at most burst x period).
  * An Authorization that is not valid Basic credentials is a 401, like a wrong password.
  * An htpasswd line that is refused is named as HTPASSWD_FILE:LINE (the htpasswd file's own line).
  * max_body decides on Content-Length alone: a head announcing too much is answered without
    waiting for the body; a body of exactly `size` bytes passes ("when Content-Length says more").
  * X-Request-Id is added by a `headers` policy (request_id defaults to true), not by a route
    without one, and not with request_id = false.
  * rate_limit max_keys may be as small as 2, and "the key idle longest" is exact at that size.
  * "A policy's answer closes no kept-alive connection that could go on" is tested: a 401 or 429
    leaves the connection open and the next request on it is judged again.
Not tested: the IPv6 peer address of a connection (the tests listen on 127.0.0.1 only; IPv6 and
IPv4-mapped visitors are tested through X-Forwarded-For behind trusted_proxies), PROXY-protocol
visitors, and max_keys' memory bound itself.
"""
import base64
import hashlib
import http.client
import json
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import threading
import time

import pytest

from helpers import BIN, accepts, curl, free_port, make_cert, wait_until

HOST = "shop.test"
HTPASSWD = shutil.which("htpasswd")
needs_htpasswd = pytest.mark.skipif(
    not HTPASSWD,
    reason="htpasswd is not installed (Debian: apache2-utils, see scripts/install-deps)")


# -- config -------------------------------------------------------------------------

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes are TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[%s]" % ", ".join(toml_value(x) for x in v)
    if isinstance(v, dict):
        return "{ %s }" % ", ".join("%s = %s" % (json.dumps(k), toml_value(x))
                                    for k, x in v.items())
    raise TypeError(v)


def table(header, settings):
    return "[[%s]]\n%s" % (header, "".join("%s = %s\n" % (k, toml_value(v))
                                          for k, v in settings.items()))


def policy(type_, **keys):
    return dict(type=type_, **keys)


def site(hosts, routes, policies=(), **site_keys):
    """TOML for one [[sites]] table (hosts and `site_keys`): its own policies, then routes (dicts
    of route keys, with an optional "policies" list), each followed by its policies."""
    text = table("sites", dict(hosts=list(hosts), **site_keys))
    for p in policies:
        text += table("sites.policies", p)
    for r in routes:
        r = dict(r)
        route_policies = r.pop("policies", ())
        text += table("sites.routes", r)
        for p in route_policies:
            text += table("sites.routes.policies", p)
    return text


def assert_refused_at_marked_line(path, text, needle):
    """The relay refuses config `text` (written to `path`) naming a line marked `#<` and `needle`."""
    text = text.lstrip("\n")
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.rstrip().endswith("#<")]
    path.write_text(text)
    stderr = refused_at_start(path)
    found = re.findall(re.escape(str(path)) + r":(\d+)", stderr)
    assert found and int(found[0]) in lines, "want %s:%s in the relay's error:\n%s" % (
        path, lines, stderr)
    assert needle.lower() in stderr.lower(), "want %r in the relay's error:\n%s" % (needle, stderr)


def tunnel_policies(*policies):
    return "".join(table("tunnel_policy.policies", p) for p in policies)


def to(b, **route):
    """A route to backend b (route keys as Python values)."""
    route["upstream"] = ["http://127.0.0.1:%d" % b.port]
    return route


def start_relay(group, tmp_path, toml, *extra):
    path = tmp_path / "relay.toml"
    path.write_text(toml)
    return group.relay("--config", str(path), *extra)


def refused_at_start(path):
    """Start a relay on config `path`; it must exit non-zero. Returns its stderr."""
    try:
        r = subprocess.run([BIN, "server", "--config", str(path),
                            "--http-addr", "127.0.0.1:%d" % free_port(),
                            "--control-addr", "127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail("the relay accepted %s and ran:\n%s\nstdout: %s\nstderr: %s"
                    % (path, path.read_text(), e.stdout, e.stderr))
    assert r.returncode != 0, "the relay exited 0 on %s:\n%s\n%r" % (path, path.read_text(), r)
    return r.stderr


# -- visitors -----------------------------------------------------------------------

class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value), repeats kept
        self.body = body

    def values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        values = self.values(name)
        return values[0] if values else None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def backend(self):
        """The backend that answered (X-Backend), None for the relay's own answers."""
        return self.header("X-Backend")

    def seen(self):
        """What a backend's /headers saw: list of (lower-case name, value)."""
        assert self.status == 200, "the backend's /headers did not answer: %r" % self
        return [(k.lower(), v) for k, v in json.loads(self.body)["headers"]]

    def seen_values(self, name):
        return [v for k, v in self.seen() if k == name.lower()]

    def __repr__(self):
        return "Answer(%s, %r, %r)" % (self.status, self.headers, self.body[:300])


def exchange(conn, path="/", host=HOST, headers=(), method="GET", body=None):
    """One request on an http.client connection; headers is a list of (name, value) pairs, so a
    name may repeat."""
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    for k, v in headers:
        conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    return Answer(r.status, r.getheaders(), r.read())


def get(port, path="/", host=HOST, headers=(), source=None, method="GET", body=None, timeout=5):
    """One request on a new connection, from a chosen loopback source address."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        return exchange(conn, path, host, headers, method, body)
    finally:
        conn.close()


def raw(port, data, method="POST", source=None, timeout=5):
    """Send `data` (a whole request, or only its head) in one write and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as s:
        s.sendall(data)
        r = http.client.HTTPResponse(s, method=method)
        r.begin()
        return Answer(r.status, r.getheaders(), r.read())


class KeptAlive:
    """One visitor connection; every request must go on the same socket (the relay may not have
    closed it after the previous answer)."""

    def __init__(self, port, host=HOST, source=None):
        self.host = host
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                               source_address=(source, 0) if source else None)
        self.conn.connect()
        self.local = self.conn.sock.getsockname()
        self.answers = []

    def get(self, path="/", headers=()):
        assert self.conn.sock is not None, (
            "the relay closed the kept-alive connection after its answer %r; a policy's answer "
            "must leave it open for the next request" % (self.answers[-1],))
        assert self.conn.sock.getsockname() == self.local
        try:
            a = exchange(self.conn, path, self.host, headers)
        except (http.client.RemoteDisconnected, ConnectionError) as e:
            pytest.fail("request %d on the kept-alive connection failed (%r) after answers %r; a "
                        "policy's answer must leave the connection open"
                        % (len(self.answers) + 1, e, self.answers))
        self.answers.append(a)
        return a

    def close(self):
        self.conn.close()


def realm_of(answer):
    """The realm of a `WWW-Authenticate: Basic realm="..."` challenge, None without one."""
    m = re.match(r'Basic realm="([^"]*)"', answer.header("WWW-Authenticate") or "")
    return m.group(1) if m else None


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# -- htpasswd lines -------------------------------------------------------------------

def sha_crypt_line(user, password, variant="6"):
    """user:$6$... (or $5$) made by `openssl passwd`."""
    p = subprocess.run(["openssl", "passwd", "-" + variant, "-salt", secrets.token_hex(8),
                        password], check=True, capture_output=True, text=True)
    return "%s:%s" % (user, p.stdout.strip())


def htpasswd_bcrypt(path, user, password, cost=5):
    """Create `path` with one bcrypt line from Debian's `htpasswd -B`; returns that line."""
    subprocess.run([HTPASSWD, "-B", "-C", str(cost), "-b", "-c", str(path), user, password],
                   check=True, capture_output=True)
    line = path.read_text().strip()
    assert line.startswith(user + ":$2y$"), line
    return line


def apr1_line(user, password):
    """Apache's MD5 (htpasswd's default): `htpasswd -m` when installed, else the same format from
    openssl."""
    if HTPASSWD:
        p = subprocess.run([HTPASSWD, "-n", "-m", "-b", user, password], check=True,
                           capture_output=True, text=True)
        return p.stdout.strip()
    p = subprocess.run(["openssl", "passwd", "-apr1", password], check=True, capture_output=True,
                       text=True)
    return "%s:%s" % (user, p.stdout.strip())


# -- fixtures -----------------------------------------------------------------------

# -- 1: ip_allow / ip_deny --------------------------------------------------------------

def test_ip_allow_and_ip_deny_judge_the_visitor_address(group, tmp_path, backend):
    b = backend("b")

    def one(host, type_, *cidrs):
        return site([host], [to(b, policies=[policy(type_, cidrs=list(cidrs))])])

    relay = start_relay(group, tmp_path,
                        one("ten.test", "ip_allow", "10.0.0.0/8")
                        + one("loop.test", "ip_allow", "10.0.0.0/8", "127.0.0.0/8")
                        + one("v6.test", "ip_allow", "2001:db8::/32")
                        + one("deny.test", "ip_deny", "127.0.0.1/32"))
    want = {
        ("ten.test", "127.0.0.1"): 403,   # allow 10/8 only
        ("loop.test", "127.0.0.1"): 200,  # allow 127/8
        ("loop.test", "127.0.0.77"): 200,
        ("v6.test", "127.0.0.1"): 403,    # an IPv6-only allow list lets no IPv4 visitor in
        ("deny.test", "127.0.0.1"): 403,  # deny 127.0.0.1/32
        ("deny.test", "127.0.0.2"): 200,  # its neighbour is not denied
    }
    answers = {(h, s): get(relay.http_port, "/ip", host=h, source=s) for h, s in want}
    assert {k: a.status for k, a in answers.items()} == want, answers
    for k, a in answers.items():
        if a.status == 200:
            assert a.text == "b GET /ip\n", (k, a)
        else:
            assert a.backend is None, (k, a)
    assert b.requests() == 3, "a refused visitor reached the backend: %d requests" % b.requests()


def test_behind_trusted_proxies_the_forwarded_address_is_the_one_judged(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, 'trusted_proxies = ["127.0.0.1/32"]\n' + site(
        [HOST], [to(b)], policies=[policy("ip_deny", cidrs=["198.51.100.0/24", "2001:db8::/32"])]))
    cases = [
        # (what, peer, X-Forwarded-For or None, status)
        ("denied visitor via the trusted balancer", "127.0.0.1", "198.51.100.7", 403),
        ("other visitor via the trusted balancer", "127.0.0.1", "203.0.113.9", 200),
        ("denied visitor two trusted hops back", "127.0.0.1", "198.51.100.7, 127.0.0.1", 403),
        ("spoofed first entry, real visitor allowed", "127.0.0.1", "198.51.100.7, 203.0.113.9",
         200),
        ("IPv4-mapped IPv6 matches the IPv4 range", "127.0.0.1", "::ffff:198.51.100.7", 403),
        ("IPv6 visitor in a denied range", "127.0.0.1", "2001:db8::7", 403),
        ("IPv6 visitor outside it", "127.0.0.1", "2001:db9::7", 200),
        ("untrusted peer claiming a denied address is judged by its own", "127.0.0.2",
         "198.51.100.7", 200),
        ("untrusted peer without the header", "127.0.0.2", None, 200),
    ]
    got = {what: get(relay.http_port, "/xff", source=peer,
                     headers=[("X-Forwarded-For", xff)] if xff else []).status
           for what, peer, xff, _ in cases}
    assert got == {what: status for what, _, _, status in cases}
    assert b.requests() == sum(1 for c in cases if c[3] == 200)


def test_ip_policies_through_a_tunnel(group, tmp_path, backend, make_agent):
    """[[tunnel_policy.policies]] judge visitors of NAME.localhost; a site route to `tunnel:NAME` runs its
    own policies (not the relay-wide tunnel ones: no site claims NAME.localhost, the site does
    claim shop.test)."""
    tun = backend("tun")
    relay = start_relay(group, tmp_path, site(
        [HOST], [{"upstream": ["tunnel:alpha"],
                  "policies": [policy("ip_allow", cidrs=["127.0.0.1/32", "127.0.0.3/32"])]}])
        + tunnel_policies(policy("ip_deny", cidrs=["127.0.0.1/32"])))
    make_agent(relay, "http", tun.port, "--subdomain", "alpha")
    cases = [
        ("tunnel host, denied by tunnel_policies", "alpha.localhost", "127.0.0.1", 403),
        ("tunnel host, other visitor", "alpha.localhost", "127.0.0.2", 200),
        ("site route to the tunnel, allowed by the route", HOST, "127.0.0.3", 200),
        ("site route to the tunnel, not in the route's allow list", HOST, "127.0.0.2", 403),
        ("site route to the tunnel: tunnel_policies do not apply", HOST, "127.0.0.1", 200),
    ]
    answers = {what: get(relay.http_port, "/t", host=host, source=src)
               for what, host, src, _ in cases}
    assert {w: a.status for w, a in answers.items()} == {w: s for w, _, _, s in cases}, answers
    for w, a in answers.items():
        if a.status == 200:
            assert a.backend == "tun", (w, a)
    assert tun.requests() == 3


# -- 2: basic_auth ------------------------------------------------------------------------

def test_basic_auth_with_sha_crypt_lines(group, tmp_path, backend):
    """SHA-crypt ($6$, $5$) lines in a file and inline: the challenge, wrong and right passwords,
    and the Authorization field kept from the backend unless forward_auth_header = true."""
    b = backend("b")
    bob = sha_crypt_line("bob", "s3:cr:et", "6")  # a password may hold ':' (RFC 7617)
    dave = sha_crypt_line("dave", "hunter2", "5")
    users = tmp_path / "staff.htpasswd"
    users.write_text(bob + "\n" + dave + "\n")
    relay = start_relay(group, tmp_path,
                        site(["auth.test"], [to(b, policies=[
                            policy("basic_auth", htpasswd_file=str(users), realm="staff area")])])
                        + site(["fwd.test"], [to(b, policies=[
                            policy("basic_auth", users=[bob], forward_auth_header=True)])]))

    def ask(host, authorization=None):
        return get(relay.http_port, "/headers", host=host,
                   headers=[("Authorization", authorization)] if authorization else [])

    refused = {
        "no credentials": ask("auth.test"),
        "wrong password": ask("auth.test", basic("bob", "s3cret")),
        "unknown user": ask("auth.test", basic("mallory", "s3:cr:et")),
        "another user's password": ask("auth.test", basic("dave", "s3:cr:et")),
        "not Basic": ask("auth.test", "Bearer s3:cr:et"),
        "not base64": ask("auth.test", "Basic !!!not-base64!!!"),
    }
    for what, a in refused.items():
        assert a.status == 401, (what, a)
        assert realm_of(a) == "staff area", (what, a)
        assert a.backend is None, (what, a)
    assert b.requests() == 0, "a refused visitor reached the backend"

    for user, password in (("bob", "s3:cr:et"), ("dave", "hunter2")):
        a = ask("auth.test", basic(user, password))
        assert a.status == 200, (user, a)
        assert a.seen_values("authorization") == [], \
            "the backend saw the visitor's password (forward_auth_header is false): %s" % a.seen()

    challenge = ask("fwd.test")
    assert challenge.status == 401, challenge
    assert realm_of(challenge) == "porthole", challenge
    assert ask("fwd.test", basic("bob", "wrong")).status == 401
    a = ask("fwd.test", basic("bob", "s3:cr:et"))
    assert a.status == 200, a
    assert a.seen_values("authorization") == [basic("bob", "s3:cr:et")], a.seen()
    assert b.requests() == 3


@needs_htpasswd
def test_basic_auth_with_htpasswd_bcrypt(group, tmp_path, backend):
    """A file made by `htpasswd -B` ($2y$), the same hash as $2b$ and $2a$, a SHA-512 line in the
    same file, and the inline users = ["alice:$2y$..."] form."""
    b = backend("b")
    users = tmp_path / "admins.htpasswd"
    alice = htpasswd_bcrypt(users, "alice", "s3cret")
    bob = sha_crypt_line("bob", "b0bpass", "6")
    hash_ = alice.split(":", 1)[1]
    with users.open("a") as f:
        f.write(bob + "\n")
        f.write("carl:" + hash_.replace("$2y$", "$2b$", 1) + "\n")
        f.write("cleo:" + hash_.replace("$2y$", "$2a$", 1) + "\n")
    relay = start_relay(group, tmp_path,
                        site(["file.test"], [to(b, policies=[
                            policy("basic_auth", htpasswd_file=str(users))])])
                        + site(["inline.test"], [to(b, policies=[
                            policy("basic_auth", users=[alice], realm="inline")])]))

    def status(host, user, password):
        a = get(relay.http_port, "/headers", host=host,
                headers=[("Authorization", basic(user, password))])
        if a.status == 200:
            assert a.seen_values("authorization") == [], a.seen()
        elif a.status == 401:
            assert a.backend is None, a
        return a.status

    got = {
        "alice (htpasswd -B)": status("file.test", "alice", "s3cret"),
        "alice, wrong password": status("file.test", "alice", "s3cret!"),
        "bob ($6$ in the same file)": status("file.test", "bob", "b0bpass"),
        "carl ($2b$)": status("file.test", "carl", "s3cret"),
        "cleo ($2a$)": status("file.test", "cleo", "s3cret"),
        "inline alice": status("inline.test", "alice", "s3cret"),
        "inline alice, wrong password": status("inline.test", "alice", "S3cret"),
        "inline: bob is only in the file": status("inline.test", "bob", "b0bpass"),
    }
    assert got == {
        "alice (htpasswd -B)": 200, "alice, wrong password": 401, "bob ($6$ in the same file)": 200,
        "carl ($2b$)": 200, "cleo ($2a$)": 200, "inline alice": 200,
        "inline alice, wrong password": 401, "inline: bob is only in the file": 401}
    a = get(relay.http_port, "/", host="inline.test")
    assert a.status == 401 and realm_of(a) == "inline", a
    assert b.requests() == 5


@needs_htpasswd
def test_an_unknown_user_costs_as_much_as_a_wrong_password(group, tmp_path, backend):
    """No user enumeration by timing: an unknown user is checked against a dummy hash. With a
    bcrypt cost-10 user, an unknown user's 401 must take a good part of a wrong password's 401."""
    b = backend("b")
    users = tmp_path / "slow.htpasswd"
    htpasswd_bcrypt(users, "alice", "s3cret", cost=10)
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        policy("basic_auth", htpasswd_file=str(users))])]))

    def timed(user, password):
        start = time.monotonic()
        a = get(relay.http_port, "/", headers=[("Authorization", basic(user, password))],
                timeout=20)
        assert a.status == 401, a
        return time.monotonic() - start

    wrong, unknown = [], []
    for i in range(7):  # interleaved, each guess new, so neither side is cached or favoured
        wrong.append(timed("alice", "guess-%d" % i))
        unknown.append(timed("nobody-%d" % i, "guess-%d" % i))
    w, u = statistics.median(wrong), statistics.median(unknown)
    assert w >= 0.01, \
        "a wrong password cost %.1f ms: is the bcrypt cost-10 hash checked at all?" % (w * 1e3)
    assert u >= 0.25 * w, (
        "an unknown user is answered in %.1f ms, a wrong password in %.1f ms: the difference tells "
        "a visitor which user names exist (wrong %s, unknown %s)"
        % (u * 1e3, w * 1e3, [round(x * 1e3, 1) for x in wrong],
           [round(x * 1e3, 1) for x in unknown]))


@pytest.mark.parametrize("kind", ["plaintext", "sha1", "apr1"])
def test_an_htpasswd_line_of_a_refused_kind_stops_the_relay_naming_file_and_line(tmp_path, kind):
    bad = {
        "plaintext": lambda: "carol:plain",
        "sha1": lambda: "carol:{SHA}" + base64.b64encode(hashlib.sha1(b"plain").digest()).decode(),
        "apr1": lambda: apr1_line("carol", "plain"),
    }[kind]()
    users = tmp_path / "mixed.htpasswd"
    users.write_text("\n".join([sha_crypt_line("dave", "hunter2"), bad,
                                sha_crypt_line("erin", "hunter3")]) + "\n")
    config = tmp_path / "relay.toml"
    config.write_text(site([HOST], [{"upstream": ["http://127.0.0.1:1"], "policies": [
        policy("basic_auth", htpasswd_file=str(users))]}]))
    stderr = refused_at_start(config)
    assert re.search(re.escape(str(users)) + r":2\b", stderr), \
        "want %s:2 (the %s line) in the relay's error:\n%s" % (users, kind, stderr)


# -- 3: rate_limit ---------------------------------------------------------------------------

def test_rate_limit_lets_exactly_the_burst_through(group, tmp_path, backend):
    """rate = "1/h", burst = 100, key = "ip": of 10,000 requests sent as fast as 8 kept-alive
    connections go, exactly 100 are served and the rest are 429s that say when to come back."""
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        policy("rate_limit", rate="1/h", burst=100, key="ip")])]))
    total, threads = 10000, 8
    results = [None] * threads

    def run(t):
        ok, limited, odd, errors = 0, 0, [], []
        first_429 = None
        conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10)
        for i in range(total // threads):
            try:
                a = exchange(conn, "/r/%d/%d" % (t, i))
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
                conn.close()
                continue
            if a.status == 200:
                ok += 1
            elif a.status == 429:
                limited += 1
                if first_429 is None:
                    first_429 = a
                if a.header("RateLimit-Limit") != "100" or a.header("RateLimit-Remaining") != "0":
                    odd.append(a)
            else:
                odd.append(a)
        conn.close()
        results[t] = (ok, limited, odd, errors, first_429)

    start = time.monotonic()
    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    elapsed = time.monotonic() - start
    assert all(r is not None for r in results), "a sender thread did not finish in 120 s"
    ok = sum(r[0] for r in results)
    limited = sum(r[1] for r in results)
    odd = sum((r[2] for r in results), [])
    errors = sum((r[3] for r in results), [])
    assert not errors, "%d requests failed (the relay closed a kept-alive connection?): %s" % (
        len(errors), errors[:3])
    assert not odd, "%d answers were neither 200 nor a 429 of this rate_limit, first: %r" % (
        len(odd), odd[0])
    assert (ok, limited) == (100, total - 100), \
        "%d served and %d limited in %.1fs; burst = 100 with rate 1/h lets exactly 100 through" % (
            ok, limited, elapsed)
    assert b.requests() == 100, "the backend saw %d requests" % b.requests()

    a = next(r[4] for r in results if r[4] is not None)
    retry = a.header("Retry-After") or ""
    assert retry.isdigit() and 0 < int(retry) <= 3600, "Retry-After %r: %r" % (retry, a)
    assert a.header("RateLimit-Limit") == "100", a
    assert a.header("RateLimit-Remaining") == "0", a
    reset = a.header("RateLimit-Reset") or ""
    assert reset.isdigit() and 0 < int(reset) <= 100 * 3600, "RateLimit-Reset %r: %r" % (reset, a)
    assert a.backend is None, a


def test_rate_limit_keyed_by_a_header_gives_each_key_its_own_burst(group, tmp_path, backend):
    """key = "header:X-Api-Key": the key, not the address, is counted; requests without the
    field share one count."""
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        policy("rate_limit", rate="1/h", burst=3, key="header:X-Api-Key")])]))
    sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]

    def burst(key, n):
        headers = [("X-Api-Key", key)] if key else []
        return [get(relay.http_port, "/k", headers=headers, source=sources[i % 3]).status
                for i in range(n)]

    got = {"key A": burst("key-A", 4), "key B": burst("key-B", 4), "no key": burst(None, 4),
           "key A again": burst("key-A", 1)}
    assert got == {"key A": [200, 200, 200, 429], "key B": [200, 200, 200, 429],
                   "no key": [200, 200, 200, 429], "key A again": [429]}
    assert b.requests() == 9


def test_rate_limit_by_ip_behind_a_proxy_keys_ipv6_visitors_by_prefix(group, tmp_path, backend):
    """Behind trusted_proxies the visitor of X-Forwarded-For is the key: an IPv6 visitor by its
    /64 (ipv6_prefix defaults to 64), or by the whole address with ipv6_prefix = 128; IPv4 by
    address."""
    b = backend("b")
    relay = start_relay(group, tmp_path, 'trusted_proxies = ["127.0.0.1/32"]\n'
                        + site(["p64.test"], [to(b, policies=[
                            policy("rate_limit", rate="1/h", burst=2, key="ip")])])
                        + site(["p128.test"], [to(b, policies=[
                            policy("rate_limit", rate="1/h", burst=2, key="ip",
                                   ipv6_prefix=128)])]))

    def from_(host, visitor):
        return get(relay.http_port, "/v", host=host,
                   headers=[("X-Forwarded-For", visitor)]).status

    got = [
        ("2001:db8:1:2::1", from_("p64.test", "2001:db8:1:2::1")),
        ("2001:db8:1:2::ffff, same /64", from_("p64.test", "2001:db8:1:2::ffff")),
        ("2001:db8:1:2:abcd::1, same /64, over", from_("p64.test", "2001:db8:1:2:abcd::1")),
        ("2001:db8:1:3::1, next /64", from_("p64.test", "2001:db8:1:3::1")),
        ("198.51.100.7", from_("p64.test", "198.51.100.7")),
        ("198.51.100.7 again", from_("p64.test", "198.51.100.7")),
        ("198.51.100.7, over", from_("p64.test", "198.51.100.7")),
        ("198.51.100.8, its own key", from_("p64.test", "198.51.100.8")),
        ("/128: 2001:db8:1:2::1", from_("p128.test", "2001:db8:1:2::1")),
        ("/128: 2001:db8:1:2::1 again", from_("p128.test", "2001:db8:1:2::1")),
        ("/128: 2001:db8:1:2::1, over", from_("p128.test", "2001:db8:1:2::1")),
        ("/128: 2001:db8:1:2::2, its own key", from_("p128.test", "2001:db8:1:2::2")),
    ]
    assert got == [(what, 429 if what.endswith(", over") else 200) for what, _ in got]


def test_rate_limit_max_keys_drops_the_key_idle_longest(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        policy("rate_limit", rate="1/h", burst=1, key="header:X-Api-Key", max_keys=2)])]))
    steps = [("A", 200), ("A", 429), ("B", 200),
             ("C", 200),   # a third key: A, idle longest, is dropped
             ("B", 429),   # B was kept
             ("A", 200)]   # A starts over
    got = [(k, get(relay.http_port, "/m", headers=[("X-Api-Key", k)]).status) for k, _ in steps]
    assert got == steps


def test_rate_limit_route_key_counts_each_tunnel_as_one(group, tmp_path, backend, make_agent):
    """[[tunnel_policy.policies]] rate_limit with key = "route": every visitor of a tunnel shares one
    count, and each tunnel has its own."""
    b = backend("b")
    relay = start_relay(group, tmp_path, tunnel_policies(
        policy("rate_limit", rate="1/h", burst=3, key="route")))
    make_agent(relay, "http", b.port, "--subdomain", "alpha", name="agent-alpha")
    make_agent(relay, "http", b.port, "--subdomain", "beta", name="agent-beta")
    got = [get(relay.http_port, "/q", host="alpha.localhost", source="127.0.0.%d" % n).status
           for n in (2, 3, 4, 5)]
    got.append(get(relay.http_port, "/q", host="beta.localhost", source="127.0.0.6").status)
    assert got == [200, 200, 200, 429, 200], "alpha x4 from 4 addresses, then beta: %s" % got
    assert b.requests() == 4


# -- 4: headers ------------------------------------------------------------------------------

HEADER_EDITS = policy(
    "headers",
    request_set={"X-Env": "prod", "X-Visitor": "{remote_addr}", "X-Seen-Host": "{host}",
                 "X-Tunnel": "[{tunnel}]", "X-Scheme": "{scheme}", "X-Path": "{path}"},
    request_add={"X-Tag": "from-relay"},
    request_remove=["x-secret"],  # names are case-insensitive
    response_set={"Server": "porthole-test", "X-Frame-Options": "DENY"},
    response_add={"X-Served-For": "{host}"},
    response_remove=["X-Backend"])


def test_header_policies_edit_the_request_and_the_response(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[HEADER_EDITS])]))
    a = get(relay.http_port, "/headers?x=1", source="127.0.0.9", headers=[
        ("X-Env", "dev"), ("X-Env", "staging"), ("X-Tag", "visitor"), ("X-Secret", "a"),
        ("X-Secret", "b"), ("X-Keep", "yes")])
    assert a.status == 200, a
    seen = {name: a.seen_values(name) for name in (
        "x-env", "x-visitor", "x-seen-host", "x-tunnel", "x-scheme", "x-path", "x-tag", "x-secret",
        "x-keep")}
    assert seen == {
        "x-env": ["prod"],                  # set replaces every field of the name
        "x-visitor": ["127.0.0.9"],
        "x-seen-host": [HOST],
        "x-tunnel": ["[]"],                 # empty for a backend route
        "x-scheme": ["http"],
        "x-path": ["/headers"],             # without the query
        "x-tag": ["visitor", "from-relay"],  # add appends one
        "x-secret": [],                     # remove drops every field of the name
        "x-keep": ["yes"],                  # others untouched
    }, a.seen()
    assert a.values("X-Backend") == [], a.headers
    assert a.values("Server") == ["porthole-test"], a.headers
    assert a.values("X-Frame-Options") == ["DENY"], a.headers
    assert a.values("X-Served-For") == [HOST], a.headers

    # what curl sees, on a path the backend answers with its plain body
    r = curl("http://%s:%d/plain" % (HOST, relay.http_port), "-D", "-")
    assert r.status == 200, r
    head, _, body = r.body.partition(b"\r\n\r\n")
    fields = [line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n")[1:]]
    assert b"x-backend" not in fields, head
    assert re.search(rb"(?im)^server: porthole-test\r?$", head), head
    assert re.search(rb"(?im)^x-frame-options: DENY\r?$", head), head
    assert body == b"b GET /plain\n", r


def test_header_policies_through_a_tunnel_name_the_tunnel(group, tmp_path, backend, make_agent):
    tun = backend("tun")
    relay = start_relay(group, tmp_path, tunnel_policies(policy(
        "headers", request_set={"X-Tunnel": "{tunnel}", "X-Visitor": "{remote_addr}"},
        response_set={"X-Via-Tunnel": "{tunnel}"}, response_remove=["X-Backend"])))
    make_agent(relay, "http", tun.port, "--subdomain", "alpha")
    a = get(relay.http_port, "/headers", host="alpha.localhost", source="127.0.0.9")
    assert a.status == 200, a
    assert a.seen_values("x-tunnel") == ["alpha"], a.seen()
    assert a.seen_values("x-visitor") == ["127.0.0.9"], a.seen()
    assert a.values("X-Via-Tunnel") == ["alpha"], a.headers
    assert a.values("X-Backend") == [], a.headers
    assert tun.requests() == 1


REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,}")


def test_request_id_is_added_when_absent_and_kept_when_sent(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [
        to(b, path="/on", strip_prefix=True, policies=[policy(
            "headers", request_set={"X-Copy": "{request_id}"},
            response_set={"X-Trace": "{request_id}"})]),
        to(b, path="/off", strip_prefix=True, policies=[policy(
            "headers", request_id=False, request_set={"X-Marker": "1"})]),
        to(b)]))

    ids = []
    for i in range(20):
        a = get(relay.http_port, "/on/headers")
        assert a.status == 200, a
        got = a.seen_values("x-request-id")
        assert len(got) == 1 and REQUEST_ID.fullmatch(got[0]), \
            "request %d: the backend saw X-Request-Id %r" % (i, got)
        assert a.seen_values("x-copy") == got, "{request_id} is not the added field: %s" % a.seen()
        assert a.values("X-Trace") == got, "{request_id} in a response edit: %r" % a.headers
        ids.append(got[0])
    assert len(set(ids)) == len(ids), "request ids repeat: %s" % ids

    a = get(relay.http_port, "/on/headers", headers=[("X-Request-Id", "visitor-chosen-42")])
    assert a.seen_values("x-request-id") == ["visitor-chosen-42"], a.seen()
    assert a.seen_values("x-copy") == ["visitor-chosen-42"], a.seen()
    assert a.values("X-Trace") == ["visitor-chosen-42"], a.headers

    off = get(relay.http_port, "/off/headers")
    assert off.seen_values("x-marker") == ["1"], off.seen()
    assert off.seen_values("x-request-id") == [], \
        "request_id = false still added one: %s" % off.seen()
    plain = get(relay.http_port, "/headers")
    assert plain.seen_values("x-request-id") == [], \
        "a route without a headers policy added X-Request-Id: %s" % plain.seen()


# -- 5: redirect, https_only ------------------------------------------------------------------

def test_redirect_answers_with_the_templated_location(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path,
                        site(["old.test"], [to(b, policies=[
                            policy("redirect", to="https://new.example.com{uri}", status=301)])])
                        + site(["tmpl.test"], [to(b, policies=[
                            policy("redirect", to="https://{host}/moved{path}{query}")])]))
    cases = [
        ("old.test", "/a/b?x=1&y=2", 301, "https://new.example.com/a/b?x=1&y=2"),
        ("old.test", "/", 301, "https://new.example.com/"),
        ("tmpl.test:%d" % relay.http_port, "/p/q?z=1", 308, "https://tmpl.test/moved/p/q?z=1"),
        ("tmpl.test", "/p", 308, "https://tmpl.test/moved/p"),
    ]
    for host, path, status, location in cases:
        a = get(relay.http_port, path, host=host)
        assert (a.status, a.header("Location")) == (status, location), (host, path, a)
    assert b.requests() == 0


def test_https_only_redirects_a_plain_http_visitor(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, 'trusted_proxies = ["127.0.0.1/32"]\n'
                        + site([HOST], [to(b)], policies=[policy("https_only")])
                        + site(["perm.test"], [to(b)], policies=[policy("https_only", status=301)]))
    a = get(relay.http_port, "/a/b?c=d", source="127.0.0.2")
    assert (a.status, a.header("Location")) == (308, "https://%s/a/b?c=d" % HOST), a
    a = get(relay.http_port, "/x", host="perm.test", source="127.0.0.2")
    assert (a.status, a.header("Location")) == (301, "https://perm.test/x"), a
    # the visitor used https at a trusted TLS-terminating balancer: served
    a = get(relay.http_port, "/lb", source="127.0.0.1", headers=[("X-Forwarded-Proto", "https")])
    assert a.status == 200 and a.text == "b GET /lb\n", a
    # anyone else saying so is not believed
    a = get(relay.http_port, "/lb", source="127.0.0.2", headers=[("X-Forwarded-Proto", "https")])
    assert a.status == 308, a
    assert b.requests() == 1


def test_https_only_serves_a_visitor_on_the_relays_https_listener(group, tmp_path, backend):
    b = backend("b")
    cert, key = make_cert(tmp_path, HOST)
    https_port = free_port()
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[policy("https_only")])]),
                        "--https-addr", "127.0.0.1:%d" % https_port,
                        "--tls-cert", str(cert), "--tls-key", str(key))
    wait_until(lambda: accepts(https_port), 10, message="the relay's https listener")
    r = curl("https://%s:%d/x?y=1" % (HOST, https_port), "--cacert", str(cert))
    assert r.status == 200 and r.body == b"b GET /x?y=1\n", r
    r = curl("http://%s:%d/x?y=1" % (HOST, relay.http_port), "-D", "-")
    assert r.status == 308, r
    m = re.search(rb"(?im)^location: (\S+)\r?$", r.body)
    assert m and re.fullmatch(r"https://%s(:%d)?/x\?y=1" % (re.escape(HOST), https_port),
                              m.group(1).decode()), r.body
    assert b.requests() == 1


# -- 6: respond ------------------------------------------------------------------------------

def test_respond_answers_itself_and_never_contacts_the_backend(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [
        to(b, path="/maint", policies=[policy("respond", status=503, body="down for maintenance",
                                              content_type="text/plain")]),
        to(b, path="/empty", policies=[policy("respond")]),
        to(b)]))
    r = curl("http://%s:%d/maint/page?q=1" % (HOST, relay.http_port))
    assert (r.status, r.body) == (503, b"down for maintenance"), r
    # head and body in one write: the answer is the relay's own, whatever it does with the body
    a = raw(relay.http_port, b"POST /maint HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n%s"
            % (HOST.encode(), b"x" * 100))
    assert (a.status, a.body, a.header("Content-Type")) == (
        503, b"down for maintenance", "text/plain"), a
    a = get(relay.http_port, "/empty")
    assert (a.status, a.body, a.header("Content-Type")) == (
        200, b"", "text/plain; charset=utf-8"), "respond's defaults: %r" % a
    assert b.requests() == 0, "a respond route reached the backend"
    a = get(relay.http_port, "/other")  # the control: the site's other route does reach it
    assert a.status == 200 and a.backend == "b", a
    assert b.requests() == 1


UTF8_BODY = "Grüße, Zoë: пример 東京 😀"


def test_a_utf8_config_file_is_read_in_every_string_form(group, tmp_path):
    """UTF-8 in comments and in each of TOML's four string forms reaches visitors as written."""
    forms = {"basic": '"%s"', "literal": "'%s \\ \"q\"'", "multi": '"""\n%s"""',
             "multi-literal": "'''\n%s \\ \"q\"'''"}
    text = "# Relay of the café, Zoë's 東京 office 😀\n[[sites]]\nhosts = [\"%s\"]\n" % HOST
    for path, form in forms.items():
        text += ('[[sites.routes]]  # ещё\npath = "/%s"\nupstream = ["http://127.0.0.1:1"]\n'
                 '[[sites.routes.policies]]\ntype = "respond"\nbody = %s\n' % (path, form % UTF8_BODY))
    config = tmp_path / "relay.toml"
    config.write_bytes(text.encode("utf-8"))
    relay = group.relay("--config", str(config))
    got = {path: get(relay.http_port, "/" + path).body.decode("utf-8") for path in forms}
    assert got == {"basic": UTF8_BODY, "literal": UTF8_BODY + ' \\ "q"', "multi": UTF8_BODY,
                   "multi-literal": UTF8_BODY + ' \\ "q"'}, got


REFUSED_TEXT = {  # case: (file, line, what the relay says)
    "invalid_utf8": (b'# \xc3\xa9\ndomain = "localhost"  # caf\xe9\n', 2, "invalid UTF-8"),
    "outside_quotes": (b'# \xc3\xa9\ndomain = "\xc3\xa9.localhost"\nlease_grace = 1\xc2\xa0\n', 3,
                       "U+00A0 outside quotes"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_TEXT))
def test_a_config_file_with_invalid_utf8_or_text_beyond_ascii_outside_quotes_is_refused(tmp_path, case):
    text, line, needle = REFUSED_TEXT[case]
    path = tmp_path / ("%s.toml" % case)
    path.write_bytes(text)
    stderr = refused_at_start(path)
    assert "%s:%d: %s" % (path, line, needle) in stderr, stderr


# -- 7: max_body ----------------------------------------------------------------------------

def post_head(size):
    return b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (
        HOST.encode(), size)


def test_max_body_refuses_a_declared_oversize_body_before_it_goes_upstream(
        group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        policy("max_body", size="1KiB")])]))
    a = raw(relay.http_port, post_head(2048) + b"x" * 2048)
    assert a.status == 413, a
    a = raw(relay.http_port, post_head(2048))  # the head alone: Content-Length decides
    assert a.status == 413, a
    assert b.requests() == 0, "the backend saw an oversize body"
    for size in (512, 1024):
        a = raw(relay.http_port, post_head(size) + b"y" * size)
        assert (a.status, a.body) == (200, b"b POST /upload\n"), (size, a)
    assert b.requests() == 2


def test_max_body_cuts_a_chunked_body_where_it_passes_the_size(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        policy("max_body", size="1KiB")])]))
    head = b"POST /upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % HOST.encode()
    chunk = b"200\r\n" + b"z" * 0x200 + b"\r\n"
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=5) as s:
        s.sendall(head)
        for _ in range(4):  # 2 KiB in 512-byte chunks, one write each
            try:
                s.sendall(chunk)
            except OSError:
                break
        r = http.client.HTTPResponse(s, method="POST")
        r.begin()
        assert r.status == 413, (r.status, r.read())
    # The same body in the head's packet: judged before anything goes upstream.
    a = raw(relay.http_port, head + chunk * 4 + b"0\r\n\r\n")
    assert a.status == 413, a
    a = raw(relay.http_port, head + chunk + b"0\r\n\r\n")
    assert (a.status, a.body) == (200, b"b POST /upload\n"), a


def test_rewrite_changes_the_path_the_backend_sees_and_keeps_the_query(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [
        to(b, path="/api", policies=[policy("rewrite", strip_prefix="/api", add_prefix="/v2")]),
        to(b, path="/shop", strip_prefix=True, policies=[
            policy("rewrite", **{"from": "^/item/(\\d+)$", "to": "/products/\\1"})]),
        to(b, policies=[policy("rewrite", **{"from": "^/(a+)+$", "to": "/many-a"})])]))
    cases = {
        "/api/orders?x=1": "/v2/orders?x=1",
        "/api": "/v2",
        "/shop/item/42?ref=mail": "/products/42?ref=mail",
        "/shop/other": "/other",
        "/" + "a" * 3000: "/many-a",  # linear time: RE2 does not backtrack
        "/" + "a" * 3000 + "b": "/" + "a" * 3000 + "b",
    }
    for sent, seen in cases.items():
        a = get(relay.http_port, sent)
        assert (a.status, a.body) == (200, b"b GET " + seen.encode() + b"\n"), (sent, a)


# -- 8: order --------------------------------------------------------------------------------

def test_site_policies_run_before_route_policies_and_each_in_the_order_written(
        group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path,
                        site(["deny.test"], [
                            to(b, path="/api", policies=[policy("respond", body="route answered")]),
                            to(b, policies=[policy("respond", body="route answered")])],
                            policies=[policy("ip_deny", cidrs=["127.0.0.1/32"])])
                        + site(["order.test"], [
                            to(b, path="/respond-first", policies=[
                                policy("respond", status=503, body="first"),
                                policy("ip_deny", cidrs=["127.0.0.0/8"])]),
                            to(b, path="/deny-first", policies=[
                                policy("ip_deny", cidrs=["127.0.0.0/8"]),
                                policy("respond", status=503, body="second")]),
                            to(b)]))
    got = {
        "site deny, route /api": get(relay.http_port, "/api/x", host="deny.test").status,
        "site deny, catch-all route": get(relay.http_port, "/x", host="deny.test").status,
        "respond then deny": get(relay.http_port, "/respond-first", host="order.test").status,
        "deny then respond": get(relay.http_port, "/deny-first", host="order.test").status,
    }
    assert got == {"site deny, route /api": 403, "site deny, catch-all route": 403,
                   "respond then deny": 503, "deny then respond": 403}
    a = get(relay.http_port, "/x", host="deny.test", source="127.0.0.2")
    assert (a.status, a.body) == (200, b"route answered"), "not denied, the route answers: %r" % a
    assert b.requests() == 0


# -- 9: kept-alive connections -----------------------------------------------------------------

def test_a_policy_answer_keeps_the_connection_and_the_next_request_is_judged_again(
        group, tmp_path, backend, make_agent):
    b, tun = backend("b"), backend("tun")
    line = sha_crypt_line("alice", "s3cret")
    auth = policy("basic_auth", users=[line])
    relay = start_relay(group, tmp_path,
                        site([HOST], [to(b, policies=[auth])])
                        + site(["limited.test"], [to(b, policies=[
                            policy("rate_limit", rate="1/h", burst=2)])])
                        + tunnel_policies(auth))
    make_agent(relay, "http", tun.port, "--subdomain", "alpha")
    good = [("Authorization", basic("alice", "s3cret"))]

    c = KeptAlive(relay.http_port)
    got = [c.get("/1").status, c.get("/2", good).status, c.get("/3").status,
           c.get("/4", good).status]
    c.close()
    assert got == [401, 200, 401, 200], c.answers

    c = KeptAlive(relay.http_port, host="limited.test")
    got = [c.get("/r%d" % i).status for i in range(4)]
    c.close()
    assert got == [200, 200, 429, 429], c.answers

    # through a tunnel: the data connection held for the visitor lets no request past the check
    c = KeptAlive(relay.http_port, host="alpha.localhost")
    got = [c.get("/t1", good).status, c.get("/t2").status, c.get("/t3", good).status]
    c.close()
    assert got == [200, 401, 200], c.answers
    assert tun.requests() == 2 and b.requests() == 4


# -- config errors ---------------------------------------------------------------------------

# "#<" marks the lines an error may point at (the offending key, or its table's header).
SITE = '[[sites]]\nhosts = ["shop.test"]\n[[sites.routes]]\nupstream = ["http://127.0.0.1:1"]\n'
CONFIG_ERRORS = {
    "unknown_type": ("ip_alow", SITE + """
[[sites.routes.policies]]  #<
type = "ip_alow"  #<
cidrs = ["10.0.0.0/8"]
"""),
    "unknown_key": ("cidrs", SITE + """
[[sites.routes.policies]]  #<
type = "ip_deny"
cidr = ["10.0.0.0/8"]  #<
"""),
    "bad_cidr": ("10.0.0.0/33", SITE + """
[[sites.routes.policies]]  #<
type = "ip_allow"
cidrs = ["10.0.0.0/8", "10.0.0.0/33"]  #<
"""),
    "bad_rate": ("100/week", SITE + """
[[sites.routes.policies]]  #<
type = "rate_limit"
rate = "100/week"  #<
"""),
    "bad_rate_key": ("cookie:x", SITE + """
[[sites.routes.policies]]  #<
type = "rate_limit"
rate = "10/s"
key = "cookie:x"  #<
"""),
    "redirect_status_200": ("status", SITE + """
[[sites.routes.policies]]  #<
type = "redirect"
to = "https://new.example.com{uri}"
status = 200  #<
"""),
    "redirect_without_to": ("", SITE + """
[[sites.routes.policies]]  #<
type = "redirect"  #<
status = 301  #<
"""),
    "max_body_bad_size": ("ten", SITE + """
[[sites.routes.policies]]  #<
type = "max_body"
size = "ten"  #<
"""),
    "basic_auth_plaintext_user": ("", SITE + """
[[sites.routes.policies]]  #<
type = "basic_auth"
users = [  #<
  "carol:plain",  #<
]  #<
"""),
    "basic_auth_missing_file": ("/nonexistent/porthole-test.htpasswd", SITE + """
[[sites.routes.policies]]  #<
type = "basic_auth"
htpasswd_file = "/nonexistent/porthole-test.htpasswd"  #<
"""),
    "basic_auth_without_users": ("", SITE + """
[[sites.routes.policies]]  #<
type = "basic_auth"  #<
realm = "nobody"  #<
"""),
    "headers_set_host": ("Host", SITE + """
[[sites.routes.policies]]  #<
type = "headers"
request_set = { "X-Ok" = "1", Host = "evil.example" }  #<
"""),
    "headers_remove_content_length": ("Content-Length", SITE + """
[[sites.routes.policies]]  #<
type = "headers"
response_remove = ["X-Powered-By", "content-length"]  #<
"""),
    "headers_add_transfer_encoding": ("Transfer-Encoding", SITE + """
[[sites.routes.policies]]  #<
type = "headers"
request_add = { "Transfer-Encoding" = "chunked" }  #<
"""),
    "headers_set_connection": ("Connection", SITE + """
[[sites.routes.policies]]  #<
type = "headers"
response_set = { Connection = "close" }  #<
"""),
    "site_policy_bad": ("198.51.100.0/", """
[[sites]]
hosts = ["shop.test"]
[[sites.policies]]  #<
type = "ip_deny"
cidrs = ["198.51.100.0/"]  #<
[[sites.routes]]
upstream = ["http://127.0.0.1:1"]
"""),
    "tunnel_policy_bad": ("nonsense", """
[[tunnel_policy.policies]]  #<
type = "ip_deny"
cidrs = ["nonsense"]  #<
"""),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_a_bad_policy_table_is_refused_naming_file_and_line(tmp_path, case):
    needle, text = CONFIG_ERRORS[case]
    assert_refused_at_marked_line(tmp_path / ("%s.toml" % case), text, needle)


def test_porthole_help_policies_names_every_policy():
    r = subprocess.run([BIN, "help", "policies"], capture_output=True, text=True, timeout=5,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r
    missing = [word for word in (
        "ip_allow", "ip_deny", "basic_auth", "rate_limit", "headers", "redirect", "https_only",
        "respond", "max_body", "rewrite", "tunnel_policy", "htpasswd_file", "forward_auth_header", "burst",
        "request_set", "response_remove", "request_id") if word not in r.stdout]
    assert not missing, "`porthole help policies` does not mention %s:\n%s" % (missing, r.stdout)
