"""The relay's dashboard, GET /api/recent and GET /api/events (docs/design-operations.md#dashboard).

The relay under test has a TCP admin port with a token, the admin socket, a site whose /private
route has a basic_auth policy, a route to a closed port, and a client with the tunnel `demo`.
Plain HTTP checks the dashboard's headers, who needs the token, the recent events' documents
and the event stream's framing and bound. The browser half, tests/browser/dashboard_check.mjs
(Node + playwright-core driving Debian's /usr/bin/chromium), enters the token, sees the client
and the tunnel, watches the request counter move while this test sends traffic, sees the
basic_auth refusal with its reason, kicks the client, and finds no CSP violation or console
error; its screenshot lands in build/test-artifacts/dashboard.png.
"""
import json
import socket
import subprocess
import time

import pytest

from helpers import accepts, free_port, wait_until
from test_admin import ADMIN_TOKEN, call
from test_inspector_browser import ARTIFACTS, BROWSER_DIR, CHROMIUM, BrowserCheck, require_tools
from test_policies import HOST, basic, get, policy, site, start_relay, to

CHECK_SCRIPT = BROWSER_DIR / "dashboard_check.mjs"
SCREENSHOT = ARTIFACTS / "dashboard.png"
USER = "alice:" + "$6$saltsalt$" + "x" * 86
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECRET_QUERY = "sig=do-not-keep-me"


class Dashboard:
    def __init__(self, relay, admin_port, sock, agent, backend_port):
        self.relay = relay
        self.port = admin_port
        self.sock = sock
        self.agent = agent
        self.backend_port = backend_port

    def api(self, path, token=ADMIN_TOKEN):
        return call(self.port, "GET", path, token=token)

    def refuse_basic_auth(self):
        a = get(self.relay.http_port, "/private/report?" + SECRET_QUERY,
                headers=[("Authorization", basic("alice", "wrong"))])
        assert a.status == 401, a

    def traffic(self, n):
        for i in range(n):
            assert get(self.relay.http_port, "/app/%d" % i).status == 200
            assert get(self.relay.http_port, "/", host="demo.localhost").status == 200


@pytest.fixture
def dash(group, tmp_path, backend, origin):
    b = backend("b")
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    token_file.chmod(0o600)
    closed = free_port()  # nothing listens there: the relay's 502 is an error event
    toml = site([HOST], [to(b, path="/app"),
                         to(b, path="/private", policies=[policy("basic_auth", users=[USER])]),
                         {"path": "/down", "upstream": ["http://127.0.0.1:%d" % closed]}])
    admin_port = free_port()
    sock = tmp_path / "admin.sock"
    relay = start_relay(group, tmp_path, toml, "--admin-addr", "127.0.0.1:%d" % admin_port,
                        "--admin-token-file", token_file, "--admin-socket", sock)
    wait_until(lambda: accepts(admin_port), 10, message="the admin port does not listen")
    agent = group.agent(relay, "http", origin.server_port, "--subdomain", "demo")
    return Dashboard(relay, admin_port, sock, agent, b.port)


# -- the files -------------------------------------------------------------------------------

def test_the_dashboards_files_have_a_strict_csp_and_need_no_token(dash):
    page = dash.api("/", token=None)
    assert page.status == 200, page
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.body
    assert '<script src="/admin.js" defer></script>' in html
    # nothing inline: every <script> has a src, no <style>, no style= or on...= attribute
    assert html.count("<script") == 1 and "<style" not in html and " style=" not in html
    assert " onclick=" not in html and " onload=" not in html
    for path, kind in (("/admin.js", "text/javascript"), ("/admin.css", "text/css")):
        f = dash.api(path, token=None)
        assert f.status == 200 and f.headers["content-type"] == kind + "; charset=utf-8", f
        assert f.headers["content-security-policy"] == CSP
        assert f.headers["x-content-type-options"] == "nosniff"
        # offline: nothing fetched from elsewhere
        assert "http://" not in f.body and "https://" not in f.body and "//cdn" not in f.body
    assert "http://" not in html and "https://" not in html
    # the page learns whether to ask for the token without a failed request
    assert dash.api("/dashboard.json", token=None).json() == {"token": "required"}
    assert call(dash.sock, "GET", "/dashboard.json").json() == {"token": "none"}
    assert call(dash.sock, "GET", "/").headers["content-security-policy"] == CSP
    # the files are read-only
    assert call(dash.sock, "POST", "/", body="{}").status == 405


