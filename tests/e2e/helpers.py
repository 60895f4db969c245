"""Process and network helpers for the porthole end-to-end tests (stdlib only)."""
import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("PORTHOLE_BIN") or str(REPO / "build" / "porthole")

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


# ---------------------------------------------------------------------------
# small utilities


def unquarantined_env():
    """Environment for a process whose RSS a test watches. AddressSanitizer parks freed memory in a
    quarantine (256 MiB by default), which would read as RSS growth; without it, RSS tracks what the
    process really keeps. None outside sanitizer builds."""
    if not os.environ.get("PORTHOLE_SANITIZED"):
        return None
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") +
            "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"}


_port_rng = random.Random()
_ports_given = collections.deque(maxlen=4000)  # not handed out again while a test may still bind it


# Ports handed out lately by any test process on this machine (ctest runs test files side by
# side): one file per port, created exclusively; a claim older than _CLAIM_SECONDS may be taken
# again (its test has bound the port, or let it go, long since).
_CLAIMS = Path(os.environ.get("TMPDIR", "/tmp")) / "porthole-e2e-ports"
_CLAIM_SECONDS = 300


def _claim(port):
    _CLAIMS.mkdir(exist_ok=True)
    path = _CLAIMS / str(port)
    try:
        if time.time() - path.stat().st_mtime > _CLAIM_SECONDS:
            path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        return False


def free_port():
    """A TCP port that nothing uses right now, chosen below the ephemeral range (32768 and up,
    the first 21000 ports of it taken by free_port_range): a port the kernel hands out as port 0
    can become another connection's source port before the test binds it. A port handed out
    lately, by this process or another test process, is not handed out again: two picked back
    to back (a relay's HTTP and control ports, or two test files' at once) are free alike until
    the relay binds them."""
    for _ in range(1000):
        port = _port_rng.randrange(10000, 21000)
        if port not in _ports_given and port_is_free(port) and _claim(port):
            _ports_given.append(port)
            return port
    raise RuntimeError("no free port found")


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_range(size=10, tries=200):
    """A run of `size` consecutive free ports below the ephemeral range."""
    rng = random.Random()
    for _ in range(tries):
        low = rng.randrange(21000, 32000 - size)
        if not all(port_is_free(p) for p in range(low, low + size)):
            continue
        claimed = []
        for p in range(low, low + size):
            if not _claim(p):
                break
            claimed.append(p)
        if len(claimed) == size:
            return low, low + size - 1
        for p in claimed:  # another test process has part of it: give the rest back
            (_CLAIMS / str(p)).unlink(missing_ok=True)
    raise RuntimeError("no free port range found")


def wait_until(pred, timeout=10.0, step=0.02, message=None):
    """Poll pred() until it returns something truthy; return that value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(message or "condition not met within %.1fs" % timeout)
        time.sleep(step)


def accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def split_url(url):
    """('http'|'tcp', host, port) from http://name.localhost:8080 or tcp://localhost:20417."""
    m = re.fullmatch(r"(\w+)://([^/:]+)(?::(\d+))?/?", url)
    assert m, "unexpected url %r" % url
    scheme, host, port = m.group(1), m.group(2), m.group(3)
    return scheme, host, int(port) if port else (80 if scheme == "http" else None)


def resolve_args(url):
    """curl --resolve so NAME.localhost always reaches the loopback relay."""
    u = urllib.parse.urlsplit(url)
    return ["--resolve", "%s:%d:127.0.0.1" % (u.hostname, u.port or 80)]


class CurlResult:
    def __init__(self, returncode, status, body, stderr):
        self.returncode = returncode
        self.status = status
        self.body = body
        self.stderr = stderr

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "CurlResult(rc=%s, status=%s, body=%r, stderr=%r)" % (
            self.returncode, self.status, self.body[:300], self.stderr[:300])


def curl(url, *args, timeout=30):
    """GET (or whatever args say) url with curl; returns CurlResult with the final status."""
    marker = b"\n@@porthole-status="
    cmd = ["curl", "-sS", "--max-time", str(timeout)] + resolve_args(url) + list(args) + [
        "-w", marker.decode() + "%{http_code}", url]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 10)
    body, sep, status = p.stdout.rpartition(marker)
    if not sep:
        body, status = p.stdout, b"0"
    return CurlResult(p.returncode, int(status or 0), body, p.stderr.decode("utf-8", "replace"))


