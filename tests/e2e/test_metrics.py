"""Prometheus metrics (README "Observing the relay"): metrics_addr serves /metrics, which
Debian's promtool lints clean and a real Prometheus scrapes; counters match the requests sent;
tunnel labels are bounded; a token guards the port."""
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from helpers import free_port, wait_until
from test_policies import (HOST, basic, get, policy, raw, refused_at_start, site, start_relay,
                           to)

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    not PROMTOOL or not PROMETHEUS,
    reason="prometheus is not installed (Debian: prometheus, see scripts/install-deps)")
USER = "alice:" + "$6$saltsalt$" + "x" * 86


def scrape(address, token=None):
    request = urllib.request.Request("http://%s/metrics" % address)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=5) as r:
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return r.read().decode()


def metrics_address(relay):
    # The listeners accept before the relay has printed where they are: wait for the line.
    return relay.proc.wait_event("listening")["metrics"]


def sample(text, name_and_labels):
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return float(line.split()[-1])
    raise AssertionError("no %s in:\n%s" % (name_and_labels, text))


def relay_with_site(group, tmp_path, b, *extra, keys=""):
    toml = ("metrics_addr = \"127.0.0.1:0\"\n" + keys +
            site([HOST], [to(b, path="/app"),
                          to(b, path="/private", policies=[policy("basic_auth", users=[USER])])]))
    return start_relay(group, tmp_path, toml, "--json", *extra)


