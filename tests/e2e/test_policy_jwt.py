"""The jwt policy (docs/policies.md): bearer JWTs checked on the relay against a JWK Set file, a
JWK Set URL (fetched, refreshed, kept when a refresh fails) or an HS256 secret, on a backend site,
a site route to a tunnel and [tunnel_policy].

Every key and token is made here with PyJWT and python3-cryptography (Debian packages python3-jwt,
python3-cryptography; scripts/install-deps), the `alg: none` token by hand. Claims reach the
backend as header fields, which its /headers page echoes. The JWK Set URL is served by a small
HTTP server on loopback whose key set and failures the test changes.

Readings of docs/policies.md taken here:
  * "no key for kid" is what a kid the key set lacks gets; a token without a kid that no key
    verifies gets "signature".
  * a token within the leeway of exp or nbf passes; one outside it does not.
  * the relay's own stderr is where "the relay never logs a token" is checked.
"""
import base64
import http.server
import json
import re
import subprocess
import threading
import time

import pytest

jwt = pytest.importorskip("jwt", reason="PyJWT is not installed (Debian: python3-jwt)")
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm  # noqa: E402

from helpers import BIN, wait_until  # noqa: E402
from test_policies import (  # noqa: E402
    HOST, KeptAlive, assert_refused_at_marked_line, get, policy, refused_at_start, site,
    start_relay, to, tunnel_policies)

ISSUER = "https://idp.test/"
AUDIENCE = "shop-api"
SECRET = "an HS256 secret that is longer than thirty-two bytes"


# -- keys and tokens ----------------------------------------------------------------------------

class Key:
    def __init__(self, alg, kid):
        self.alg, self.kid = alg, kid
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.jwk = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        self.jwk["kid"] = kid


@pytest.fixture(scope="module")
def keys():
    return {name: Key(alg, name) for name, alg in (
        ("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA"),
        ("rsa-other", "RS256"), ("ed-next", "EdDSA"))}


def jwks(*ks):
    return json.dumps({"keys": [k.jwk for k in ks]})


def claims(**changes):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "email": "alice@example.com",
         "iat": now, "nbf": now - 5, "exp": now + 300}
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def signed(key, kid="same", alg=None, **changes):
    """A token signed by `key`, its header naming key.kid (kid="same"), another kid, or none."""
    headers = {} if kid is None else {"kid": key.kid if kid == "same" else kid}
    return jwt.encode(claims(**changes), key.private, algorithm=alg or key.alg, headers=headers)


def hs256(secret=SECRET, **changes):
    return jwt.encode(claims(**changes), secret, algorithm="HS256")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(**changes):
    """`alg: none`, built by hand (PyJWT will not check one, and must not be trusted to make one)."""
    return "%s.%s." % (b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()),
                       b64(json.dumps(claims(**changes)).encode()))


def ask(port, token=None, host=HOST, path="/headers", headers=(), scheme="Bearer"):
    h = list(headers)
    if token is not None:
        h.append(("Authorization", "%s %s" % (scheme, token)))
    return get(port, path, host=host, headers=h)


def error_of(answer):
    """(error, error_description) of a 401's `WWW-Authenticate: Bearer ...`; (None, None) for a
    bare `Bearer` challenge."""
    challenge = answer.header("WWW-Authenticate") or ""
    assert challenge.startswith("Bearer"), answer
    error = re.search(r'error="([^"]*)"', challenge)
    description = re.search(r'error_description="([^"]*)"', challenge)
    return (error.group(1) if error else None, description.group(1) if description else None)


def jwt_policy(**keys):
    settings = {"issuer": ISSUER, "audience": AUDIENCE,
                "claims_to_headers": {"sub": "X-User", "email": "X-Email"}}
    settings.update(keys)
    return policy("jwt", **settings)


