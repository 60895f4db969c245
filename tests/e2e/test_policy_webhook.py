"""The verify_webhook policy (docs/policies.md): each provider's signature is computed here from
its documented algorithm with Python's hmac module, and sent to a relay in front of backends.py
backends, which count every request and keep every body as it arrived on the wire.

  github    X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(secret, body))
  stripe    Stripe-Signature: t=TS,v1=HEX(HMAC-SHA256(secret, TS + "." + body)), |now - TS| <= tolerance
  slack     X-Slack-Signature: v0=HEX(HMAC-SHA256(secret, "v0:" + TS + ":" + body)),
            X-Slack-Request-Timestamp: TS within the tolerance
  shopify   X-Shopify-Hmac-Sha256: BASE64(HMAC-SHA256(secret, body))
  twilio    X-Twilio-Signature: BASE64(HMAC-SHA1(token, URL + name + value of each form field, sorted))
  hmac      a configured field, digest, encoding and prefix over the body

Readings taken where docs/policies.md leaves room: a refused request's 401 body names the failed
check in the words the docs list; the backend's /requests count is what "never reaches the
upstream" is measured by.
"""
import base64
import hashlib
import hmac
import http.client
import secrets
import socket
import subprocess
import time
import urllib.parse

import pytest

from helpers import BIN, RawOrigin, Relay, wait_until
from test_policies import (HOST, assert_refused_at_marked_line, exchange, get, policy,
                           refused_at_start, site, start_relay, to, tunnel_policies)

# Unique, so that finding it anywhere in the relay's output means it leaked.
SECRET = "whsec_e2e_" + secrets.token_hex(12)


def mac(secret, data, digest=hashlib.sha256):
    return hmac.new(secret.encode(), data, digest)


def unix_now():
    return int(time.time())


# -- signers: (secret, body, url, now) -> header fields ------------------------------------

def sign_github(secret, body, url, now):
    return [("X-Hub-Signature-256", "sha256=" + mac(secret, body).hexdigest())]


def sign_stripe(secret, body, url, now):
    t = str(now)
    return [("Stripe-Signature",
             "t=%s,v1=%s" % (t, mac(secret, t.encode() + b"." + body).hexdigest()))]


def sign_slack(secret, body, url, now):
    t = str(now)
    return [("X-Slack-Request-Timestamp", t),
            ("X-Slack-Signature",
             "v0=" + mac(secret, b"v0:" + t.encode() + b":" + body).hexdigest())]


def sign_shopify(secret, body, url, now):
    return [("X-Shopify-Hmac-Sha256", base64.b64encode(mac(secret, body).digest()).decode())]


def twilio_signature(secret, url, body):
    """Twilio's algorithm as its Python library computes it: the URL, then for each field name in
    order each distinct value in order, name and value concatenated."""
    fields = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
    text = url + "".join(k + v for k, v in sorted(set(fields)))
    return base64.b64encode(mac(secret, text.encode(), hashlib.sha1).digest()).decode()


def sign_twilio(secret, body, url, now):
    return [("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", twilio_signature(secret, url, body))]


def sign_hmac(secret, body, url, now):
    return [("X-Signature",
             "sha512=" + base64.b64encode(mac(secret, body, hashlib.sha512).digest()).decode())]


JSON_BODY = b'{"action":"opened","number":42,"text":"caf\xc3\xa9 \xe2\x98\x95"}'
FORM_BODY = (b"MessageSid=SM0123&From=%2B15551230000&To=%2B15557650000&Body=Hello+there%21"
             b"&NumMedia=0&MediaUrl=&From=%2B15551230000")

PROVIDERS = {
    # name: (policy keys beside type and secret, signer, signature field, body, timestamped)
    "github": ({}, sign_github, "X-Hub-Signature-256", JSON_BODY, False),
    "stripe": ({"tolerance": "5m"}, sign_stripe, "Stripe-Signature", JSON_BODY, True),
    "slack": ({}, sign_slack, "X-Slack-Signature", FORM_BODY, True),
    "shopify": ({}, sign_shopify, "X-Shopify-Hmac-Sha256", JSON_BODY, False),
    "twilio": ({}, sign_twilio, "X-Twilio-Signature", FORM_BODY, False),
    "hmac": ({"header": "X-Signature", "algorithm": "sha512", "encoding": "base64",
              "prefix": "sha512="}, sign_hmac, "X-Signature", JSON_BODY, False),
}