def vm_hwm_kib(pid):
    """Peak resident set size (VmHWM) of pid in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM for pid %d" % pid)


# ---------------------------------------------------------------------------
# processes

_open_groups = []
_open_groups_lock = threading.Lock()


class Proc:
    """A child process with stderr captured to a file and stdout read line by line."""

    def __init__(self, name, args, logdir, env=None):
        self.name = name
        self.args = [str(a) for a in args]
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        n = 0
        while (logdir / ("%s.%d.stderr" % (name, n))).exists():
            n += 1
        self.stderr_path = logdir / ("%s.%d.stderr" % (name, n))
        self.lines = []
        self.events = []
        self._cond = threading.Condition()
        self._eof = False
        full_env = dict(os.environ)
        full_env.pop("PORTHOLE_TOKEN", None)
        full_env.pop("PORTHOLE_SERVER", None)
        full_env.pop("PORTHOLE_ADMIN_TOKEN", None)
        # Relays run side by side: none may take the shared default admin socket unless told to.
        full_env.pop("RUNTIME_DIRECTORY", None)
        full_env.pop("XDG_RUNTIME_DIR", None)
        if env:
            full_env.update(env)
        self._stderr_file = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr_file,
            env=full_env, start_new_session=True)
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read, name="stdout-%s" % name, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            ev = None
            if line.startswith("{"):
                try:
                    ev = json.loads(line)
                except ValueError:
                    ev = None
            with self._cond:
                self.lines.append(line)
                if isinstance(ev, dict):
                    self.events.append(ev)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    # -- observation -------------------------------------------------------
    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def stderr_text(self):
        try:
            self._stderr_file.flush()
        except ValueError:
            pass
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        with self._cond:
            return "\n".join(self.lines)

    def describe(self, tail=40):
        err = self.stderr_text().splitlines()[-tail:]
        out = self.stdout_text().splitlines()[-tail:]
        state = "running" if self.alive() else "exited %s" % self.returncode
        return "== %s (pid %d, %s): %s\n-- stdout --\n%s\n-- stderr --\n%s\n" % (
            self.name, self.pid, state, " ".join(self.args), "\n".join(out), "\n".join(err))

    def wait_event(self, name, timeout=READY_TIMEOUT, start=0):
        """Return the first event named `name` at index >= start; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[start:]:
                    if ev.get("event") == name:
                        return ev
                if self._eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
        # let the exit status settle so the message says how it ended
        try:
            self.popen.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        raise AssertionError("no %r event from %s within %.1fs\n%s" % (name, self.name, timeout, self.describe()))

    def event_index(self):
        with self._cond:
            return len(self.events)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %.1fs\n%s" % (self.name, timeout, self.describe()))

    # -- control -----------------------------------------------------------
    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=timeout)
        self._reader.join(timeout=2)
        try:
            self._stderr_file.close()
        except OSError:
            pass
        return self.popen.returncode


class Relay:
    """A running `porthole server` on loopback ports."""

    def __init__(self, group, extra=(), http_port=None, control_port=None, tcp_ports=None,
                 domain="localhost", env=None, wait=True):
        self.group = group
        self.domain = domain
        self.http_port = http_port or free_port()
        self.control_port = control_port or free_port()
        self.tcp_low, self.tcp_high = tcp_ports or free_port_range()
        self.extra = [str(e) for e in extra]
        self.env = env
        self.proc = None
        self.start(wait=wait)

    @property
    def args(self):
        return [BIN, "server", "--domain", self.domain,
                "--http-addr", "127.0.0.1:%d" % self.http_port,
                "--control-addr", "127.0.0.1:%d" % self.control_port,
                "--tcp-ports", "%d-%d" % (self.tcp_low, self.tcp_high)] + self.extra

    @property
    def server(self):
        return "127.0.0.1:%d" % self.control_port

    @property
    def pid(self):
        return self.proc.pid

    def start(self, wait=True):
        self.proc = self.group.spawn("relay", self.args, env=self.env)
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout=READY_TIMEOUT):
        def up():
            if not self.proc.alive():
                raise AssertionError("relay exited early\n" + self.proc.describe())
            return accepts(self.control_port) and accepts(self.http_port)
        try:
            wait_until(up, timeout)
        except TimeoutError:
            raise AssertionError("relay not listening within %.1fs\n%s" % (timeout, self.proc.describe()))

    def stop(self):
        return self.proc.stop()

    def restart(self, wait=True):
        self.stop()
        return self.start(wait=wait)

    def url(self, name):
        return "http://%s.%s:%d" % (name, self.domain, self.http_port)


SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error: ")


class Group:
    """Owns every process a test (or module) starts; stop_all() ends them by PID."""

    def __init__(self, logdir):
        self.logdir = Path(logdir)
        self.procs = []
        with _open_groups_lock:
            _open_groups.append(self)

    def spawn(self, name, args, env=None):
        p = Proc(name, args, self.logdir, env=env)
        self.procs.append(p)
        return p

    def relay(self, *extra, **kw):
        return Relay(self, extra=extra, **kw)

    def agent(self, relay_or_server, kind, target, *extra, token=None, env=None, wait_ready=True,
              json_output=True, name=None):
        """Start `porthole http|tcp TARGET --server ... --json [extra]`; waits for `ready` unless told not to."""
        server = relay_or_server.server if isinstance(relay_or_server, Relay) else relay_or_server
        args = [BIN, kind, str(target)]
        if server is not None:
            args += ["--server", server]
        if json_output:
            args.append("--json")
        if token is not None:
            args += ["--token", token]
        args += [str(e) for e in extra]
        if not any(a.startswith("--inspect") for a in args):
            # Tests run side by side: each inspector on a port of its own.
            args += ["--inspect-addr", "127.0.0.1:0"]
        p = self.spawn(name or ("agent-%s" % kind), args, env=env)
        p.ready = None
        if wait_ready:
            p.ready = p.wait_event("ready")
        return p

    def describe(self):
        return "\n".join(p.describe() for p in self.procs)

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # keep stopping the rest
                pass
        with _open_groups_lock:
            if self in _open_groups:
                _open_groups.remove(self)
        reports = [(p.name, p.stderr_text()) for p in self.procs]
        found = [(name, text) for name, text in reports if SANITIZER_REPORT.search(text)]
        if found:
            name, text = found[0]
            raise AssertionError("sanitizer report from %s:\n%s" % (name, text[-6000:]))


def describe_open_processes():
    with _open_groups_lock:
        groups = list(_open_groups)
    return "\n".join(g.describe() for g in groups if g.procs)


def make_cert(directory, name):
    """A self-signed P-256 certificate for DNS name `name` (or an IP): (cert_path, key_path)."""
    cert, key = Path(directory) / (name + ".pem"), Path(directory) / (name + ".key")
    san = ("IP:" if re.fullmatch(r"[0-9.]+", name) else "DNS:") + name
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=" + san, "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class RawOrigin:
    """A loopback listener whose accepted connections are handled by `handler(conn)` in threads."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)