def assert_no_token_logged(relay, tokens):
    log = relay.proc.stderr_text()
    for t in tokens:
        for part in t.split("."):
            if len(part) > 20:
                assert part not in log, "the relay logged a token:\n%s" % log


# -- a JWK Set server ----------------------------------------------------------------------------

class JwksServer:
    """Serves `body` at /jwks.json; `status` other than 200 answers that instead. Counts fetches."""

    def __init__(self, body):
        self.body, self.status, self.fetches = body, 200, 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.fetches += 1
                    status, body = outer.status, outer.body
                data = body.encode() if status == 200 else b"unavailable\n"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/jwks.json" % self.port

    def set(self, body=None, status=None):
        with self.lock:
            if body is not None:
                self.body = body
            if status is not None:
                self.status = status

    def count(self):
        with self.lock:
            return self.fetches

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server():
    started = []

    def make(body):
        s = JwksServer(body)
        started.append(s)
        return s

    yield make
    for s in started:
        s.close()


# -- 1: valid tokens -------------------------------------------------------------------------------

def test_valid_tokens_of_each_algorithm_pass_and_their_claims_reach_the_backend(
        group, tmp_path, backend, keys):
    b = backend("b")
    (tmp_path / "keys.json").write_text(jwks(keys["rsa"], keys["ec"], keys["ed"]))
    relay = start_relay(group, tmp_path,
                        site([HOST], [to(b)], policies=[jwt_policy(jwks_file="keys.json")])
                        + site(["hs.test"], [to(b)], policies=[jwt_policy(secret=SECRET)])
                        + site(["hidden.test"], [to(b)], policies=[
                            jwt_policy(jwks_file="keys.json", forward_token=False)]))
    tokens = []
    for name in ("rsa", "ec", "ed"):
        for kid in ("same", None):  # with its kid, and without one (each key of the type tried)
            t = signed(keys[name], kid=kid)
            tokens.append(t)
            a = ask(relay.http_port, t, headers=[("X-User", "mallory"), ("x-email", "m@evil")])
            assert a.status == 200, (name, kid, a)
            assert a.seen_values("x-user") == ["alice"], a.seen()
            assert a.seen_values("x-email") == ["alice@example.com"], a.seen()
            assert a.seen_values("authorization") == ["Bearer " + t], a.seen()
    t = hs256()
    a = ask(relay.http_port, t, host="hs.test", headers=[("X-User", "mallory")])
    assert a.status == 200, a
    assert a.seen_values("x-user") == ["alice"], a.seen()
    # A claim the token lacks: the visitor's own field of that name still goes.
    t2 = signed(keys["ed"], email=None)
    a = ask(relay.http_port, t2, host="hidden.test", headers=[("X-Email", "m@evil")])
    assert a.status == 200, a
    assert a.seen_values("x-email") == [], a.seen()
    assert a.seen_values("authorization") == [], "forward_token = false: %s" % a.seen()
    assert b.requests() == 8
    assert_no_token_logged(relay, tokens + [t, t2])


# -- 2: refused tokens -----------------------------------------------------------------------------

