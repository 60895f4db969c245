"""The compress policy (docs/policies.md): responses of listed types compressed on the relay with
zstd, br or gzip as the visitor's Accept-Encoding allows, decoded here (python3's gzip, Debian's
python3-brotli and python3-zstandard) and compared byte for byte with what the backend sent.

Through a site route to a backend, through a tunnel under [[tunnel_policy.policies]], and through
a tunnel whose owner asked for it (`porthole http --compress`, [[tunnels.NAME.policies]]). Each
upstream framing (Content-Length, chunked, close-delimited) is re-framed for the visitor; what
must not be compressed is checked to arrive exactly as the backend sent it.
"""
import gzip
import http.client
import http.server
import json
import socket
import subprocess
import threading
import time
import zlib

import brotli
import pytest
import zstandard

from helpers import BIN, curl
from test_owner_policies import start_from_file
from test_policies import (HOST, assert_refused_at_marked_line, policy, site, start_relay,
                           tunnel_policies)

TEXT = "".join("line %05d: porthole compresses what it relays, as the visitor asks.\n" % i
               for i in range(3000)).encode()  # about 200 KB
SMALL = b"short text\n"
PNG = bytes(range(256)) * 40
GZIPPED = gzip.compress(TEXT)


def decode(coding, data):
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return brotli.decompress(data)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert coding is None, coding
    return data


class Origin(http.server.BaseHTTPRequestHandler):
    """GET paths, each a kind of response; the request heads it saw are kept (server.seen)."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        self.disable_nagle_algorithm = True
        super().setup()

    def send(self, status, body, ctype="text/plain; charset=utf-8", extra=()):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def chunked(self, parts, ctype="text/html", delay=0.0):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for p in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.flush()
            if delay:
                time.sleep(delay)
        self.wfile.write(b"0\r\n\r\n")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.server.seen.append((self.path, dict((k.lower(), v) for k, v in self.headers.items())))
        path = self.path.split("?")[0]
        if path == "/text":
            if "Range" in self.headers:
                self.send(206, TEXT[:100], extra=[("Content-Range", "bytes 0-99/%d" % len(TEXT))])
            elif self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                self.end_headers()
            else:
                self.send(200, TEXT, extra=[("ETag", '"v1"'), ("Accept-Ranges", "bytes")])
        elif path == "/json":
            self.send(200, json.dumps({"rows": TEXT.decode()}).encode(), "application/json")
        elif path == "/chunked":
            self.chunked([TEXT[i:i + 7000] for i in range(0, len(TEXT), 7000)])
        elif path in ("/close", "/eof"):
            # No length: the body ends when the connection does (/close also says so).
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            if path == "/close":
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(TEXT)
            self.wfile.flush()
            self.close_connection = True
        elif path == "/small":
            self.send(200, SMALL)
        elif path == "/png":
            self.send(200, PNG, "image/png")
        elif path == "/encoded":
            self.send(200, GZIPPED, extra=[("Content-Encoding", "gzip")])
        elif path == "/no-transform":
            self.send(200, TEXT, extra=[("Cache-Control", "public, no-transform")])
        elif path == "/weak":
            self.send(200, TEXT, extra=[("ETag", 'W/"w1"'), ("Vary", "Origin")])
        elif path == "/events":
            self.chunked([b"data: event %d\n\n" % i for i in range(3)], "text/event-stream",
                         delay=0.5)
        else:
            self.send(404, b"not here\n")


@pytest.fixture
def origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.port = server.server_address[1]
    yield server
    server.shutdown()
    server.server_close()


def to_origin(o, **route):
    route["upstream"] = ["http://127.0.0.1:%d" % o.port]
    return route


def fetch(port, path, accept=None, host=HOST, method="GET", headers=(), conn=None):
    """One request; returns (status, headers as a dict of lower-case names, raw body)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    if accept is not None:
        conn.putheader("Accept-Encoding", accept)
    for k, v in headers:
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    h = {}
    for k, v in r.getheaders():
        h[k.lower()] = (h[k.lower()] + ", " + v) if k.lower() in h else v
    if own:
        conn.close()
    return r.status, h, body


def assert_compressed(answer, coding, original=TEXT):
    status, h, body = answer
    assert status == 200, answer[:2]
    assert h.get("content-encoding") == coding, h
    assert "content-length" not in h, h
    assert "accept-encoding" in h.get("vary", "").lower(), h
    assert decode(coding, body) == original
    assert len(body) < len(original) / 3