def test_the_api_behind_the_dashboard_needs_the_token_on_tcp(dash):
    for path in ("/api/recent", "/api/events", "/api/clients"):
        for token in (None, "wrong-" + ADMIN_TOKEN):
            a = dash.api(path, token=token)
            assert a.status == 401 and a.headers.get("www-authenticate") == "Bearer", (path, a)
    assert dash.api("/api/recent").status == 200
    # the socket needs none: the kernel names its callers
    assert call(dash.sock, "GET", "/api/recent").status == 200


# -- /api/recent -----------------------------------------------------------------------------

def test_recent_lists_refusals_and_errors_with_their_reasons(dash):
    dash.traffic(3)  # successes leave nothing behind
    assert dash.api("/api/recent").json() == {"events": [], "truncated": False, "capacity": 256}
    dash.refuse_basic_auth()
    assert get(dash.relay.http_port, "/", host="nobody.localhost").status == 404
    assert get(dash.relay.http_port, "/down/x?q=1").status == 502
    # An event a worker loop made reaches the ring a moment after its answer was sent.
    doc = wait_until(lambda: (d := dash.api("/api/recent").json()) and len(d["events"]) == 3 and d,
                     10, message="three events were not kept")
    events = doc["events"]
    # Newest first by time, whichever loop made each; seq counts them in the order kept.
    assert [(e["kind"], e["reason"], e["status"]) for e in events] == [
        ("error", "connect", 502), ("refusal", "no_tunnel", 404), ("refusal", "basic_auth", 401)
    ], events
    assert sorted(e["seq"] for e in events) == [1, 2, 3]
    auth = events[2]
    assert auth["host"] == HOST and auth["method"] == "GET" and auth["path"] == "/private/report"
    assert auth["visitor"] == "127.0.0.1" and auth["site"] == HOST and auth["tunnel"] is None
    assert auth["time"].endswith("Z") and len(auth["time"]) == len("2025-05-01T10:04:05.123Z")
    assert events[1]["host"] == "nobody.localhost" and events[1]["path"] == "/"
    assert events[0]["path"] == "/down/x" and events[0]["site"] == HOST
    assert SECRET_QUERY not in json.dumps(doc) and "q=1" not in json.dumps(doc)
    limited = dash.api("/api/recent?limit=1").json()
    assert [e["path"] for e in limited["events"]] == ["/down/x"] and limited["truncated"] is True
    # the socket gives the same document
    assert call(dash.sock, "GET", "/api/recent").json()["events"] == events


# -- /api/events -----------------------------------------------------------------------------

class EventStream:
    """GET /api/events on a plain socket, read as server-sent events."""

    def __init__(self, port, token=ADMIN_TOKEN):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        if token:
            head += "Authorization: Bearer %s\r\n" % token
        self.sock.sendall((head + "\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "the stream closed before its head: %r" % self.buffer
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines[1:])}
        self.comments = []

    def next_event(self, deadline):
        """(name, data) of the next event; comments are kept aside."""
        while True:
            if b"\n\n" in self.buffer:
                block, _, self.buffer = self.buffer.partition(b"\n\n")
                name, data = None, []
                for line in block.decode().split("\n"):
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line.startswith("event: "):
                        name = line[len("event: "):]
                    elif line.startswith("data: "):
                        data.append(line[len("data: "):])
                    else:
                        raise AssertionError("not an event stream line: %r" % line)
                if name is None and not data:
                    continue
                assert name and len(data) == 1, block
                return name, json.loads(data[0])
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no event before the deadline")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the event stream ended")
            self.buffer += chunk

    def close(self):
        self.sock.close()