def test_each_failed_check_is_a_401_naming_it_and_nothing_reaches_the_backend(
        group, tmp_path, backend, keys):
    b = backend("b")
    (tmp_path / "keys.json").write_text(jwks(keys["rsa"], keys["ec"], keys["ed"]))
    relay = start_relay(group, tmp_path, site([HOST], [to(b)], policies=[
        jwt_policy(jwks_file="keys.json", leeway="30s")]))
    now = int(time.time())
    other = keys["rsa-other"]
    cases = {
        "expired": (signed(keys["rsa"], exp=now - 60), "expired"),
        "expired long ago": (signed(keys["ec"], exp=now - 86400, nbf=now - 90000), "expired"),
        "not valid yet": (signed(keys["ed"], nbf=now + 120), "not yet valid"),
        "wrong audience": (signed(keys["rsa"], aud="other-api"), "audience"),
        "no audience": (signed(keys["rsa"], aud=None), "audience"),
        "wrong issuer": (signed(keys["ec"], iss="https://evil.test/"), "issuer"),
        "another key, a known kid": (signed(other, kid="rsa"), "signature"),
        "another key, no kid": (signed(other, kid=None), "signature"),
        "a kid the set lacks": (signed(other), "no key for kid"),
        "alg none": (unsigned(), "algorithm"),
        "alg none with a kid": ("%s.%s." % (b64(json.dumps(
            {"alg": "none", "kid": "rsa"}).encode()), b64(json.dumps(claims()).encode())),
            "algorithm"),
        "HS256 is not allowed here": (hs256(), "algorithm"),
        "HS256 keyed with the RSA key's public JWK": (
            jwt.encode(claims(), json.dumps(keys["rsa"].jwk), algorithm="HS256",
                       headers={"kid": "rsa"}), "algorithm"),
        "not a JWT": ("not-a-jwt", "malformed"),
        "two parts": (".".join(signed(keys["rsa"]).split(".")[:2]), "malformed"),
    }
    answers = {what: ask(relay.http_port, t) for what, (t, _) in cases.items()}
    got = {what: (a.status,) + error_of(a) for what, a in answers.items()}
    want = {what: (401, "invalid_token", why) for what, (_, why) in cases.items()}
    assert got == want
    # The same key set, within the leeway: passes.
    assert ask(relay.http_port, signed(keys["rsa"], exp=now - 10)).status == 200
    assert ask(relay.http_port, signed(keys["ed"], nbf=now + 10)).status == 200
    assert b.requests() == 2
    # No token, or another scheme: a bare challenge (RFC 6750 section 3.1).
    for a in (ask(relay.http_port), ask(relay.http_port, "YTpi", scheme="Basic")):
        assert a.status == 401 and a.header("WWW-Authenticate") == "Bearer", a
        assert a.backend is None
    assert b.requests() == 2
    assert_no_token_logged(relay, [t for t, _ in cases.values()])


# -- 3: through a tunnel ---------------------------------------------------------------------------

def test_jwt_on_tunnel_policies_and_on_a_site_route_to_a_tunnel(
        group, tmp_path, backend, make_agent, keys):
    tun = backend("tun")
    (tmp_path / "keys.json").write_text(jwks(keys["ec"], keys["ed"]))
    relay = start_relay(group, tmp_path, site(
        [HOST], [{"upstream": ["tunnel:alpha"],
                  "policies": [jwt_policy(secret=SECRET, audience="site-api")]}])
        + tunnel_policies(jwt_policy(jwks_file="keys.json")))
    make_agent(relay, "http", tun.port, "--subdomain", "alpha")
    tunnel_host = "alpha.localhost"
    a = ask(relay.http_port, signed(keys["ec"]), host=tunnel_host, headers=[("X-User", "m")])
    assert a.status == 200 and a.backend == "tun" and a.seen_values("x-user") == ["alice"], a
    a = ask(relay.http_port, signed(keys["ec"], aud="site-api"), host=tunnel_host)
    assert (a.status,) + error_of(a) == (401, "invalid_token", "audience"), a
    a = ask(relay.http_port, hs256(aud="site-api"), host=HOST)
    assert a.status == 200 and a.seen_values("x-user") == ["alice"], a
    a = ask(relay.http_port, hs256(), host=HOST)  # audience shop-api, the route wants site-api
    assert (a.status,) + error_of(a) == (401, "invalid_token", "audience"), a
    a = ask(relay.http_port, signed(keys["ed"]), host=HOST)  # the tunnel's keys are not the route's
    assert a.status == 401, a
    assert tun.requests() == 2

    # A refused request leaves the visitor's connection open, and the next one is judged again.
    for host in (tunnel_host, HOST):
        conn = KeptAlive(relay.http_port, host=host)
        good = signed(keys["ed"]) if host == tunnel_host else hs256(aud="site-api")
        assert conn.get("/headers").status == 401
        assert conn.get("/headers", [("Authorization", "Bearer " + good)]).status == 200
        assert conn.get("/headers", [("Authorization", "Bearer " + unsigned())]).status == 401
        assert conn.get("/headers", [("Authorization", "Bearer " + good)]).status == 200
        conn.close()
    assert tun.requests() == 6


