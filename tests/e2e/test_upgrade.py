"""Binary upgrade (README "Upgrading without a restart"): `porthole admin upgrade` starts the new
program, hands it the listening sockets, the leases and the self-signed control certificate, and
drains. Under load no request fails, no connection to a TCP tunnel's port is refused, clients
come back to the new process within a second and still trust its pinned certificate, and the old
process exits 0. A new program that cannot serve leaves the old one serving."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from helpers import BIN, free_port, wait_until
import http.client

import test_reload
from test_policies import HOST, get, site, to


def admin(sock, *args, timeout=60):
    return subprocess.run([BIN, "admin", "--socket", str(sock), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; its parent (the replaced relay, or init) reaps it.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class NewRelay:
    """The relay an upgrade started: not the test's child, so it is stopped by its PID."""

    def __init__(self, pid):
        self.pid = pid

    def stop(self):
        if alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            try:
                wait_until(lambda: not alive(self.pid), timeout=15)
            except TimeoutError:
                os.kill(self.pid, signal.SIGKILL)


class Load(test_reload.Load):
    """test_reload's visitors, sending as a browser does: on a kept-alive connection until an
    answer says Connection: close, then on a new one. Every request must get an answer."""

    closes = 0  # answers that ended their connection

    def run(self):
        conn, on_it = None, 0
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    on_it = 0
                conn.request("GET", self.path, headers={"Host": self.host})
                r = conn.getresponse()
                r.read()
                on_it += 1
                with self.lock:
                    self.statuses.append(r.status)
                    self.closes += r.will_close
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append("%r after %d answers on its connection" % (e, on_it))
                conn = None


class TcpLoop:
    """A connection to a TCP tunnel's port every 10 ms, each sending one HTTP request through it:
    counts refusals, and connections that got no answer."""

    def __init__(self, port):
        self.port = port
        self.answered, self.refused, self.unanswered = 0, [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError as e:
                self.refused.append(repr(e))
                time.sleep(0.01)
                continue
            try:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]:
                    self.answered += 1
                else:
                    self.unanswered.append(data[:80])
            except OSError as e:
                self.unanswered.append(repr(e))
            finally:
                s.close()
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=20)


def clients_of(sock):
    done = admin(sock, "--json", "clients", timeout=10)
    return json.loads(done.stdout)["clients"] if done.returncode == 0 else None