def webhook(provider, **keys):
    settings = dict(PROVIDERS[provider][0])
    settings.update(keys)
    settings.setdefault("secret", SECRET)
    return policy("verify_webhook", provider=provider, **settings)


def post(port, path, body, headers, host=HOST):
    return get(port, path, host=host, method="POST", body=body, headers=headers)


def chunked(body, size=7, extension=b""):
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in pieces) + b"0\r\n\r\n"


def refused(answer, reason):
    assert answer.status == 401, answer
    assert reason in answer.text, "want %r in the 401: %r" % (reason, answer)
    assert SECRET not in answer.text
    assert answer.backend is None, answer


# -- each provider ----------------------------------------------------------------------------

@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_each_provider_passes_its_signature_and_refuses_every_other(
        group, tmp_path, backend, provider):
    _, sign, field, body, timestamped = PROVIDERS[provider]
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[webhook(provider)])]))
    path = "/hooks/%s?delivery=7" % provider
    url = "http://%s%s" % (HOST, path)  # what Twilio signs: the URL the visitor asked for
    now = unix_now()

    a = post(relay.http_port, path, body, sign(SECRET, body, url, now))
    assert (a.status, a.body) == (200, b"b POST %s\n" % path.encode()), a
    assert b.bodies() == [(path, body, body)], "the backend did not get the exact body"

    cases = [
        ("tampered body", body + b"&x=1", sign(SECRET, body, url, now),
         "signature does not match"),
        ("body cut short", body[:-1], sign(SECRET, body, url, now), "signature does not match"),
        ("wrong secret", body, sign(SECRET + "x", body, url, now), "signature does not match"),
        ("missing signature", body,
         [h for h in sign(SECRET, body, url, now) if h[0] != field], "signature header missing"),
        ("garbled signature", body,
         [(k, "%%%s" % v if k == field else v) for k, v in sign(SECRET, body, url, now)],
         # Stripe's "%t=" is no timestamp item
         "signature header malformed" if provider != "stripe" else "timestamp missing"),
    ]
    if timestamped:
        cases += [
            ("expired timestamp", body, sign(SECRET, body, url, now - 600),
             "timestamp outside the tolerance"),
            ("timestamp from the future", body, sign(SECRET, body, url, now + 600),
             "timestamp outside the tolerance"),
        ]
    if provider == "twilio":
        cases.append(("signed for another URL", body,
                      sign(SECRET, body, "http://%s/hooks/other?delivery=7" % HOST, now),
                      "signature does not match"))
    for what, sent, headers, reason in cases:
        try:
            refused(post(relay.http_port, path, sent, headers), reason)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e)) from None
    assert b.requests() == 1, "a refused request reached the backend: %r" % b.bodies()
    # Within the tolerance is fine either way.
    if timestamped:
        a = post(relay.http_port, path, body, sign(SECRET, body, url, now - 200))
        assert a.status == 200, a


def test_twilio_signs_the_configured_public_url(group, tmp_path, backend):
    """Behind a load balancer Twilio signs the public URL, not the one the relay sees; the
    visitor's query string is appended to it."""
    b = backend("b")
    public = "https://hooks.example.com/sms"
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        webhook("twilio", url=public)])]))
    path = "/internal/sms?account=7"
    a = post(relay.http_port, path, FORM_BODY, sign_twilio(SECRET, FORM_BODY, public + "?account=7",
                                                          0))
    assert a.status == 200, a
    # Twilio's libraries accept the URL with the scheme's default port too.
    a = post(relay.http_port, path, FORM_BODY,
             sign_twilio(SECRET, FORM_BODY, "https://hooks.example.com:443/sms?account=7", 0))
    assert a.status == 200, a
    refused(post(relay.http_port, path, FORM_BODY,
                 sign_twilio(SECRET, FORM_BODY, "http://%s%s" % (HOST, path), 0)),
            "signature does not match")
    assert b.requests() == 2


# -- the body on the wire -----------------------------------------------------------------------

def send(port, data, pieces=1, pause=0.02):
    """Send `data` in `pieces` writes and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
            if pieces > 1:
                time.sleep(pause)
        r = http.client.HTTPResponse(s, method="POST")
        r.begin()
        return r.status, r.read()


def read_answers(sock, count):
    """`count` responses (framed by Content-Length) from one connection, through one buffered
    reader: a reader per response could take the next one's bytes when both arrive together."""
    fp = sock.makefile("rb")
    answers = []
    for _ in range(count):
        status = int(fp.readline().split()[1])
        length = 0
        while (line := fp.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answers.append((status, fp.read(length)))
    return answers


def head(path, fields, host=HOST):
    return (b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (path.encode(), host.encode())
            + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in fields) + b"\r\n")