def assert_as_sent(answer, original, status=200):
    got_status, h, body = answer
    assert got_status == status, answer[:2]
    assert "content-encoding" not in h or original is GZIPPED, h
    assert body == original


@pytest.fixture
def site_relay(group, tmp_path, origin):
    return start_relay(group, tmp_path, site([HOST], [to_origin(origin)],
                                             policies=[policy("compress")]))


# -- each encoding, each framing ----------------------------------------------------------

@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("path", ["/text", "/chunked", "/close", "/eof", "/json"])
def test_each_encoding_of_each_upstream_framing_decodes_to_the_original(site_relay, coding, path):
    original = json.dumps({"rows": TEXT.decode()}).encode() if path == "/json" else TEXT
    assert_compressed(fetch(site_relay.http_port, path, accept=coding), coding, original)


def test_the_relays_preference_among_what_the_visitor_accepts(site_relay):
    port = site_relay.http_port
    assert fetch(port, "/text", "gzip, deflate, br, zstd")[1]["content-encoding"] == "zstd"
    assert fetch(port, "/text", "gzip, deflate, br")[1]["content-encoding"] == "br"
    assert fetch(port, "/text", "zstd;q=0.5, gzip")[1]["content-encoding"] == "gzip"
    assert fetch(port, "/text", "*")[1]["content-encoding"] == "zstd"


def test_strong_etag_is_weakened_vary_added_and_accept_ranges_dropped(site_relay):
    status, h, _ = fetch(site_relay.http_port, "/text", "gzip")
    assert h["etag"] == 'W/"v1"' and h["vary"] == "Accept-Encoding", h
    assert "accept-ranges" not in h
    status, h, _ = fetch(site_relay.http_port, "/weak", "gzip")
    assert h["etag"] == 'W/"w1"', h
    assert h["vary"] == "Origin, Accept-Encoding", h
    # Uncompressed, the strong validator stays as the backend sent it.
    status, h, body = fetch(site_relay.http_port, "/text", "identity")
    assert h["etag"] == '"v1"' and h["accept-ranges"] == "bytes" and body == TEXT, h
    assert h["vary"] == "Accept-Encoding"


# -- what is not compressed -----------------------------------------------------------------

@pytest.mark.parametrize("accept", [None, "", "identity", "gzip;q=0", "deflate", "*;q=0"])
def test_no_acceptable_encoding_means_the_body_as_sent(site_relay, accept):
    status, h, body = fetch(site_relay.http_port, "/text", accept)
    assert (status, body) == (200, TEXT) and "content-encoding" not in h, h
    assert h["content-length"] == str(len(TEXT))
    assert h["vary"] == "Accept-Encoding", h


@pytest.mark.parametrize("path", [
    "/small",          # Content-Length under min_length
    "/png",            # a type not listed
    "/no-transform",   # Cache-Control: no-transform
])
def test_responses_that_do_not_qualify_arrive_as_sent(site_relay, path):
    original = {"/small": SMALL, "/png": PNG, "/no-transform": TEXT}[path]
    status, h, body = fetch(site_relay.http_port, path, "gzip, br, zstd")
    assert (status, body) == (200, original) and "content-encoding" not in h, (path, h)
    assert h["content-length"] == str(len(original))


def test_an_encoded_body_is_not_encoded_again(site_relay):
    status, h, body = fetch(site_relay.http_port, "/encoded", "gzip, br, zstd")
    assert (status, h["content-encoding"], body) == (200, "gzip", GZIPPED), h
    assert "vary" not in h  # the backend's own coding: its own Vary


def test_head_304_and_ranges_are_not_compressed(site_relay, origin):
    port = site_relay.http_port
    status, h, body = fetch(port, "/text", "gzip", method="HEAD")
    assert (status, body) == (200, b"") and "content-encoding" not in h, h
    assert h["content-length"] == str(len(TEXT))
    status, h, body = fetch(port, "/text", "gzip", headers=[("If-None-Match", '"v1"')])
    assert (status, body) == (304, b"") and "content-encoding" not in h, h
    assert h["etag"] == '"v1"'
    status, h, body = fetch(port, "/text", "gzip", headers=[("Range", "bytes=0-99")])
    assert (status, body) == (206, TEXT[:100]) and "content-encoding" not in h, h
    assert h["content-range"] == "bytes 0-99/%d" % len(TEXT)
    ranged = [seen for path, seen in origin.seen if "range" in seen]
    assert ranged and ranged[0]["range"] == "bytes=0-99", "the relay must pass Range on"
    status, h, body = fetch(port, "/text", "gzip", headers=[("Cache-Control", "no-transform")])
    assert (status, body) == (200, TEXT) and "content-encoding" not in h, h