@needs_prometheus
def test_a_scrape_after_every_kind_of_request_passes_promtool(group, tmp_path, backend, origin):
    b = backend("b")
    relay = relay_with_site(group, tmp_path, b)
    group.agent(relay, "http", str(origin.server_port), "--subdomain", "counted")
    assert get(relay.http_port, "/app/x").status == 200
    assert get(relay.http_port, "/nowhere").status == 404
    assert get(relay.http_port, "/private",
               headers=[("Authorization", basic("alice", "no"))]).status == 401
    assert get(relay.http_port, "/", host="counted.localhost").status == 200
    assert get(relay.http_port, "/", host="nobody.localhost").status == 404
    raw(relay.http_port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    text = scrape(metrics_address(relay))
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr + text
    assert sample(text, 'porthole_requests_total{site="%s",code_class="2xx"}' % HOST) == 1
    assert sample(text, 'porthole_requests_total{site="%s",code_class="4xx"}' % HOST) == 2
    assert sample(text, 'porthole_requests_total{tunnel="counted",code_class="2xx"}') == 1
    assert sample(text, 'porthole_requests_total{route="none",code_class="4xx"}') == 2
    assert sample(text, 'porthole_refusals_total{reason="basic_auth"}') == 1
    assert sample(text, 'porthole_refusals_total{reason="no_route"}') == 1
    assert sample(text, 'porthole_refusals_total{reason="no_tunnel"}') == 1
    assert sample(text, 'porthole_refusals_total{reason="bad_request"}') == 1
    assert sample(text, 'porthole_request_duration_seconds_count{kind="site",site="%s"}'
                  % HOST) == 3
    assert sample(text, 'porthole_sessions') == 1
    assert sample(text, 'porthole_tunnels{kind="http"}') == 1
    assert sample(text, 'porthole_bytes_total{direction="in"}') > 0
    assert sample(text, 'porthole_upstream_healthy{site="%s",member="http://127.0.0.1:%d"}'
                  % (HOST, b.port)) == 1
    assert sample(text, 'process_open_fds') > 0
    assert sample(text, 'porthole_memory_pss_bytes') > 0


class Prometheus:
    def __init__(self, tmp_path, target, logdir):
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: porthole\n    static_configs:\n"
            "      - targets: ['%s']\n" % target)
        self.log = open(os.path.join(logdir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file", str(config), "--storage.tsdb.path",
             str(tmp_path / "tsdb"), "--web.listen-address", "127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr):
        try:
            result = self.query(expr)
        except OSError:
            return None
        return float(result[0]["value"][1]) if result else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@needs_prometheus
def test_prometheus_scrapes_the_relay_and_counts_what_was_sent(group, tmp_path, backend, origin):
    b = backend("b")
    relay = relay_with_site(group, tmp_path, b)
    group.agent(relay, "http", str(origin.server_port), "--subdomain", "scraped")
    prometheus = Prometheus(tmp_path, metrics_address(relay), group.logdir)
    try:
        tunnel = 'porthole_requests_total{tunnel="scraped",code_class="2xx"}'
        at_site = 'porthole_requests_total{site="%s",code_class="2xx"}' % HOST
        # The series exist, at zero, before the first request.
        wait_until(lambda: prometheus.value(tunnel) == 0, timeout=30,
                   message="Prometheus has a scrape of the tunnel's series")
        sent = 30
        for i in range(sent):
            assert get(relay.http_port, "/", host="scraped.localhost").status == 200
            assert get(relay.http_port, "/app/%d" % i).status == 200
        wait_until(lambda: prometheus.value(tunnel) == sent and prometheus.value(at_site) == sent,
                   timeout=30, message="Prometheus sees %d requests of each" % sent)
        # Over the window, the increase Prometheus computes is exactly what was sent.
        window = "max_over_time(%s[5m]) - min_over_time(%s[5m])"
        assert prometheus.value(window % (tunnel, tunnel)) == sent
        assert prometheus.value("rate(%s[1m])" % tunnel) > 0
        assert prometheus.value('up{job="porthole"}') == 1
    finally:
        prometheus.stop()


def test_tunnel_names_past_the_cap_count_as_other(group, tmp_path, origin):
    (tmp_path / "relay.toml").write_text("metrics_tunnel_labels = 2\nmetrics_addr = \"127.0.0.1:0\"\n")
    relay = group.relay("--config", str(tmp_path / "relay.toml"), "--json")
    for name in ("first", "second", "third"):
        group.agent(relay, "http", str(origin.server_port), "--subdomain", name)
        assert get(relay.http_port, "/", host="%s.localhost" % name).status == 200
    text = scrape(metrics_address(relay))
    assert sample(text, 'porthole_requests_total{tunnel="first",code_class="2xx"}') == 1
    assert sample(text, 'porthole_requests_total{tunnel="second",code_class="2xx"}') == 1
    assert sample(text, 'porthole_requests_total{tunnel="_other",code_class="2xx"}') == 1
    assert 'tunnel="third"' not in text


def test_a_metrics_token_is_required_when_set(group, tmp_path, backend):
    b = backend("b")
    token = "t" * 40
    (tmp_path / "metrics.token").write_text(token + "\n")
    relay = relay_with_site(group, tmp_path, b,
                            keys='metrics_token_file = "%s"\n' % (tmp_path / "metrics.token"))
    address = metrics_address(relay)
    for given in (None, "wrong", token + "x"):
        with pytest.raises(urllib.error.HTTPError) as e:
            scrape(address, given)
        assert e.value.code == 401
        assert e.value.headers["WWW-Authenticate"] == "Bearer"
    assert "porthole_build_info" in scrape(address, token)
    assert token not in relay.proc.stdout_text() + relay.proc.stderr_text()


def test_metrics_off_loopback_without_a_token_stops_the_start(tmp_path):
    path = tmp_path / "relay.toml"
    path.write_text('metrics_addr = "0.0.0.0:%d"\n' % free_port())
    assert "metrics_token_file" in refused_at_start(path)
    (tmp_path / "short.token").write_text("short\n")
    path.write_text('metrics_addr = "127.0.0.1:%d"\nmetrics_token_file = "%s"\n'
                    % (free_port(), tmp_path / "short.token"))
    assert "at least 32" in refused_at_start(path)


def test_certificate_expiry_times_are_exported(group, tmp_path):
    relay = group.relay("--metrics-addr", "127.0.0.1:0", "--json", "--control-tls", "on",
                        "--https-addr", "127.0.0.1:%d" % free_port(),
                        "--tls-self-signed", str(tmp_path / "ca"))
    text = scrape(metrics_address(relay))
    now = time.time()
    for name in ("control", "localhost"):
        expiry = sample(text, 'porthole_cert_expiry_timestamp_seconds{name="%s"}' % name)
        assert now + 86400 < expiry < now + 20 * 365 * 86400, (name, expiry)


def test_bytes_of_a_tcp_tunnel_are_counted_while_it_runs(group, tmp_path):
    """porthole_bytes_total counts what TCP tunnels carry too, before the connection ends."""
    import socket
    import threading
    echo = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = echo.accept()
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data * 2)  # twice what came in goes back
    threading.Thread(target=serve, daemon=True).start()
    relay = group.relay("--metrics-addr", "127.0.0.1:0", "--json")
    address = metrics_address(relay)
    tcp = group.agent(relay, "tcp", echo.getsockname()[1])
    port = int(tcp.ready["url"].rsplit(":", 1)[1])

    def bytes_now():
        text = scrape(address)
        return (sample(text, 'porthole_bytes_total{direction="in"}'),
                sample(text, 'porthole_bytes_total{direction="out"}'))
    before_in, before_out = bytes_now()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as visitor:
        visitor.sendall(b"x" * 50_000)
        got = 0
        while got < 100_000:
            got += len(visitor.recv(65536))
        # Still open: counted as it went, not when the connection ends.
        wait_until(lambda: bytes_now()[1] - before_out >= 100_000,
                   message="the bytes sent to the visitor are counted")
        after_in, after_out = bytes_now()
    assert after_in - before_in == 50_000, (before_in, after_in)
    assert after_out - before_out == 100_000, (before_out, after_out)
    echo.close()