def test_a_chunked_body_is_judged_decoded_and_forwarded_as_framed(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[webhook("github")])]))
    body = JSON_BODY * 50
    signed = sign_github(SECRET, body, None, None) + [("Transfer-Encoding", "chunked")]
    framed = chunked(body, size=100, extension=b";x=1")
    # In one write, and trickled in many: what reaches the backend is the framing as sent.
    for pieces in (1, 12):
        status, answer = send(relay.http_port, head("/c", signed) + framed, pieces)
        assert (status, answer) == (200, b"b POST /c\n"), (pieces, status, answer)
        assert b.bodies()[-1] == ("/c", framed, body), "the backend did not get the body as framed"
    tampered = chunked(body[:-1] + b"!", size=100)
    status, answer = send(relay.http_port, head("/c", signed) + tampered, 5)
    assert status == 401 and b"signature does not match" in answer, (status, answer)
    assert b.requests() == 2


def test_a_body_over_max_body_is_refused_with_413(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[
        webhook("github", max_body="1KiB")])]))
    big = b"x" * 2048
    signed = sign_github(SECRET, big, None, None)
    # Content-Length alone decides: the body need not be sent.
    status, answer = send(relay.http_port, head("/big", signed + [("Content-Length", "2048")]))
    assert status == 413, (status, answer)
    a = post(relay.http_port, "/big", big, signed)
    assert a.status == 413, a
    # Chunked: refused where the chunks pass the size.
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=10) as s:
        s.sendall(head("/big", signed + [("Transfer-Encoding", "chunked")]))
        for _ in range(4):
            try:
                s.sendall(b"200\r\n" + b"x" * 0x200 + b"\r\n")
            except OSError:
                break
        r = http.client.HTTPResponse(s, method="POST")
        r.begin()
        assert r.status == 413, (r.status, r.read())
    status, answer = send(relay.http_port,
                          head("/big", signed + [("Transfer-Encoding", "chunked")])
                          + chunked(big, size=512))
    assert status == 413, (status, answer)
    # Exactly max_body passes.
    body = b"y" * 1024
    a = post(relay.http_port, "/fits", body, sign_github(SECRET, body, None, None))
    assert a.status == 200, a
    assert b.requests() == 1 and b.bodies()[0][2] == body


def test_expect_100_continue_is_answered_by_the_relay(group, tmp_path, backend):
    """The relay reads the body before connecting upstream, so it says 100 Continue itself (and
    the upstream does not see the Expect field the relay already answered)."""
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[webhook("github")])]))
    body = JSON_BODY
    fields = sign_github(SECRET, body, None, None) + [("Content-Length", str(len(body))),
                                                       ("Expect", "100-continue")]
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=10) as s:
        s.sendall(head("/expect", fields))
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = s.recv(4096)
            assert chunk, "the relay closed instead of sending 100 Continue"
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        s.sendall(body)
        r = http.client.HTTPResponse(s, method="POST")
        r.begin()
        assert (r.status, r.read()) == (200, b"b POST /expect\n")
    assert b.bodies() == [("/expect", body, body)]
    assert "expect" not in [k.lower() for k, _ in b.last_headers]
    # No signature: refused at once, no 100 Continue, no body read.
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=10) as s:
        s.sendall(head("/expect", fields[1:]))
        r = http.client.HTTPResponse(s, method="POST")
        r.begin()
        assert r.status == 401, (r.status, r.read())
    assert b.requests() == 1


def test_kept_alive_and_pipelined_requests_are_each_judged(group, tmp_path, backend):
    b = backend("b")
    relay = start_relay(group, tmp_path, site([HOST], [to(b, policies=[webhook("shopify")])]))
    good = sign_shopify(SECRET, JSON_BODY, None, None)
    conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=5)
    conn.connect()
    local = conn.sock.getsockname()
    got = []
    for sent in (JSON_BODY, JSON_BODY + b" ", JSON_BODY):
        assert conn.sock is not None and conn.sock.getsockname() == local, got
        got.append(exchange(conn, "/k", HOST, good, "POST", sent).status)
    conn.close()
    assert got == [200, 401, 200]
    # Two requests in one write: the first one's body ends where its Content-Length says.
    one = head("/p1", good + [("Content-Length", str(len(JSON_BODY)))]) + JSON_BODY
    two = head("/p2", good + [("Content-Length", str(len(JSON_BODY)))]) + JSON_BODY
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=10) as s:
        s.sendall(one + two)
        statuses = read_answers(s, 2)
    assert statuses == [(200, b"b POST /p1\n"), (200, b"b POST /p2\n")]
    assert [x[0] for x in b.bodies()] == ["/k", "/k", "/p1", "/p2"]
    assert all(x[1] == JSON_BODY for x in b.bodies())