def test_a_route_without_the_policy_is_untouched(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, site([HOST], [to_origin(origin)]))
    status, h, body = fetch(relay.http_port, "/text", "gzip, br, zstd")
    assert (status, body) == (200, TEXT) and "content-encoding" not in h and "vary" not in h, h


# -- connections ----------------------------------------------------------------------------

def test_keep_alive_goes_on_after_compressed_responses(site_relay):
    conn = http.client.HTTPConnection("127.0.0.1", site_relay.http_port, timeout=10)
    conn.connect()
    local = conn.sock.getsockname()
    for path, coding in [("/text", "gzip"), ("/chunked", "br"), ("/eof", "zstd"),
                         ("/small", "gzip"), ("/json", "gzip"), ("/png", "br"), ("/text", "zstd")]:
        answer = fetch(None, path, coding, conn=conn)
        assert answer[0] == 200, (path, answer[:2])
        assert conn.sock is not None and conn.sock.getsockname() == local, (
            "the relay closed the connection after %s" % path)
    conn.close()


def test_an_upstream_that_says_close_closes_the_visitor_too(site_relay):
    conn = http.client.HTTPConnection("127.0.0.1", site_relay.http_port, timeout=10)
    assert_compressed(fetch(None, "/close", "gzip", conn=conn), "gzip")
    assert conn.sock is None or conn.sock.recv(1) == b""
    conn.close()


