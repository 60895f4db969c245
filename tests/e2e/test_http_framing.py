"""HTTP/1.1 framing at the relay's public edge.

Malformed request heads (request smuggling vectors, bad Host, oversized heads,
CONNECT, ...) are answered by the relay itself and never reach the origin;
well-formed but tricky exchanges (hop-by-hop fields, HEAD, pipelining,
Expect: 100-continue, bodiless 204/304) are forwarded with correct framing.

Everything here talks to the relay over raw sockets so the bytes on the wire
are exactly the ones in the tables below.
"""
import hashlib
import json
import os
import socket
import time

import pytest

from helpers import curl

IO_TIMEOUT = 5.0  # per socket operation; a hang shows up as a timeout, never a stall
TUNNEL = "framing"


# ---------------------------------------------------------------------------
# a small HTTP/1.1 response reader


class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body

    def header(self, name):
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Response(%s %s %r, headers=%r, body=%r)" % (
            self.version, self.status, self.reason, self.headers, self.body[:300])


class Reader:
    """Reads successive HTTP/1.x responses from one socket (Content-Length, chunked or to EOF)."""

    def __init__(self, sock, timeout=IO_TIMEOUT):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed by the relay; buffered %r" % self.buf[:200])
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise EOFError("connection closed by the relay; buffered %r" % self.buf[:200])
        self.buf += data

    def _line(self, limit=128 * 1024):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long: %r" % self.buf[:200])
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _to_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        data, self.buf = self.buf, b""
        return data

    def read_response(self, method="GET", interim=False):
        """The next response; 1xx responses are skipped unless `interim` asks for them."""
        while True:
            status_line = self._line()
            parts = status_line.decode("latin-1").split(" ", 2)
            assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), \
                "not a status line: %r" % status_line
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = []
            while True:
                line = self._line()
                if not line:
                    break
                name, sep, value = line.decode("latin-1").partition(":")
                assert sep, "malformed response header line %r" % line
                headers.append((name.strip().lower(), value.strip()))
            resp = Response(version, status, reason, headers, b"")
            if 100 <= status < 200:
                if interim:
                    return resp
                continue
            if method == "HEAD" or status in (204, 304):
                return resp
            te = resp.header("transfer-encoding")
            if te and te.lower().split(",")[-1].strip() == "chunked":
                body = b""
                while True:
                    size = int(self._line().split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while self._line():  # trailers
                            pass
                        break
                    body += self._exactly(size)
                    assert self._exactly(2) == b"\r\n", "chunk not followed by CRLF"
                resp.body = body
            elif resp.header("content-length") is not None:
                resp.body = self._exactly(int(resp.header("content-length")))
            else:
                resp.body = self._to_eof()
            return resp

    def closed(self):
        """True once the peer has closed (EOF or reset) with nothing more to read."""
        if self.buf:
            return False
        try:
            self._fill()
        except EOFError:
            return True
        except socket.timeout:
            return False
        return False


def connect(relay):
    s = socket.create_connection(("127.0.0.1", relay.http_port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send(sock, data):
    """sendall that tolerates the relay closing early (it may reject before reading everything)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


# ---------------------------------------------------------------------------
# environment


class Env:
    pass


def make_env(group, origin):
    """A relay, the origin and one agent publishing it as http://framing.localhost:PORT."""
    e = Env()
    e.relay = group.relay()
    e.agent = group.agent(e.relay, "http", origin.port, "--subdomain", TUNNEL)
    e.origin = origin
    e.url = e.agent.ready["url"]
    e.host = "%s.localhost:%d" % (TUNNEL, e.relay.http_port)
    assert e.url == "http://" + e.host
    return e


@pytest.fixture(scope="module")
def env(module_group, module_origin):
    """Shared by the exchanges that should succeed."""
    return make_env(module_group, module_origin)


@pytest.fixture
def fresh_env(group, origin):
    """One relay per malformed case, so a relay that dies on one case does not fail the others."""
    return make_env(group, origin)


def origin_count(env):
    """Requests the origin has served, asked through the tunnel (GET /count is not counted)."""
    r = curl(env.url + "/count", timeout=10)
    assert r.status == 200, r
    return r.json()["count"]


# ---------------------------------------------------------------------------
# malformed requests: the relay answers, the origin never sees them

H = "Host: {host}\r\n"


def big_head():
    return ("GET / HTTP/1.1\r\n" + H + "X-Big: " + "a" * (70 * 1024) + "\r\n\r\n")


REJECTED = [
    # -- request smuggling: body framing ------------------------------------------------------
    ("te-and-content-length", 400,
     "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
    ("content-length-and-te", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-gzip", 501,
     "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\n"),
    ("te-gzip-then-chunked", 501,
     "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("te-chunked-twice", 400,
     "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("content-length-list-of-same", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: 3, 3\r\n\r\nabc"),
    ("content-length-22-digits", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: 0000000000000000000003\r\n\r\nabc"),
    ("chunk-size-overflow", 400,
     "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"
     "ffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    # the relay would drop the framing field as hop-by-hop but still forward the body it frames:
    # the origin would read the body as a second request
    ("connection-names-content-length", 400,
     "POST / HTTP/1.1\r\n" + H + "Connection: content-length\r\nContent-Length: 60\r\n\r\n"
     "GET /admin HTTP/1.1\r\nHost: internal.example\r\nX-Pad: 0123456\r\n\r\n"),
    ("connection-names-transfer-encoding", 400,
     "POST / HTTP/1.1\r\n" + H + "Connection: keep-alive, Transfer-Encoding\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("connection-names-host", 400,
     "GET / HTTP/1.1\r\n" + H + "Connection: host\r\n\r\n"),
    # -- request target -------------------------------------------------------------------------
    ("absolute-form-other-authority", 400,
     "GET http://internal.local/ HTTP/1.1\r\n" + H + "\r\n"),
    ("absolute-form-with-userinfo", 400,
     "GET http://user@{host}/ HTTP/1.1\r\n" + H + "\r\n"),
    ("target-not-a-path", 400,
     "GET admin HTTP/1.1\r\n" + H + "\r\n"),
    ("te-chunked-then-gzip", 501,
     "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("te-chunked-on-http10", 400,
     "POST / HTTP/1.0\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two-different-content-lengths", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("content-length-list-of-different", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: 5, 6\r\n\r\nhello!"),
    ("content-length-abc", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: abc\r\n\r\n"),
    ("content-length-negative", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n"),
    ("content-length-with-space", 400,
     "POST / HTTP/1.1\r\n" + H + "Content-Length: 1 2\r\n\r\n" + "x" * 12),
    ("chunk-size-not-hex", 400,
     "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    # -- raw head syntax ------------------------------------------------------------------------
    ("obs-fold-space", 400,
     "GET / HTTP/1.1\r\n" + H + "X-Folded: one\r\n two\r\n\r\n"),
    ("obs-fold-tab", 400,
     "GET / HTTP/1.1\r\n" + H + "X-Folded: one\r\n\ttwo\r\n\r\n"),
    ("bare-cr-in-field", 400,
     "GET / HTTP/1.1\r\n" + H + "X-A: one\rtwo\r\n\r\n"),
    ("bare-lf-ends-field", 400,
     "GET / HTTP/1.1\r\n" + H + "X-A: one\nX-B: two\r\n\r\n"),
    ("bare-lf-ends-request-line", 400,
     "GET / HTTP/1.1\n" + H + "\r\n"),
    ("garbage-request-line", 400,
     "this is not http at all\r\n" + H + "\r\n"),
    ("http09-request-line", 400,
     "GET /\r\n" + H + "\r\n"),
    ("tls-client-hello", 400,
     "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\x00" * 32 + "\r\n\r\n"),
    # -- Host -----------------------------------------------------------------------------------
    ("missing-host-http11", 400,
     "GET / HTTP/1.1\r\nX-Other: 1\r\n\r\n"),
    ("two-host-headers-same", 400,
     "GET / HTTP/1.1\r\n" + H + H + "\r\n"),
    ("two-host-headers-different", 400,
     "GET / HTTP/1.1\r\n" + H + "Host: example.com\r\n\r\n"),
    ("host-with-spaces", 400,
     "GET / HTTP/1.1\r\nHost: " + TUNNEL + " .localhost\r\n\r\n"),
    ("host-outside-domain", 404,
     "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ("host-unknown-tunnel", 404,
     "GET / HTTP/1.1\r\nHost: nosuchtunnel.localhost:{port}\r\n\r\n"),
    # -- limits and methods --------------------------------------------------------------------
    ("header-section-over-64k", 431, None),  # built by big_head()
    ("connect-method", 501,
     "CONNECT " + TUNNEL + ".localhost:80 HTTP/1.1\r\n" + H + "\r\n"),
]


@pytest.mark.parametrize("raw, expected", [pytest.param(raw, status, id=name)
                                           for name, status, raw in REJECTED])
def test_rejected_by_relay(fresh_env, raw, expected):
    env = fresh_env
    if raw is None:
        raw = big_head()
    data = raw.format(host=env.host, port=env.relay.http_port).encode("latin-1")
    before = origin_count(env)
    problems = []
    with connect(env.relay) as s:
        send(s, data)
        reader = Reader(s)
        try:
            resp = reader.read_response()
        except (socket.timeout, EOFError) as exc:
            resp = None
            problems.append("expected %d from the relay, got no response (%s: %s)" % (
                expected, type(exc).__name__, exc))
        if resp is not None:
            if resp.status != expected:
                problems.append("expected %d, got %r" % (expected, resp))
            elif resp.header("server") != "porthole":
                problems.append("response not from the relay itself: %r" % resp)
            if not reader.closed():
                problems.append("relay kept the connection open after %d" % resp.status)
    r = curl(env.url + "/count", timeout=10)
    if r.status != 200 or not env.relay.proc.alive():
        problems.append("the tunnel no longer works after the case (%r); relay %s; relay stderr tail:\n%s" % (
            r, "running" if env.relay.proc.alive() else "exited %s" % env.relay.proc.returncode,
            env.relay.proc.stderr_text()[-600:]))
    elif r.json()["count"] != before:
        problems.append("the origin saw the rejected request (count %d -> %d)" % (
            before, r.json()["count"]))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# well-formed exchanges


def test_hop_by_hop_fields_not_forwarded(env):
    req = ("GET /headers HTTP/1.1\r\n"
           "Host: {host}\r\n"
           "Connection: keep-alive, X-Named-Hop\r\n"
           "X-Named-Hop: secret\r\n"
           "Keep-Alive: timeout=5\r\n"
           "Proxy-Connection: keep-alive\r\n"
           "TE: trailers\r\n"
           "Upgrade: h2c\r\n"
           "X-End-To-End: kept\r\n"
           "\r\n").format(host=env.host).encode()
    with connect(env.relay) as s:
        send(s, req)
        resp = Reader(s).read_response()
    assert resp.status == 200, resp
    h = resp.json()["headers"]
    for hop in ("connection", "x-named-hop", "keep-alive", "proxy-connection", "te", "upgrade"):
        assert hop not in h, "origin saw hop-by-hop field %r: %r" % (hop, h)
    assert h.get("x-end-to-end") == "kept", h
    assert h.get("via") == "1.1 porthole", h
    assert h.get("x-forwarded-for", "").split(",")[-1].strip() == "127.0.0.1", h
    assert h.get("x-forwarded-proto") == "http", h
    assert h.get("x-forwarded-host") == env.host, h


def test_head_then_get_pipelined(env):
    req = ("HEAD / HTTP/1.1\r\nHost: {host}\r\n\r\n"
           "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").format(host=env.host).encode()
    with connect(env.relay) as s:
        send(s, req)
        reader = Reader(s)
        head = reader.read_response("HEAD")
        assert head.status == 200, head
        assert head.header("content-length") == str(len(b"hello from origin\n")), head
        get = reader.read_response("GET")
        assert get.status == 200, get
        assert get.body == b"hello from origin\n", get
        assert not reader.buf, "bytes after the GET response: %r" % reader.buf


def test_three_pipelined_gets_answered_in_order(env):
    req = b"".join(("GET /headers?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, env.host)).encode()
                   for i in range(3))
    with connect(env.relay) as s:
        send(s, req)  # one write
        reader = Reader(s)
        paths = []
        for _ in range(3):
            resp = reader.read_response()
            assert resp.status == 200, resp
            paths.append(resp.json()["path"])
    assert paths == ["/headers?n=0", "/headers?n=1", "/headers?n=2"]


def test_expect_100_continue_with_curl(env, tmp_path):
    body = os.urandom(8 * 1024)
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    r = curl(env.url + "/sha256", "-v", "-X", "POST", "-H", "Expect: 100-continue",
             "-H", "Content-Type: application/octet-stream", "--data-binary", "@%s" % path)
    assert r.returncode == 0 and r.status == 200, r
    assert r.json() == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    assert "Expect: 100-continue" in r.stderr, "curl did not send Expect: %s" % r.stderr[-2000:]


def test_expect_100_continue_interim_response_arrives_before_body(env):
    body = b"x" * 4096
    head = ("POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: {n}\r\n"
            "Expect: 100-continue\r\n\r\n").format(host=env.host, n=len(body)).encode()
    with connect(env.relay) as s:
        send(s, head)
        reader = Reader(s)
        interim = reader.read_response("POST", interim=True)  # times out if 100 is held back
        assert interim.status == 100, interim
        send(s, body)
        final = reader.read_response("POST")
    assert final.status == 200, final
    assert final.json() == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_status_framed_then_next_request(env, code):
    req = ("GET /status?code={code} HTTP/1.1\r\nHost: {host}\r\n\r\n"
           "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").format(code=code, host=env.host).encode()
    with connect(env.relay) as s:
        send(s, req)
        reader = Reader(s)
        first = reader.read_response()
        assert first.status == code, first
        assert first.header("etag") == '"porthole-test"', first
        te = first.header("transfer-encoding")
        assert not te, "%d response must not carry Transfer-Encoding: %r" % (code, first)
        if code == 204:
            assert first.header("content-length") is None, "204 must not carry Content-Length: %r" % first
        start = time.monotonic()
        second = reader.read_response()
        assert second.status == 200 and second.body == b"hello from origin\n", second
        # the relay must not have waited for a body (or EOF) after the bodiless response
        assert time.monotonic() - start < IO_TIMEOUT