# -- 4: a JWK Set URL ---------------------------------------------------------------------------------

def test_jwks_url_is_refreshed_and_a_failing_server_keeps_the_old_keys(
        group, tmp_path, backend, jwks_server, keys):
    b = backend("b")
    server = jwks_server(jwks(keys["ed"]))
    relay = start_relay(group, tmp_path, site([HOST], [to(b)], policies=[
        jwt_policy(jwks_url=server.url, jwks_refresh="1s")]))
    first, second = keys["ed"], keys["ed-next"]

    def status(key):
        return ask(relay.http_port, signed(key)).status

    wait_until(lambda: status(first) == 200, 10, message="the first key set to be fetched")
    a = ask(relay.http_port, signed(second))
    assert (a.status,) + error_of(a) == (401, "invalid_token", "no key for kid"), a

    server.set(jwks(second))  # the issuer rotates its key
    wait_until(lambda: status(second) == 200, 10, message="the rotated key set")
    a = ask(relay.http_port, signed(first))
    assert (a.status,) + error_of(a) == (401, "invalid_token", "no key for kid"), a

    server.set(status=503)  # refreshes fail: the keys the relay has stay
    failing_from = server.count()
    wait_until(lambda: server.count() >= failing_from + 3, 15,
               message="the relay to try the failing JWK Set server again")
    assert status(second) == 200
    assert status(first) == 401
    server.set(body="{\"keys\": [] }", status=200)  # a set with no usable key is a failure too
    empty_from = server.count()
    wait_until(lambda: server.count() >= empty_from + 2, 15)
    assert status(second) == 200
    server.close()  # and so is a server that is gone
    wait_until(lambda: "Connection refused" in relay.proc.stderr_text(), 15,
               message="the relay to try the JWK Set server that is gone")
    assert status(second) == 200
    log = relay.proc.stderr_text()
    assert "503" in log and server.url in log, log
    assert "keeping the 1 key it had" in log, log


def test_jwks_url_failing_at_start_answers_no_keys_until_a_fetch_succeeds(
        group, tmp_path, backend, jwks_server, keys):
    b = backend("b")
    server = jwks_server(jwks(keys["rsa"]))
    server.set(status=500)
    relay = start_relay(group, tmp_path, site([HOST], [to(b)], policies=[
        jwt_policy(jwks_url=server.url, jwks_refresh="1h")]))
    wait_until(lambda: server.count() >= 1, 10, message="the first fetch")
    a = ask(relay.http_port, signed(keys["rsa"]))
    assert (a.status,) + error_of(a) == (401, "invalid_token", "no keys"), a
    assert b.requests() == 0
    server.set(status=200)
    # Retried with backoff (1 s, 2 s, ...), not after the hour jwks_refresh says.
    wait_until(lambda: ask(relay.http_port, signed(keys["rsa"])).status == 200, 15,
               message="the retried fetch")
    assert "401 until a fetch succeeds" in relay.proc.stderr_text()


def test_jwks_url_shared_by_the_routes_that_name_it_is_fetched_once(
        group, tmp_path, backend, jwks_server, keys):
    b = backend("b")
    server = jwks_server(jwks(keys["ec"]))
    relay = start_relay(group, tmp_path,
                        site([HOST], [to(b)], policies=[jwt_policy(jwks_url=server.url)])
                        + site(["two.test"], [to(b)], policies=[jwt_policy(jwks_url=server.url)])
                        + tunnel_policies(jwt_policy(jwks_url=server.url)))
    wait_until(lambda: ask(relay.http_port, signed(keys["ec"])).status == 200, 10)
    assert ask(relay.http_port, signed(keys["ec"]), host="two.test").status == 200
    assert server.count() == 1