def raw_exchange(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            part = s.recv(65536)
            if not part:
                return data
            data += part


def test_an_http10_visitor_gets_a_body_ended_by_the_close(site_relay):
    data = raw_exchange(site_relay.http_port, b"GET /chunked HTTP/1.0\r\nHost: %s\r\n"
                        b"Accept-Encoding: gzip\r\n\r\n" % HOST.encode())
    head, _, body = data.partition(b"\r\n\r\n")
    fields = head.lower().split(b"\r\n")
    assert b"content-encoding: gzip" in fields and b"connection: close" in fields, head
    assert not any(f.startswith(b"transfer-encoding") for f in fields), head
    assert gzip.decompress(body) == TEXT


def test_a_streaming_upstream_is_not_held_back(site_relay):
    """text/event-stream is compressed, and every event reaches the visitor as it is sent."""
    with socket.create_connection(("127.0.0.1", site_relay.http_port), timeout=10) as s:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: gzip\r\n\r\n"
                  % HOST.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"content-encoding: gzip" in head.lower(), head
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        got, arrived = b"", []
        start = time.monotonic()
        while b"event 2" not in got:
            while True:  # whole chunks only
                line, sep, after = rest.partition(b"\r\n")
                if not sep:
                    break
                size = int(line, 16)
                if len(after) < size + 2:
                    break
                got += inflate.decompress(after[:size])
                rest = after[size + 2:]
                for i in range(3):
                    if b"event %d" % i in got and len(arrived) == i:
                        arrived.append(time.monotonic() - start)
            if b"event 2" in got:
                break
            part = s.recv(65536)
            assert part, "the stream ended early: %r" % got
            rest += part
    assert got == b"".join(b"data: event %d\n\n" % i for i in range(3)), got
    # The events are 0.5 s apart at the backend: each came on its own, not all at the end.
    assert arrived[0] < 0.4 and arrived[1] - arrived[0] > 0.2, arrived


def test_curl_compressed(site_relay):
    for coding in ["gzip", "br", "zstd", None]:
        args = ["-H", "Host: " + HOST, "--compressed"]
        if coding:
            args += ["-H", "Accept-Encoding: " + coding]
        r = curl("http://127.0.0.1:%d/chunked" % site_relay.http_port, *args)
        if r.returncode == 61 and coding:  # this curl was built without that decoder
            continue
        assert r.returncode == 0 and r.status == 200, (coding, r)
        assert r.body == TEXT, (coding, r)


# -- tunnels ---------------------------------------------------------------------------------

def tunnel_fetch(relay, name, path, accept):
    return fetch(relay.http_port, path, accept, host="%s.localhost:%d" % (name, relay.http_port))


def test_tunnel_policy_compresses_every_tunnel(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, tunnel_policies(policy("compress", encodings=["br"])))
    group.agent(relay, "http", origin.port, "--subdomain", "web")
    for path in ["/text", "/chunked", "/eof"]:
        assert_compressed(tunnel_fetch(relay, "web", path, "gzip, br"), "br")
    status, h, body = tunnel_fetch(relay, "web", "/text", "gzip")
    assert body == TEXT and "content-encoding" not in h, h


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_the_owners_compress_flag(group, origin, coding):
    relay = group.relay()
    group.agent(relay, "http", origin.port, "--subdomain", "own", "--compress")
    for path in ["/text", "/chunked", "/close"]:
        assert_compressed(tunnel_fetch(relay, "own", path, coding), coding)
    assert tunnel_fetch(relay, "own", "/small", coding)[2] == SMALL
    status, h, body = tunnel_fetch(relay, "own", "/text", None)
    assert body == TEXT and "content-encoding" not in h


def test_a_tunnel_without_it_is_untouched(group, origin):
    relay = group.relay()
    group.agent(relay, "http", origin.port, "--subdomain", "plain")
    status, h, body = tunnel_fetch(relay, "plain", "/text", "gzip")
    assert body == TEXT and "content-encoding" not in h and "vary" not in h, h


def test_the_owners_config_file(group, origin, tmp_path):
    relay = group.relay()
    start_from_file(group, tmp_path, relay, origin.port, "filed", '[[tunnels.web.policies]]\n'
                    'type = "compress"\nencodings = ["gzip"]\ngzip_level = 6\nmin_length = 20\n')
    assert_compressed(tunnel_fetch(relay, "filed", "/text", "zstd, gzip"), "gzip")
    assert tunnel_fetch(relay, "filed", "/small", "gzip")[2] == SMALL  # 11 bytes < 20


def test_a_site_route_to_a_tunnel(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, site([HOST], [{"upstream": ["tunnel:behind"],
                                                         "policies": [policy("compress")]}]))
    group.agent(relay, "http", origin.port, "--subdomain", "behind")
    assert_compressed(fetch(relay.http_port, "/chunked", "zstd"), "zstd")


def test_the_relay_may_forbid_it_to_owners(group, tmp_path, origin):
    config = tmp_path / "relay.toml"
    config.write_text('[tunnel_policy]\nforbid = ["compress"]\n')
    relay = group.relay("--config", str(config))
    refused = group.agent(relay, "http", origin.port, "--subdomain", "nope", "--compress",
                          wait_ready=False)
    assert refused.popen.wait(10) != 0
    err = refused.stderr_text() + "\n".join(refused.lines)
    assert "does not let a tunnel's owner set compress policies" in err, err


# -- config errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("line,needle", [
    ('encodings = ["gzip", "deflate"]', "is not an encoding the relay makes"),
    ('gzip_level = 10', "'gzip_level' must be a whole number from 1 to 9"),
    ('br_level = -1', "'br_level' must be a whole number from 0 to 11"),
    ('zstd_level = 10', "'zstd_level' must be a whole number from 1 to 9"),
    ('min_length = "big"', "'min_length' must be a number of bytes"),
    ('types = ["text/html; charset=utf-8"]', "without parameters"),
    ('level = 3', "unknown key 'level' in a compress policy"),
])
def test_bad_values_are_refused_at_their_line(tmp_path, line, needle):
    assert_refused_at_marked_line(tmp_path / "relay.toml", """
[[sites]]
hosts = ["shop.test"]
upstream = ["http://127.0.0.1:9"]
  [[sites.policies]]
  type = "compress"
  %s  #<
""" % line, needle)


def test_a_bad_compress_flag_table_in_the_client_file_names_its_line(tmp_path):
    config = tmp_path / "porthole.toml"
    config.write_text('server = "127.0.0.1:1"\n[tunnels.web]\ntype = "http"\ntarget = "3000"\n'
                      '[[tunnels.web.policies]]\ntype = "compress"\nencodings = ["lzma"]\n')
    p = subprocess.run([BIN, "start", "--config", str(config), "--all"], capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "porthole.toml:7: 'encodings'" in p.stderr, p.stderr
