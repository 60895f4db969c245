"""The client's Prometheus metrics (README "Client metrics"): its inspector serves /metrics, which
Debian's promtool lints clean; requests are counted per tunnel and status class exactly as sent,
bytes of a TCP tunnel exactly as carried, an unreachable local service as a failure, a relay
restart as a reconnect; the inspector's Host check guards the page."""
import http.client
import http.server
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from helpers import RawOrigin, split_url, wait_until
from test_tcp import echo, recv_exactly

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="promtool is not installed (Debian: prometheus, see scripts/install-deps)")
TUNNEL = "command_line"  # the name of a tunnel given on the command line


def scrape(inspector):
    with urllib.request.urlopen(inspector + "/metrics", timeout=5) as r:
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return r.read().decode()


def samples(text):
    """{'name{labels}': value} of every sample line."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            found[key] = float(value)
    return found


def value(inspector, key):
    return samples(scrape(inspector)).get(key)


def requests_key(code_class):
    return 'porthole_client_requests_total{tunnel="%s",code_class="%s"}' % (TUNNEL, code_class)


def get(relay, agent, path):
    """One request through the tunnel on a connection of its own; (status, body)."""
    name = split_url(agent.ready["url"])[1].split(".")[0]
    conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "%s.localhost" % name})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def lint(text):
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr + text


class StatusHandler(http.server.BaseHTTPRequestHandler):
    """GET /code/N answers status N with a short body (none for 1xx, 204 and 304)."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        code = int(self.path[len("/code/"):]) if self.path.startswith("/code/") else 200
        body = b"" if code in (204, 304) else b"status %d\n" % code
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def served():
    """A local service to stop mid-test; stopped at teardown too."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StatusHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = {"port": server.server_address[1], "running": True}

    def stop():
        if state["running"]:
            state["running"] = False
            server.shutdown()
            server.server_close()

    state["stop"] = stop
    yield state
    stop()


def http_tunnel(group, relay, port):
    agent = group.agent(relay, "http", port)
    return agent, agent.wait_event("inspector")["url"]


@needs_promtool
def test_requests_are_counted_per_status_class_and_the_scrape_lints_clean(group, relay, served):
    agent, inspector = http_tunnel(group, relay, served["port"])
    # Every series exists, at zero, before the first request: increase() misses none.
    before = samples(scrape(inspector))
    for code_class in ("none", "1xx", "2xx", "3xx", "4xx", "5xx"):
        assert before[requests_key(code_class)] == 0
    sent = {"2xx": 7, "4xx": 3, "5xx": 2, "3xx": 1}
    for _ in range(sent["2xx"]):
        assert get(relay, agent, "/")[0] == 200
    for _ in range(sent["4xx"]):
        assert get(relay, agent, "/code/404")[0] == 404
    for _ in range(sent["5xx"]):
        assert get(relay, agent, "/code/503")[0] == 503
    assert get(relay, agent, "/code/304")[0] == 304
    total = sum(sent.values())
    count_key = 'porthole_client_request_duration_seconds_count{tunnel="%s"}' % TUNNEL
    # A request is counted as its exchange ends, a moment after the visitor has the response.
    wait_until(lambda: value(inspector, count_key) == total, timeout=10,
               message="the client counted %d requests" % total)
    text = scrape(inspector)
    lint(text)
    got = samples(text)
    for code_class, n in sent.items():
        assert got[requests_key(code_class)] == n, (code_class, text)
    assert got[requests_key("none")] == 0
    assert got[requests_key("1xx")] == 0
    bucket = 'porthole_client_request_duration_seconds_bucket{tunnel="%s",le="+Inf"}' % TUNNEL
    assert got[bucket] == total
    assert got['porthole_client_bytes_total{tunnel="%s",direction="in"}' % TUNNEL] > 0
    # At least the bodies of the 200s came back through the client.
    body = len(b"status 200\n")
    assert got['porthole_client_bytes_total{tunnel="%s",direction="out"}' % TUNNEL] > 7 * body
    assert got['porthole_client_visitor_connections_opened_total{tunnel="%s"}' % TUNNEL] == total
    assert got["porthole_client_session_up"] == 1
    assert got["porthole_client_session_start_time_seconds"] > 1.6e9
    assert got['porthole_client_tunnels{kind="http"}'] == 1
    assert got['porthole_client_tunnel_up{tunnel="%s",kind="http"}' % TUNNEL] == 1
    assert got['porthole_client_local_connect_failures_total{tunnel="%s",reason="refused"}'
               % TUNNEL] == 0
    assert re.search(r'^porthole_build_info\{version="[^"]+"\} 1$', text, re.M)
    assert got["process_open_fds"] > 0
    assert got["porthole_memory_pss_bytes"] > 0
    # The pool refills after each visitor; the heartbeat has measured a round trip.
    wait_until(lambda: (value(inspector, 'porthole_client_data_pool_connections{state="idle"}')
                        or 0) > 0, timeout=10, message="idle data connections")
    wait_until(lambda: value(inspector, "porthole_client_rtt_seconds") is not None, timeout=10,
               message="a heartbeat round trip")
    # Scrapes are not requests: the counts stay as they were.
    assert samples(scrape(inspector))[count_key] == total


def test_a_stopped_local_service_counts_as_a_refused_connection(group, relay, served):
    agent, inspector = http_tunnel(group, relay, served["port"])
    assert get(relay, agent, "/")[0] == 200
    served["stop"]()
    status, body = get(relay, agent, "/")
    assert status == 502, body
    failures = 'porthole_client_local_connect_failures_total{tunnel="%s",reason="%s"}'
    wait_until(lambda: value(inspector, failures % (TUNNEL, "refused")) == 1, timeout=10,
               message="one refused connection counted")
    got = samples(scrape(inspector))
    assert got[failures % (TUNNEL, "timeout")] == 0
    # The visitor got the client's 502: counted under 5xx, next to the 200 before it.
    assert got[requests_key("5xx")] == 1
    assert got[requests_key("2xx")] == 1


def test_a_relay_restart_shows_as_a_reconnect(group, relay, served):
    agent, inspector = http_tunnel(group, relay, served["port"])
    reasons = ("unreachable", "handshake", "heartbeat", "lost", "goaway", "protocol")

    def reconnects():
        got = samples(scrape(inspector))
        return {r: got['porthole_client_reconnects_total{reason="%s"}' % r] for r in reasons}

    assert sum(reconnects().values()) == 0
    first_start = value(inspector, "porthole_client_session_start_time_seconds")
    assert first_start is not None
    events = agent.event_index()
    relay.restart()
    agent.wait_event("ready", start=events)
    wait_until(lambda: value(inspector, "porthole_client_session_up") == 1, timeout=10,
               message="the session is up again")
    after = reconnects()
    # A stopping relay queues a GOAWAY but may close first (then `lost`); a retry before it
    # listens again is `unreachable`.
    assert after["goaway"] + after["lost"] >= 1, after
    assert after["handshake"] == after["heartbeat"] == after["protocol"] == 0, after
    assert value(inspector, "porthole_client_session_start_time_seconds") > first_start
    assert get(relay, agent, "/")[0] == 200


def test_a_tcp_tunnel_counts_its_bytes_exactly(group, relay):
    echo_server = RawOrigin(echo)
    try:
        agent = group.agent(relay, "tcp", echo_server.port)
        inspector = agent.wait_event("inspector")["url"]
        port = split_url(agent.ready["url"])[2]
        sent = 0
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for size in (1, 1000, 300000):
                payload = b"x" * size
                s.sendall(payload)
                assert recv_exactly(s, size) == payload
                sent += size
        key = 'porthole_client_bytes_total{tunnel="%s",direction="%s"}'
        wait_until(lambda: value(inspector, key % (TUNNEL, "out")) == sent, timeout=10,
                   message="%d bytes counted back to the visitor" % sent)
        got = samples(scrape(inspector))
        assert got[key % (TUNNEL, "in")] == sent
        assert got['porthole_client_tunnels{kind="tcp"}'] == 1
        assert got['porthole_client_visitor_connections_opened_total{tunnel="%s"}' % TUNNEL] == 1
        # A TCP tunnel has no requests to count.
        assert requests_key("2xx") not in got
    finally:
        echo_server.close()


def test_metrics_answer_only_a_local_host_and_only_get(group, relay, served):
    _, inspector = http_tunnel(group, relay, served["port"])
    host, port = inspector.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/metrics", headers={"Host": "attacker.example:%s" % port})
        r = conn.getresponse()
        r.read()
        assert r.status == 421
        conn.request("POST", "/metrics", body=b"{}",
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 405
    finally:
        conn.close()
    assert "porthole_client_session_up 1" in scrape(inspector.replace("127.0.0.1", "localhost"))


def test_without_the_inspector_there_are_no_metrics(group, relay, served):
    agent = group.agent(relay, "http", served["port"], "--inspect=false")
    assert get(relay, agent, "/")[0] == 200
    assert not any(e.get("event") == "inspector" for e in agent.events)