# -- 5: config errors -----------------------------------------------------------------------------

SITE = """
[[sites]]
hosts = ["shop.test"]
[[sites.routes]]
upstream = ["http://127.0.0.1:1"]
"""

CONFIG_ERRORS = {
    # name: (a word the error must hold, the config; the line marked #< is the one to name)
    "unknown_algorithm": ("PS256", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_url = "https://idp.test/jwks.json"
algorithms = ["RS256", "PS256"]  #<
"""),
    "alg_none": ("none", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_url = "https://idp.test/jwks.json"
algorithms = ["none"]  #<
"""),
    "bad_jwks_file": ("no key", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_file = "bad_keys.json"  #<
"""),
    "jwks_file_not_json": ("not JSON", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_file = "broken_keys.json"  #<
"""),
    "missing_jwks_file": ("cannot open", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_file = "no_such_keys.json"  #<
"""),
    "jwks_url_not_http": ("ftp://", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_url = "ftp://idp.test/jwks.json"  #<
"""),
    "no_key_source": ("jwks_file", SITE + """
[[sites.routes.policies]]  #<
type = "jwt"
issuer = "https://idp.test/"
"""),
    "two_key_sources": ("one of", SITE + """
[[sites.routes.policies]]  #<
type = "jwt"
jwks_file = "keys.json"
jwks_url = "https://idp.test/jwks.json"
"""),
    "secret_with_rs256": ("HS256 only", """
[[tunnel_policy.policies]]
type = "jwt"
secret = "an HS256 secret that is longer than thirty-two bytes"
algorithms = ["HS256", "RS256"]  #<
"""),
    "hs256_without_secret": ("secret", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_url = "https://idp.test/jwks.json"
algorithms = ["HS256"]  #<
"""),
    "short_secret": ("32", SITE + """
[[sites.routes.policies]]
type = "jwt"
secret = "hunter2"  #<
"""),
    "claim_to_host": ("Host", SITE + """
[[sites.routes.policies]]
type = "jwt"
jwks_url = "https://idp.test/jwks.json"
claims_to_headers = { sub = "Host" }  #<
"""),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_a_bad_jwt_table_is_refused_naming_file_and_line(tmp_path, keys, case):
    needle, text = CONFIG_ERRORS[case]
    (tmp_path / "keys.json").write_text(jwks(keys["ed"]))
    (tmp_path / "bad_keys.json").write_text(json.dumps(
        {"keys": [{"kty": "oct", "k": b64(b"x" * 32)}, {"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}))
    (tmp_path / "broken_keys.json").write_text('{"keys": [')
    assert_refused_at_marked_line(tmp_path / ("%s.toml" % case), text, needle)


def test_a_jwks_url_whose_host_does_not_resolve_stops_the_start(tmp_path):
    path = tmp_path / "relay.toml"
    path.write_text(SITE.lstrip("\n") + """
[[sites.routes.policies]]
type = "jwt"
jwks_url = "https://jwks.porthole-test.invalid/jwks.json"
""")
    stderr = refused_at_start(path)
    assert "jwks.porthole-test.invalid" in stderr, stderr


def test_porthole_help_policies_describes_jwt():
    r = subprocess.run([BIN, "help", "policies"], capture_output=True, text=True, timeout=5,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r
    missing = [w for w in ("jwt", "jwks_file", "jwks_url", "jwks_refresh", "issuer", "audience",
                           "algorithms", "leeway", "secret", "claims_to_headers", "forward_token",
                           "EdDSA") if w not in r.stdout]
    assert not missing, "`porthole help policies` does not mention %s:\n%s" % (missing, r.stdout)
