"""The relay's HTTP cache (docs/caching.md): a site's `cache = {...}` and [tunnel_policy] cache,
checked with curl and raw sockets against an origin that counts what reaches it.

Each test names the RFC 9111 behaviour a user relies on: a fresh response served without the
origin, Vary, what is never stored, validation with a 304, the visitor's own conditional and
range requests, invalidation by unsafe methods, request collapsing, stale-if-error with the
origin gone, a tunnel's site answering while its client is away, purge, metrics; and the disk
tier: kept across a crash and a reload, a damaged entry dropped, a full disk degrading to memory.
"""
import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import BIN, Relay, wait_until
from test_metrics import metrics_address, sample, scrape
from test_policies import assert_refused_at_marked_line, site, start_relay
from test_cluster import TOKEN, cluster, redis  # noqa: F401 (fixtures)
from test_cluster import get as cluster_get

HOST = "shop.test"


class Origin(http.server.BaseHTTPRequestHandler):
    """GET /PATH?cc=...&etag=...&vary=...&delay=...&cookie=1&status=N: answers with those
    fields; counts requests by path and keeps the heads it saw."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        from urllib.parse import parse_qs, urlsplit
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.server.lock:
            self.server.counts[url.path] = self.server.counts.get(url.path, 0) + 1
            n = self.server.counts[url.path]
            self.server.seen.append((self.command, self.path, dict(self.headers)))
        if "delay" in q:
            time.sleep(float(q["delay"]))
        if self.server.failing:
            q["status"] = "503"
        etag = q.get("etag")
        if etag and self.headers.get("If-None-Match") == '"%s"' % etag:
            self.send_response(304)
            self.send_header("ETag", '"%s"' % etag)
            if "cc" in q:
                self.send_header("Cache-Control", q["cc"])
            self.send_header("X-Validated", str(n))
            self.end_headers()
            return
        body = ("%s %d %s\n" % (url.path, n, self.headers.get("Accept-Language", ""))).encode()
        if "size" in q:
            body = bytes((i * 7) % 251 for i in range(int(q["size"])))
        self.send_response(int(q.get("status", 200)))
        if "cc" in q:
            self.send_header("Cache-Control", q["cc"])
        if etag:
            self.send_header("ETag", '"%s"' % etag)
        if "vary" in q:
            self.send_header("Vary", q["vary"])
        if "cookie" in q:
            self.send_header("Set-Cookie", "s=1")
        if "location" in q:
            self.send_header("Location", q["location"])
        if "close" in q:
            self.send_header("Connection", "close")
            self.close_connection = True
        if q.get("chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(0, len(body), 4096):
                    part = body[i:i + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = answer

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.answer()

    do_PUT = do_DELETE = do_POST


@contextlib.contextmanager
def running_origin():
    """An Origin on a free loopback port, serving on a thread of its own while in use."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    server.counts, server.seen, server.lock = {}, [], threading.Lock()
    server.failing = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.port = server.server_address[1]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def origin():
    with running_origin() as server:
        yield server


def cached_site(origin, cache="{ memory = \"16MiB\" }", extra=""):
    return extra + site([HOST], [dict(upstream=["http://127.0.0.1:%d" % origin.port])]) + \
        "cache = %s\n" % cache


def get(relay, path, *headers, method="GET", data=None):
    """(status, headers dict with lowercase names, body) of one request through the relay."""
    args = ["curl", "-s", "-i", "--max-time", "10", "-H", "Host: " + HOST, "-X", method]
    if method == "HEAD":
        args = ["curl", "-s", "-I", "--max-time", "10", "-H", "Host: " + HOST]
    for h in headers:
        args += ["-H", h]
    if data is not None:
        args += ["--data-binary", data]
    args.append("http://127.0.0.1:%d%s" % (relay.http_port, path))
    out = subprocess.run(args, capture_output=True, timeout=15).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), fields, body