def test_events_stream_rates_each_second_and_refusals_as_they_happen(dash):
    stream = EventStream(dash.port)
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["cache-control"] == "no-store"
        name, first = stream.next_event(time.monotonic() + 5)
        assert name == "rate", (name, first)
        assert set(first) == {"interval_ms", "requests", "by_class", "bytes_in", "bytes_out",
                              "sessions", "requests_total"}, first
        assert set(first["by_class"]) == {"none", "1xx", "2xx", "3xx", "4xx", "5xx"}
        assert 500 <= first["interval_ms"] <= 3000 and first["sessions"] == 1, first
        assert stream.comments, "the stream starts with a comment so a page sees it open"

        sent = 10
        dash.traffic(sent // 2)
        dash.refuse_basic_auth()
        rates, refusal = [], None
        deadline = time.monotonic() + 10
        while sum(r["requests"] for r in rates) < sent + 1 or refusal is None:
            name, data = stream.next_event(deadline)
            if name == "rate":
                rates.append(data)
            elif name == "refusal":
                assert refusal is None, data
                refusal = data
            else:
                raise AssertionError("unexpected event %s %r" % (name, data))
        assert sum(r["by_class"]["2xx"] for r in rates) == sent, rates
        assert sum(r["by_class"]["4xx"] for r in rates) == 1, rates
        assert sum(r["bytes_in"] for r in rates) > 0 and sum(r["bytes_out"] for r in rates) > 0
        assert rates[-1]["requests_total"] == first["requests_total"] + sent + 1, rates
        assert refusal["reason"] == "basic_auth" and refusal["status"] == 401, refusal
        assert refusal["path"] == "/private/report" and refusal["kind"] == "refusal", refusal
        # the same event as GET /api/recent gives
        assert dash.api("/api/recent").json()["events"][0] == refusal
    finally:
        stream.close()


def test_events_take_a_bounded_number_of_pages(dash):
    streams = []
    try:
        for _ in range(8):
            s = EventStream(dash.port)
            assert s.status == 200
            streams.append(s)
        ninth = dash.api("/api/events")
        assert ninth.status == 503 and "8 pages" in ninth.json()["error"], ninth
        assert ninth.headers.get("retry-after") == "5"
        streams.pop().close()

        def another_fits():
            s = EventStream(dash.port)
            if s.status == 200:
                streams.append(s)
                return True
            s.close()
            return False
        wait_until(another_fits, 10, step=0.1, message="a closed stream's place was not freed")
        # every page still gets its rates
        for s in streams:
            assert s.next_event(time.monotonic() + 5)[0] == "rate"
    finally:
        for s in streams:
            s.close()


# -- the page in Chromium ----------------------------------------------------------------------

def test_the_dashboard_in_chromium(dash, tmp_path, capsys):
    require_tools()
    clients = dash.api("/api/clients").json()["clients"]
    assert len(clients) == 1, clients
    traffic_requests = 20

    def do(need):
        if need == "traffic":
            dash.traffic(traffic_requests // 2)
        elif need == "refusal":
            dash.refuse_basic_auth()
        else:
            raise AssertionError("unknown need %r" % need)

    check = BrowserCheck([
        "--url", "http://127.0.0.1:%d/" % dash.port, "--token", ADMIN_TOKEN,
        "--client-id", clients[0]["id"], "--tunnel", "demo", "--site", HOST,
        "--requests", traffic_requests, "--refused-path", "/private/report",
        "--screenshot", SCREENSHOT, "--chromium", CHROMIUM,
    ], tmp_path, script=CHECK_SCRIPT)
    final, rc = check.run(do)

    with capsys.disabled():
        print("\ndashboard screenshot: %s" % SCREENSHOT)
    assert final is not None, "browser check ended without a result (exit %s)\n%s" % (
        rc, check.describe())
    assert final["ok"] and rc == 0, "browser check failed at %r: %s\nscreenshot: %s\n%s" % (
        final.get("step"), final.get("error"), final.get("screenshot"), check.describe())
    result = final["result"]
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 0
    assert result["counted_after"] >= result["counted_before"] + traffic_requests, result
    assert "basic_auth" in result["refusal_row"] and SECRET_QUERY not in result["refusal_row"]
    assert result["csp_violations"] == [] and result["problems"] == [], result
    # the page's Kick closed the session; the client came back with its name
    assert result["kicked"] == clients[0]["id"]
    def back():
        now = dash.api("/api/clients").json()["clients"]
        tunnels = dash.api("/api/tunnels").json()["tunnels"]
        return (len(now) == 1 and now[0]["id"] != clients[0]["id"] and
                [(t["name"], t["state"]) for t in tunnels] == [("demo", "serving")])
    wait_until(back, 15, step=0.1, message="the kicked client did not come back with its name")