def test_an_upgrade_under_load_drops_nothing(group, tmp_path, backend, origin):
    a = backend("a")
    config = tmp_path / "relay.toml"
    config.write_text(site([HOST], [to(a, path="/app")]))
    sock = tmp_path / "admin.sock"
    relay = group.relay("--config", str(config), "--admin-socket", str(sock),
                        "--control-tls", "on", "--json")
    fingerprint = relay.proc.wait_event("listening")["fingerprint"]
    web = group.agent(relay, "http", origin.server_port, "--subdomain", "kept",
                      "--server-fingerprint", fingerprint)
    tcp = group.agent(relay, "tcp", origin.server_port, "--server-fingerprint", fingerprint)
    tcp_port = int(tcp.ready["url"].rsplit(":", 1)[1])
    assert get(relay.http_port, "/", host="kept.localhost").status == 200
    web_ready, tcp_ready = web.event_index(), tcp.event_index()

    # A second copy of the program, as a package upgrade leaves one.
    new_binary = tmp_path / "porthole-new"
    shutil.copy2(BIN, new_binary)
    site_load = Load(relay.http_port, HOST, "/app/x")
    tunnel_load = Load(relay.http_port, "kept.localhost", "/")
    tcp_loop = TcpLoop(tcp_port)
    new = None
    try:
        wait_until(lambda: site_load.count() > 30 and tunnel_load.count() > 30 and
                   tcp_loop.answered > 5, message="load is running")
        done = admin(sock, "upgrade", "--binary", str(new_binary), "--wait", "30")
        assert done.returncode == 0, (done.stdout, done.stderr, relay.proc.describe())
        m = re.match(r"upgraded: pid (\d+) \((.*)\) serves", done.stdout)
        assert m and m.group(2) == str(new_binary), done.stdout
        new = NewRelay(int(m.group(1)))
        upgraded_at = time.monotonic()
        # Both clients are back, on the new process, within a second, trusting its certificate.
        web.wait_event("ready", timeout=5, start=web_ready)
        tcp.wait_event("ready", timeout=5, start=tcp_ready)
        assert time.monotonic() - upgraded_at < 1.5, "clients took %.2f s to come back" % (
            time.monotonic() - upgraded_at)
        wait_until(lambda: (clients_of(sock) or []) and len(clients_of(sock)) == 2,
                   message="the new relay lists both clients")
        # The old process drains and exits 0; the new one serves on.
        assert relay.proc.wait_exit(timeout=15) == 0, relay.proc.describe()
        before = (site_load.count(), tunnel_load.count(), tcp_loop.answered)
        wait_until(lambda: site_load.count() > before[0] + 30 and
                   tunnel_load.count() > before[1] + 30 and tcp_loop.answered > before[2] + 5,
                   message="the new relay carries the load")
    finally:
        site_load.stop()
        tunnel_load.stop()
        tcp_loop.stop()
        stderr = relay.proc.stderr_text()
        if new:
            new.stop()
    assert site_load.errors == [] and tunnel_load.errors == [], (site_load.errors[:3],
                                                                tunnel_load.errors[:3])
    assert set(site_load.statuses) == {200}, sorted(set(site_load.statuses))
    assert set(tunnel_load.statuses) == {200}, sorted(set(tunnel_load.statuses))
    # The old relay closed kept-alive connections with its answers, not under a request.
    assert site_load.closes > 0 and tunnel_load.closes > 0
    assert tcp_loop.refused == [] and tcp_loop.unanswered == [], (tcp_loop.refused[:3],
                                                                  tcp_loop.unanswered[:3])
    # HTTP (one per event loop: one per core by default), control, admin socket, the TCP port.
    handed = 3 + len(os.sched_getaffinity(0))
    assert "handed %d listening sockets and 2 leases" % handed in stderr, stderr
    assert "refused" not in web.stderr_text() and "fingerprint" not in web.stderr_text()
    assert web.alive() and tcp.alive()


class FreshLoad(test_reload.Load):
    """Visitors opening a new connection for each request: one waiting in any event loop's
    accept queue when the old relay stops accepting must be answered all the same."""

    def run(self):
        while not self.stopping.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path, headers={"Host": self.host, "Connection": "close"})
                r = conn.getresponse()
                r.read()
                conn.close()
                with self.lock:
                    self.statuses.append(r.status)
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append(repr(e))


def test_an_upgrade_hands_over_every_event_loops_listener(group, tmp_path, backend, origin):
    """From one event loop to two (a config that now asks for two, as an older relay's default
    of one becomes one per core), from two to two, then back to one, and one to one: under new
    connections to a site and a tunnel, none is refused or reset. Every loop's listener is handed
    over; a relay with fewer loops accepts on the ones left over too, and hands them on."""
    a = backend("a")
    config = tmp_path / "relay.toml"
    routes = site([HOST], [to(a, path="/app")])
    config.write_text("threads = 1\n" + routes)
    sock = tmp_path / "admin.sock"
    relay = group.relay("--config", str(config), "--admin-socket", str(sock))
    group.agent(relay, "http", origin.server_port, "--subdomain", "kept")
    new_binary = tmp_path / "porthole-new"
    shutil.copy2(BIN, new_binary)
    site_load = FreshLoad(relay.http_port, HOST, "/app/x", threads=2)
    tunnel_load = FreshLoad(relay.http_port, "kept.localhost", "/", threads=2)
    started, loops = [], []
    try:
        wait_until(lambda: site_load.count() > 30 and tunnel_load.count() > 30,
                   message="load is running")
        for threads in (2, 2, 1, 1):
            config.write_text("threads = %d\n" % threads + routes)
            old_pid = started[-1].pid if started else relay.pid
            done = admin(sock, "upgrade", "--binary", str(new_binary), "--wait", "30")
            assert done.returncode == 0, (done.stdout, done.stderr, relay.proc.describe())
            started.append(NewRelay(int(re.match(r"upgraded: pid (\d+)", done.stdout).group(1))))
            wait_until(lambda: not alive(old_pid), timeout=15, message="the old relay exits")
            before = (site_load.count(), tunnel_load.count())
            wait_until(lambda: site_load.count() > before[0] + 30 and
                       tunnel_load.count() > before[1] + 30,
                       message="the new relay carries the load")
            names = set()
            for tid in os.listdir("/proc/%d/task" % started[-1].pid):
                with open("/proc/%d/task/%s/comm" % (started[-1].pid, tid)) as f:
                    names.add(f.read().strip())
            loops.append(1 + sum(n.startswith("porthole-loop") for n in names))
    finally:
        site_load.stop()
        tunnel_load.stop()
        stderr = relay.proc.stderr_text()
        for r in started:
            r.stop()
    assert loops == [2, 2, 1, 1], loops
    assert site_load.errors == [] and tunnel_load.errors == [], (site_load.errors[:3],
                                                                tunnel_load.errors[:3])
    assert set(site_load.statuses) == {200} and set(tunnel_load.statuses) == {200}
    # Every relay logs to the same stderr. HTTP, control and the admin socket; then HTTP twice,
    # one per loop, three times: the relays of two loops, then the one-loop relay with its spare.
    assert stderr.count("handed 3 listening sockets") == 1, stderr
    assert stderr.count("handed 4 listening sockets") == 3, stderr
    # Each one-loop relay after a two-loop one took the second HTTP listener as a spare.
    assert stderr.count("also accepts on 1 listening socket") == 2, stderr