def test_a_fresh_response_is_served_without_the_origin_with_age_and_cache_status(
        group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    status, first, body = get(relay, "/a?cc=max-age=60")
    assert status == 200 and first["cache-status"] == "porthole; fwd=uri-miss; stored"
    time.sleep(1.1)
    status, again, body2 = get(relay, "/a?cc=max-age=60")
    assert status == 200 and body2 == body
    assert again["cache-status"].startswith("porthole; hit; ttl=")
    assert int(again["age"]) >= 1
    assert origin.counts["/a"] == 1
    # HEAD is answered from the stored GET, with its length and no body
    status, head, nothing = get(relay, "/a?cc=max-age=60", method="HEAD")
    assert status == 200 and head["content-length"] == str(len(body)) and nothing == b""
    assert origin.counts["/a"] == 1
    # another query string is another resource
    get(relay, "/a?cc=max-age=60&x=1")
    assert origin.counts["/a"] == 2


def test_vary_keeps_one_response_per_value_of_the_named_field(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    path = "/v?cc=max-age=60&vary=Accept-Language"
    _, _, fr = get(relay, path, "Accept-Language: fr")
    _, _, de = get(relay, path, "Accept-Language: de")
    _, hit, fr2 = get(relay, path, "Accept-Language:  fr ")
    _, _, de2 = get(relay, path, "Accept-Language: de")
    assert fr == fr2 and de == de2 and fr != de
    assert hit["cache-status"].startswith("porthole; hit")
    assert origin.counts["/v"] == 2
    _, star, _ = get(relay, "/star?cc=max-age=60&vary=*")
    get(relay, "/star?cc=max-age=60&vary=*")
    assert origin.counts["/star"] == 2 and "stored" not in star["cache-status"]


@pytest.mark.parametrize("path,headers", [
    ("/ns?cc=no-store", ()),
    ("/pr?cc=private,max-age=60", ()),
    ("/ck?cc=max-age=60&cookie=1", ()),
    ("/au?cc=max-age=60", ("Authorization: Bearer x",)),
    ("/nx?status=201", ()),  # no explicit freshness, not heuristically cacheable
    ("/rq?cc=max-age=60", ("Cache-Control: no-store",)),
])
def test_what_a_shared_cache_must_not_store_reaches_the_origin_every_time(
        group, tmp_path, origin, path, headers):
    relay = start_relay(group, tmp_path, cached_site(origin))
    for _ in range(2):
        status, fields, _ = get(relay, path, *headers)
        assert fields["cache-status"].startswith("porthole; fwd=")
        assert "stored" not in fields["cache-status"]
    assert origin.counts[path.split("?")[0]] == 2


def test_authorization_is_stored_with_public_and_the_cookie_with_the_operators_consent(
        group, tmp_path, origin):
    relay = start_relay(group, tmp_path,
                        cached_site(origin, "{ memory = \"16MiB\", store_set_cookie = true }"))
    for _ in range(2):
        get(relay, "/pub?cc=public,max-age=60", "Authorization: Bearer x")
        get(relay, "/ck?cc=max-age=60&cookie=1")
    assert origin.counts["/pub"] == 1 and origin.counts["/ck"] == 1


def test_a_stale_response_is_validated_and_a_304_renews_it(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    # max-age=2: the origin's Date has whole seconds, so the renewed entry may be a second old
    # at once and must still be a hit.
    path = "/e?cc=max-age=2&etag=v1"
    _, _, body = get(relay, path)
    time.sleep(3.1)
    status, renewed, body2 = get(relay, path)
    assert status == 200 and body2 == body
    assert renewed["cache-status"].startswith("porthole; fwd=stale; fwd-status=304")
    assert renewed["x-validated"] == "2"  # the 304's fields replace the stored ones
    method, _, seen = origin.seen[-1]
    assert seen.get("If-None-Match") == '"v1"'
    _, hit, _ = get(relay, path)
    assert hit["cache-status"].startswith("porthole; hit")
    assert origin.counts["/e"] == 2
    # no-cache from the visitor: validated first, even though fresh
    get(relay, path, "Cache-Control: no-cache")
    assert origin.counts["/e"] == 3


def test_stale_while_revalidate_serves_stale_and_refreshes_behind(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    path = "/swr?cc=max-age=2,stale-while-revalidate=30"
    _, _, first = get(relay, path)
    time.sleep(2.1)
    status, stale, body = get(relay, path)
    assert status == 200 and body == first
    assert stale["cache-status"].endswith("detail=stale")
    wait_until(lambda: origin.counts["/swr"] >= 2, 5)  # refreshed without a visitor waiting
    # the refreshed response answers from then on (a slow machine may see it go stale again)
    wait_until(lambda: get(relay, path)[2] != first, 5)
    _, later, body = get(relay, path)
    assert later["cache-status"].startswith("porthole; hit") and body != first


def test_the_visitors_own_conditional_and_range_requests_are_answered_from_the_cache(
        group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    path = "/r?cc=max-age=60&etag=r1&size=1000"
    _, _, whole = get(relay, path)
    status, fields, body = get(relay, path, 'If-None-Match: "r1"')
    assert status == 304 and body == b"" and fields["etag"] == '"r1"'
    status, fields, body = get(relay, path, "Range: bytes=100-199")
    assert status == 206 and body == whole[100:200]
    assert fields["content-range"] == "bytes 100-199/1000"
    status, fields, _ = get(relay, path, "Range: bytes=5000-")
    assert status == 416 and fields["content-range"] == "bytes */1000"
    assert origin.counts["/r"] == 1


def test_an_unsafe_method_invalidates_the_target_and_its_location(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    get(relay, "/item?cc=max-age=60")
    get(relay, "/list?cc=max-age=60")
    status, fields, _ = get(relay, "/item?cc=max-age=60", method="POST", data="x")
    assert fields["cache-status"] == "porthole; fwd=method"
    get(relay, "/item?cc=max-age=60")
    assert origin.counts["/item"] == 3  # GET, POST, GET again
    get(relay, "/other?location=/list%3Fcc=max-age=60", method="DELETE")
    get(relay, "/list?cc=max-age=60")
    assert origin.counts["/list"] == 2
    # an error response invalidates nothing
    get(relay, "/item?cc=max-age=60")
    get(relay, "/item?cc=max-age=60&status=500", method="PUT", data="x")
    assert origin.counts["/item"] == 4


def test_concurrent_misses_for_one_url_make_one_origin_request(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    path = "/slow?cc=max-age=60&delay=1"
    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda _: get(relay, path), range(100)))
    assert all(a[0] == 200 for a in answers)
    assert len({a[2] for a in answers}) == 1
    assert origin.counts["/slow"] == 1


def test_large_and_chunked_bodies_are_stored_whole_and_larger_ones_pass(group, tmp_path, origin):
    relay = start_relay(group, tmp_path,
                        cached_site(origin, "{ memory = \"16MiB\", max_object = \"1MiB\" }"))
    path = "/big?cc=max-age=60&size=700000&chunked=1"
    _, _, body = get(relay, path)
    _, hit, body2 = get(relay, path)
    assert len(body) == 700000 and body2 == body and hit["content-length"] == "700000"
    assert origin.counts["/big"] == 1
    for _ in range(2):
        _, _, huge = get(relay, "/huge?cc=max-age=60&size=1500000&chunked=1")
        assert len(huge) == 1500000
    assert origin.counts["/huge"] == 2


def test_stale_if_error_serves_the_stored_response_when_the_origin_fails_or_is_gone(
        group, tmp_path, origin):
    relay = start_relay(group, tmp_path, cached_site(origin))
    failing = "/sie?cc=max-age=1,stale-if-error=60"
    gone = "/gone?cc=max-age=1,stale-if-error=60&close=1"
    _, _, failing_body = get(relay, failing)
    _, _, gone_body = get(relay, gone)
    get(relay, "/plain?cc=max-age=1&close=1")
    time.sleep(1.1)
    # a 5xx from the origin gives way to the stale response
    origin.failing = True
    status, fields, body = get(relay, failing)
    assert status == 200 and body == failing_body
    assert fields["cache-status"] == "porthole; hit; detail=stale-if-error"
    assert origin.counts["/sie"] == 2
    # nothing listens any more: the connect fails, and the stale response answers
    origin.shutdown()
    origin.server_close()
    status, fields, body = get(relay, gone)
    assert status == 200 and body == gone_body
    assert fields["cache-status"] == "porthole; hit; detail=stale-if-error"
    status, _, _ = get(relay, "/plain?cc=max-age=1&close=1")
    # No stale-if-error: the failure shows, a 502, or a 503 once the failures above (counted
    # by the loop that saw them) have ejected the origin.
    assert status in (502, 503)


def test_a_tunnels_site_keeps_answering_while_its_client_is_away(group, tmp_path, origin):
    toml = ("lease_grace = 600\n[tunnel_policy]\n"
            "cache = { memory = \"16MiB\", stale_when_offline = true }\n")
    relay = start_relay(group, tmp_path, toml)
    agent = group.agent(relay, "http", origin.port, "--subdomain", "blog")
    url = relay.url("blog")

    def fetch(path):
        r = subprocess.run(["curl", "-s", "-i", "--max-time", "10", url + path],
                           capture_output=True, timeout=15).stdout
        head, _, body = r.partition(b"\r\n\r\n")
        return head.decode("latin-1"), body

    # max-age=3: the origin's Date has whole seconds, so a response may be a second old at
    # once; the second fetch is a hit, and after 3.2 s the entry is stale.
    _, body = fetch("/post?cc=max-age=3")
    head, _ = fetch("/post?cc=max-age=3")
    assert "porthole; hit" in head
    agent.signal(signal.SIGKILL)  # gone without a word: its name stays leased
    time.sleep(3.2)
    head, body2 = fetch("/post?cc=max-age=3")
    assert head.startswith("HTTP/1.1 200") and body2 == body
    assert "detail=tunnel-offline" in head
    head, _ = fetch("/never-fetched")
    assert not head.startswith("HTTP/1.1 200")
    assert origin.counts["/post"] == 1


def test_an_owners_cache_flag_keeps_a_laptops_site_up_while_it_is_offline(
        group, tmp_path, origin):
    # Tunnels are cached only when their owner asks, and the operator serves nothing stale.
    toml = ("lease_grace = 600\n[tunnel_policy]\n"
            "cache = { memory = \"16MiB\", opt_in = true }\n")
    relay = start_relay(group, tmp_path, toml)
    group.agent(relay, "http", origin.port, "--subdomain", "plain")
    laptop = group.agent(relay, "http", origin.port, "--subdomain", "blog", "--cache")

    def fetch(name, path):
        r = subprocess.run(["curl", "-s", "-i", "--max-time", "10", relay.url(name) + path],
                           capture_output=True, timeout=15).stdout
        head, _, body = r.partition(b"\r\n\r\n")
        return head.decode("latin-1"), body

    for _ in range(2):
        head, _ = fetch("plain", "/plain?cc=max-age=60")
        assert "Cache-Status" not in head
    assert origin.counts["/plain"] == 2  # not asked for: not cached
    _, page = fetch("blog", "/index?cc=max-age=3")  # max-age=3: as in the test above
    head, _ = fetch("blog", "/index?cc=max-age=3")
    assert "porthole; hit" in head
    laptop.signal(signal.SIGKILL)  # the laptop sleeps: its name stays leased
    time.sleep(3.2)
    head, again = fetch("blog", "/index?cc=max-age=3")
    assert head.startswith("HTTP/1.1 200") and again == page
    assert "detail=tunnel-offline" in head
    assert origin.counts["/index"] == 1


def test_an_owners_cache_flag_is_refused_where_the_relay_has_none_or_forbids_it(
        group, tmp_path, origin):
    for toml, message in (
            ("", "this relay has no cache for tunnels ([tunnel_policy] cache)"),
            ('[tunnel_policy]\nforbid = ["cache"]\ncache = { memory = "1MiB" }\n',
             "this relay does not let a tunnel's owner turn its cache on")):
        relay = start_relay(group, tmp_path, toml)
        refused = group.agent(relay, "http", origin.port, "--subdomain", "c", "--cache",
                              wait_ready=False)
        assert refused.popen.wait(10) != 0
        err = refused.stderr_text() + "\n".join(refused.lines)
        assert message in err, err
        relay.stop()


def test_purge_through_the_admin_command_and_the_metrics(group, tmp_path, origin):
    sock = tmp_path / "admin.sock"
    relay = start_relay(group, tmp_path, "metrics_addr = \"127.0.0.1:0\"\n" + cached_site(origin),
                        "--json", "--admin-socket", str(sock))
    for p in ("/p1", "/p2", "/img/a", "/img/b"):
        get(relay, p + "?cc=max-age=60")
        get(relay, p + "?cc=max-age=60")
    admin = lambda *a: subprocess.run([BIN, "admin", "--socket", str(sock), *a],
                                      capture_output=True, text=True, timeout=10)
    out = admin("cache")
    assert out.returncode == 0 and HOST in out.stdout and "HITS" in out.stdout
    done = admin("cache", "purge", "http://%s/p1?cc=max-age=60" % HOST)
    assert done.returncode == 0 and "purged 1" in done.stdout, done
    done = admin("cache", "purge", "--prefix", "%s/img/" % HOST)
    assert "purged 2" in done.stdout, done
    for p in ("/p1", "/p2", "/img/a"):
        get(relay, p + "?cc=max-age=60")
    assert origin.counts == {"/p1": 2, "/p2": 1, "/img/a": 2, "/img/b": 1}
    stats = json.loads(admin("--json", "cache").stdout)["caches"][0]
    assert stats["hits"] == 5 and stats["misses"] == 6 and stats["entries"] == 3
    text = scrape(metrics_address(relay))
    assert sample(text, 'porthole_cache_requests_total{cache="%s",result="hit"}' % HOST) == 5
    assert sample(text, 'porthole_cache_entries{cache="%s"}' % HOST) == 3
    assert sample(text, 'porthole_cache_stored_bytes{cache="%s"}' % HOST) > 0


def disk_files(directory):
    """{path: bytes} of the entry files of a disk tier."""
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            if name != "lock":
                with open(os.path.join(root, name), "rb") as f:
                    out[os.path.join(root, name)] = f.read()
    return out


def test_the_disk_tier_survives_a_crash_and_a_reload_and_drops_a_damaged_entry(
        group, tmp_path, origin):
    cache_dir = tmp_path / "cache"
    relay = start_relay(group, tmp_path, cached_site(
        origin, '{ memory = "16MiB", disk = { path = "%s", size = "64MiB" } }' % cache_dir))
    _, _, kept = get(relay, "/kept?cc=max-age=600&size=20000")
    _, _, damaged = get(relay, "/damaged?cc=max-age=600")
    # An entry is stored once its response has gone out: the visitor may have it first.
    wait_until(lambda: len([p for p in disk_files(cache_dir) if not p.endswith(".tmp")]) == 2,
               message="both entries are on disk")
    relay.proc.signal(signal.SIGKILL)  # a crash: nothing is flushed or closed in order
    relay.proc.wait_exit()
    # One byte of one entry changes on disk, as a bad sector or a stray write would do.
    for path, data in disk_files(cache_dir).items():
        if b"/damaged?" in data:
            with open(path, "r+b") as f:
                f.seek(len(data) - 3)
                f.write(b"X")
    relay.start()
    status, fields, body = get(relay, "/kept?cc=max-age=600&size=20000")
    assert status == 200 and body == kept
    assert fields["cache-status"].startswith("porthole; hit"), fields
    assert origin.counts["/kept"] == 1
    # The damaged entry is not served: it is fetched again and the file is replaced.
    status, fields, body = get(relay, "/damaged?cc=max-age=600")
    assert status == 200 and fields["cache-status"] == "porthole; fwd=uri-miss; stored"
    assert body != damaged and origin.counts["/damaged"] == 2
    assert "failed its checks" in relay.proc.stderr_text()
    # A reload builds the site's cache anew; the disk tier carries what it held over.
    start = len(relay.proc.stderr_text())
    relay.proc.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in relay.proc.stderr_text()[start:],
               message="the relay reloads")
    _, fields, _ = get(relay, "/kept?cc=max-age=600&size=20000")
    assert fields["cache-status"].startswith("porthole; hit"), fields
    assert origin.counts["/kept"] == 1


class TmpfsRelay(Relay):
    """A relay in a mount namespace of its own where `directory` is a tmpfs of `size`."""

    def __init__(self, group, directory, size, extra):
        self.directory, self.size = directory, size
        super().__init__(group, extra=extra)

    @property
    def args(self):
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs -o size=%s tmpfs "$0" && exec "$@"' % self.size,
                str(self.directory)] + super().args


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="mounting a small tmpfs takes root")
def test_a_full_disk_turns_the_disk_tier_off_and_the_cache_goes_on_in_memory(
        group, tmp_path, origin):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    config = tmp_path / "relay.toml"
    # The operator gave the tier 1 GiB on a file system that has 256 KiB.
    config.write_text("metrics_addr = \"127.0.0.1:0\"\n" + cached_site(
        origin, '{ memory = "16MiB", disk = { path = "%s", size = "1GiB" } }' % cache_dir))
    sock = tmp_path / "admin.sock"
    relay = TmpfsRelay(group, cache_dir, "256k",
                       ["--config", str(config), "--json", "--admin-socket", str(sock)])
    paths = ["/full%d?cc=max-age=600&size=60000" % i for i in range(8)]
    bodies = []
    for p in paths:
        status, _, body = get(relay, p)
        assert status == 200 and len(body) == 60000
        bodies.append(body)
    for p, body in zip(paths, bodies):
        status, fields, again = get(relay, p)
        assert status == 200 and again == body
        assert fields["cache-status"].startswith("porthole; hit"), (p, fields)
    assert all(origin.counts["/full%d" % i] == 1 for i in range(8))
    assert "writing to disk failed (No space left on device)" in relay.proc.stderr_text()
    out = subprocess.run([BIN, "admin", "--socket", str(sock), "--json", "cache"],
                         capture_output=True, text=True, timeout=10)
    disk = json.loads(out.stdout)["caches"][0]["disk"]
    assert disk["writing"] is False and disk["failed_writes"] == 1
    assert 0 < disk["entries"] < 8
    text = scrape(metrics_address(relay))
    assert sample(text, 'porthole_cache_disk_errors_total{cache="%s",kind="write"}' % HOST) == 1
    assert sample(text, 'porthole_cache_disk_entries{cache="%s"}' % HOST) == disk["entries"]
    assert sample(text, 'porthole_cache_entries{cache="%s"}' % HOST) == 8


def test_a_bad_cache_table_is_refused_naming_its_line(tmp_path):
    assert_refused_at_marked_line(tmp_path / "r.toml", """
[[sites]]
hosts = ["a.test"]
upstream = ["http://127.0.0.1:9"]
cache = { memroy = "1MiB" } #<
""", "did you mean 'memory'")


def test_a_relay_of_a_cluster_caches_a_tunnel_another_relay_holds(group, cluster, origin):
    """relay-b runs the edge for a tunnel relay-a holds, its cache included: entries are scoped
    by the digest of the holder relay-a published, so a client that takes the name later is not
    answered with the first one's responses."""
    a, b = cluster(2, extra_config='[tunnel_policy]\ncache = { memory = "16MiB" }\n')
    first = group.agent(a, "http", origin.port, "--subdomain", "blog", token=TOKEN)

    def cache_status(relay, path):
        r = cluster_get(relay, "blog", path, 10, "-i")
        assert r.status == 200, r
        head = r.text.split("\r\n\r\n", 1)[0].lower()
        return next((l.split(":", 1)[1].strip() for l in head.split("\r\n")
                     if l.startswith("cache-status:")), None)

    wait_until(lambda: cluster_get(b, "blog", "/up").status == 200, 10)
    assert cache_status(b, "/post?cc=max-age=60") == "porthole; fwd=uri-miss; stored"
    assert cache_status(b, "/post?cc=max-age=60").startswith("porthole; hit")
    assert origin.counts["/post"] == 1

    # Another client takes the name: relay-b's entry was the first holder's.
    first.signal(signal.SIGTERM)
    assert first.wait_exit(10) == 0
    group.agent(a, "http", origin.port, "--subdomain", "blog", token=TOKEN)
    wait_until(lambda: cluster_get(b, "blog", "/up").status == 200, 10)
    assert cache_status(b, "/post?cc=max-age=60") == "porthole; fwd=uri-miss; stored"
    assert origin.counts["/post"] == 2