def test_a_request_with_a_body_is_sent_once_and_never_again_without_it(group, tmp_path, backend):
    """An upstream that closes without answering gets the request's body; the request is not sent
    again to another member (the body went with the first try): 502. Before, a PUT whose body
    had come with its head was sent again with its head alone."""
    def close_after_the_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk

    closer = RawOrigin(close_after_the_request)
    try:
        good = backend("good")
        members = ["http://127.0.0.1:%d" % closer.port, "http://127.0.0.1:%d" % good.port]
        relay = start_relay(group, tmp_path, site([HOST], [
            {"path": "/hooks", "upstream": members, "policies": [webhook("github")]},
            {"upstream": members}]))
        body = JSON_BODY
        statuses = []
        for path in ("/hooks/a", "/hooks/b", "/plain/a", "/plain/b"):
            started = time.monotonic()
            a = get(relay.http_port, path, method="PUT", body=body,
                    headers=sign_github(SECRET, body, None, None))
            assert time.monotonic() - started < 3, "%s took %.1fs" % (path, time.monotonic() - started)
            statuses.append(a.status)
        # Round robin sends one of the first two to the closer; ejection may spare it the rest.
        assert set(statuses) == {200, 502}, statuses
        assert good.bodies() and all(b == body for _, b, _ in good.bodies()), good.bodies()
    finally:
        closer.close()


# -- through a tunnel ------------------------------------------------------------------------------

def test_through_a_tunnel(group, tmp_path, backend, make_agent):
    """[[tunnel_policy.policies]] verify every tunnel's webhooks before the data connection is used; a
    site route to tunnel:NAME runs its own."""
    tun = backend("tun")
    relay = start_relay(group, tmp_path,
                        site([HOST], [{"upstream": ["tunnel:alpha"],
                                       "policies": [webhook("slack")]}])
                        + tunnel_policies(webhook("github")))
    make_agent(relay, "http", tun.port, "--subdomain", "alpha")
    tunnel_host = "alpha.localhost"
    body = JSON_BODY * 30
    a = post(relay.http_port, "/gh", body, sign_github(SECRET, body, None, None), host=tunnel_host)
    assert (a.status, a.body) == (200, b"tun POST /gh\n"), a
    assert tun.bodies()[-1] == ("/gh", body, body)
    refused(post(relay.http_port, "/gh", body + b"x", sign_github(SECRET, body, None, None),
                 host=tunnel_host), "signature does not match")
    refused(post(relay.http_port, "/gh", body, [], host=tunnel_host), "signature header missing")
    framed = chunked(body, size=333)
    status, answer = send(relay.http_port,
                          head("/gh-chunked", sign_github(SECRET, body, None, None)
                               + [("Transfer-Encoding", "chunked")], tunnel_host) + framed, 6)
    assert (status, answer) == (200, b"tun POST /gh-chunked\n"), (status, answer)
    assert tun.bodies()[-1] == ("/gh-chunked", framed, body)
    # The site route to the tunnel checks Slack's signature, not the tunnels' GitHub one.
    now = unix_now()
    a = post(relay.http_port, "/sl", FORM_BODY, sign_slack(SECRET, FORM_BODY, None, now))
    assert a.status == 200, a
    refused(post(relay.http_port, "/sl", FORM_BODY, sign_slack(SECRET, FORM_BODY, None, now - 900)),
            "timestamp outside the tolerance")
    refused(post(relay.http_port, "/sl", body, sign_github(SECRET, body, None, None)),
            "signature header missing")
    assert tun.requests() == 3, tun.bodies()


# -- the secret ------------------------------------------------------------------------------------

class DebugRelay(Relay):
    """A relay that logs everything it can (--log-level is the command's, before `server`)."""

    @property
    def args(self):
        args = super().args
        return args[:1] + ["--log-level", "debug"] + args[1:]