def test_a_new_relay_that_cannot_serve_leaves_the_old_one_serving(group, tmp_path, backend):
    a = backend("a")
    config = tmp_path / "relay.toml"
    config.write_text(site([HOST], [to(a, path="/app")]))
    sock = tmp_path / "admin.sock"
    relay = group.relay("--config", str(config), "--admin-socket", str(sock))
    assert get(relay.http_port, "/app/1").status == 200
    good = config.read_text()

    # The config the new process reads has an error: it says where, and the old relay serves on.
    config.write_text("max_tunnels_per_client = -3\n" + good)
    refused = admin(sock, "upgrade")
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert re.search(re.escape(str(config)) + r":\d+: 'max_tunnels_per_client' must be",
                     refused.stderr), refused.stderr
    assert get(relay.http_port, "/app/2").status == 200 and relay.proc.alive()

    # A program that is no relay at all.
    config.write_text(good)
    refused = admin(sock, "upgrade", "--binary", "/bin/false", "--wait", "5")
    assert refused.returncode == 1 and "exited with status 1 before it served" in refused.stderr, \
        refused.stderr
    assert get(relay.http_port, "/app/3").status == 200
    # Neither left a process behind, and the relay still upgrades afterwards.
    out = subprocess.run(["pgrep", "-s", str(os.getsid(relay.pid)), "-f", "porthole server"],
                         capture_output=True, text=True).stdout.split()
    assert out == [str(relay.pid)], out
    # A listener only a restart could add comes with the upgrade.
    metrics_port = free_port()
    config.write_text('metrics_addr = "127.0.0.1:%d"\n' % metrics_port + good)
    done = admin(sock, "upgrade")
    assert done.returncode == 0, done.stderr
    new = NewRelay(int(re.match(r"upgraded: pid (\d+)", done.stdout).group(1)))
    try:
        assert relay.proc.wait_exit(timeout=15) == 0
        assert get(relay.http_port, "/app/4").status == 200
        scrape = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=5)
        assert b"porthole_requests_total" in scrape.read()
        assert os.path.exists(sock), "the socket file stays the new relay's"
        assert clients_of(sock) == []
    finally:
        new.stop()
    wait_until(lambda: not os.path.exists(sock), message="the new relay removes its socket file")


def test_an_upgrade_is_asked_for_on_the_socket_only(group, tmp_path):
    token_file = tmp_path / "admin-token"
    token_file.write_text("u" * 40 + "\n")
    relay = group.relay("--admin-addr", "127.0.0.1:0", "--admin-token-file", str(token_file),
                        "--admin-socket", "", "--json")
    addr = relay.proc.wait_event("listening")["admin_addr"]
    done = subprocess.run([BIN, "admin", "--addr", addr, "--token-file", str(token_file),
                           "upgrade"], capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "403" in done.stderr and "admin socket" in done.stderr, \
        done.stderr
    assert relay.proc.alive()
