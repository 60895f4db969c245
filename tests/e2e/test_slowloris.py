"""Slowloris against one tunnel must not starve another, and header_timeout reclaims the sockets.

The attack is slowhttptest in slow-headers mode (Debian package `slowhttptest`).
NAME.localhost does not resolve through /etc/hosts, so slowhttptest is pointed
at the relay as its HTTP proxy (-d): every request then goes to the relay's HTTP
port with `Host: NAME.localhost:PORT`, which is all the relay routes on. Without
the tool, Python sockets play the same attack.
"""
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time

import pytest

from helpers import wait_until

HEADER_TIMEOUT = 3  # seconds, written to the relay's config file
CONNECTIONS = 500
ATTACK_SECONDS = 15  # slowhttptest -l; the tool stops earlier once every connection is closed
SEQUENTIAL_GETS = 20
MEDIAN_LIMIT = 0.200  # seconds
FD_SLACK = 5  # descriptors above the baseline still counted as "back to baseline"


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def timed_get(port, host, path="/"):
    """One GET on a fresh connection: (seconds, status, body)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        body = resp.read()
        return time.monotonic() - start, resp.status, body
    finally:
        conn.close()


class SlowhttptestAttack:
    def __init__(self, relay, host, logdir):
        self.log_path = logdir / "slowhttptest.out"
        self.log = open(self.log_path, "wb")
        args = ["slowhttptest", "-H", "-c", str(CONNECTIONS), "-r", "200", "-i", "5", "-x", "24",
                "-t", "GET", "-p", "3", "-l", str(ATTACK_SECONDS),
                "-u", "http://%s/" % host, "-d", "127.0.0.1:%d" % relay.http_port]
        self.popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        finally:
            self.stop()

    def stop(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=5)
        self.log.close()

    def output(self):
        return self.log_path.read_text("utf-8", "replace")[-3000:]


class PythonAttack:
    """CONNECTIONS sockets, each sending a partial request head a few bytes at a time."""

    def __init__(self, relay, host, logdir):
        self.port, self.host = relay.http_port, host
        self.socks = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        deadline = time.monotonic() + ATTACK_SECONDS
        for _ in range(CONNECTIONS):
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n" % self.host).encode())
                self.socks.append(s)
            except OSError:
                pass
        while self.socks and time.monotonic() < deadline and not self.stopped.wait(1.0):
            alive = []
            for s in self.socks:
                try:
                    s.sendall(b"X-a: b\r\n")
                    alive.append(s)
                except OSError:
                    s.close()
            self.socks = alive
        for s in self.socks:
            s.close()

    def wait(self, timeout):
        self.thread.join(timeout)
        self.stopped.set()
        self.thread.join(5)
        return 0

    def stop(self):
        self.stopped.set()

    def output(self):
        return "python slowloris"


def test_slowloris_on_one_tunnel_does_not_starve_another(group, origin, tmp_path):
    config = tmp_path / "relay.toml"
    config.write_text("header_timeout = %d\n" % HEADER_TIMEOUT)
    relay = group.relay("--config", str(config))
    group.agent(relay, "http", origin.port, "--subdomain", "victima", name="agent-a")
    group.agent(relay, "http", origin.port, "--subdomain", "otherb", name="agent-b")
    host_a = "victima.localhost:%d" % relay.http_port
    host_b = "otherb.localhost:%d" % relay.http_port

    for host in (host_a, host_b):  # both tunnels work, and any lazily opened descriptors exist
        _, status, body = timed_get(relay.http_port, host)
        assert (status, body) == (200, b"hello from origin\n"), host
    baseline = fd_count(relay.pid)

    tool = SlowhttptestAttack if shutil.which("slowhttptest") else PythonAttack
    attack_started = time.monotonic()
    attack = tool(relay, host_a, tmp_path)
    try:
        # the attack has landed once the relay holds many more sockets than before
        try:
            peak = wait_until(lambda: fd_count(relay.pid) >= baseline + 100 and fd_count(relay.pid),
                              timeout=5, step=0.05)
        except TimeoutError:
            pytest.fail("the slowloris never reached the relay (fds %d, baseline %d)\n%s" % (
                fd_count(relay.pid), baseline, attack.output()))

        latencies, failures = [], []
        for i in range(SEQUENTIAL_GETS):
            try:
                seconds, status, body = timed_get(relay.http_port, host_b)
            except OSError as exc:
                failures.append("GET %d: %s: %s" % (i, type(exc).__name__, exc))
                continue
            latencies.append(seconds)
            if status != 200 or body != b"hello from origin\n":
                failures.append("GET %d: status %d body %r" % (i, status, body[:100]))
            peak = max(peak, fd_count(relay.pid))
            time.sleep(0.1)  # spread the probes over the attack
        assert not failures, "GETs through tunnel B failed during the attack: %s" % failures
        median = statistics.median(latencies)
        print("baseline fds %d, peak %d; tunnel B latencies ms: %s" % (
            baseline, peak, ["%.1f" % (x * 1000) for x in latencies]))
        assert median < MEDIAN_LIMIT, "median latency %.1f ms during the attack (all: %s)" % (
            median * 1000, ["%.1f" % (x * 1000) for x in latencies])

        # The attacker holds its sockets for ATTACK_SECONDS; the relay must drop them well before,
        # HEADER_TIMEOUT after each head started (plus the ramp-up of the connections).
        budget = ATTACK_SECONDS - 2 - (time.monotonic() - attack_started)
        try:
            wait_until(lambda: fd_count(relay.pid) <= baseline + FD_SLACK, timeout=budget, step=0.1)
        except TimeoutError:
            pytest.fail("slow heads not dropped: relay holds %d fds %.1f s into the attack "
                        "(baseline %d, peak %d, header_timeout %d s)" % (
                            fd_count(relay.pid), time.monotonic() - attack_started, baseline, peak,
                            HEADER_TIMEOUT))
        print("relay back to %d fds %.1f s into the attack" % (
            fd_count(relay.pid), time.monotonic() - attack_started))

        rc = attack.wait(timeout=ATTACK_SECONDS + 10)
        assert rc == 0, "slowloris tool failed (%s)\n%s" % (rc, attack.output())
    finally:
        attack.stop()

    # and they stay at the baseline once the attacker is gone
    try:
        wait_until(lambda: fd_count(relay.pid) <= baseline + FD_SLACK, timeout=10, step=0.1)
    except TimeoutError:
        pytest.fail("relay still holds %d fds 10 s after the attack (baseline %d, peak %d)\n%s" % (
            fd_count(relay.pid), baseline, peak, attack.output()))
    assert relay.proc.alive(), relay.proc.describe()

    # the attacked tunnel serves again
    _, status, body = timed_get(relay.http_port, host_a)
    assert (status, body) == (200, b"hello from origin\n")