def test_the_secret_never_reaches_the_relays_output(group, tmp_path, backend):
    b = backend("b")
    secret_file = tmp_path / "stripe.secret"
    secret_file.write_text(SECRET + "\n")
    config = tmp_path / "relay.toml"
    config.write_text(site([HOST], [to(b, path="/gh", policies=[webhook("github")]),
                                    to(b, policies=[{"type": "verify_webhook",
                                                     "provider": "stripe",
                                                     "secret_file": "stripe.secret"}])]))
    relay = DebugRelay(group, extra=["--config", str(config)])
    now = unix_now()
    assert post(relay.http_port, "/gh", JSON_BODY,
                sign_github(SECRET, JSON_BODY, None, None)).status == 200
    assert post(relay.http_port, "/st", JSON_BODY,
                sign_stripe(SECRET, JSON_BODY, None, now)).status == 200
    for path, headers in (("/gh", []), ("/gh", sign_github("nope", JSON_BODY, None, None)),
                          ("/st", sign_stripe(SECRET, JSON_BODY, None, now - 3600))):
        assert post(relay.http_port, path, JSON_BODY, headers).status == 401
    send(relay.http_port, head("/gh", [("Transfer-Encoding", "chunked")]
                               + sign_github(SECRET, b"", None, None)) + b"zz\r\n")
    relay.stop()
    assert SECRET not in relay.proc.stderr_text() + relay.proc.stdout_text()
    # Nor in a refused config's error.
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sites]]\nhosts = ["shop.test"]\nupstream = ["http://127.0.0.1:1"]\n'
                   '[[sites.policies]]\ntype = "verify_webhook"\nprovider = "gitlab"\n'
                   'secret = "%s"\n' % SECRET)
    assert SECRET not in refused_at_start(bad)


# -- config ----------------------------------------------------------------------------------------

SITE = '[[sites]]\nhosts = ["shop.test"]\n[[sites.routes]]\nupstream = ["http://127.0.0.1:1"]\n'
CONFIG_ERRORS = {
    # "#<" marks the lines an error may point at
    "unknown_provider": ("gitlab", SITE + """
[[sites.routes.policies]]  #<
type = "verify_webhook"
provider = "gitlab"  #<
secret = "s"
"""),
    "missing_secret": ("secret", SITE + """
[[sites.routes.policies]]  #<
type = "verify_webhook"
provider = "github"
"""),
    "missing_secret_file": ("nowhere.secret", SITE + """
[[sites.routes.policies]]  #<
type = "verify_webhook"
provider = "github"
secret_file = "nowhere.secret"  #<
"""),
    "hmac_without_header": ("header", SITE + """
[[sites.routes.policies]]  #<
type = "verify_webhook"
provider = "hmac"
secret = "s"
"""),
    "bad_encoding": ("base32", SITE + """
[[sites.routes.policies]]  #<
type = "verify_webhook"
provider = "hmac"
secret = "s"
header = "X-Signature"
encoding = "base32"  #<
"""),
    "header_on_github": ("header", SITE + """
[[sites.routes.policies]]  #<
type = "verify_webhook"
provider = "github"
secret = "s"
header = "X-Signature"  #<
"""),
    "bad_tolerance": ("tolerance", SITE + """
[[sites.routes.policies]]  #<
type = "verify_webhook"
provider = "stripe"
secret = "s"
tolerance = "forever"  #<
"""),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_a_bad_verify_webhook_table_is_refused_naming_file_and_line(tmp_path, case):
    needle, text = CONFIG_ERRORS[case]
    assert_refused_at_marked_line(tmp_path / ("%s.toml" % case), text, needle)


def test_porthole_help_policies_describes_verify_webhook():
    r = subprocess.run([BIN, "help", "policies"], capture_output=True, text=True, timeout=5,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r
    missing = [w for w in ("verify_webhook", "github", "stripe", "slack", "shopify", "twilio",
                           "hmac", "secret_file", "tolerance", "max_body", "algorithm",
                           "encoding", "prefix", "url") if w not in r.stdout]
    assert not missing, "`porthole help policies` does not mention %s" % missing


def test_backends_record_bodies(backend):
    """What this file leans on: a backend keeps each body as framed and decoded."""
    b = backend("x")
    status, _ = send(b.port, b"POST /r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                             b"\r\n\r\n3;a=b\r\nabc\r\n0\r\n\r\n")
    assert status == 200
    wait_until(lambda: b.bodies(), 5)
    assert b.bodies() == [("/r", b"3;a=b\r\nabc\r\n0\r\n\r\n", b"abc")]
