"""What the client prints: a live view on a terminal (driven through a pseudo-terminal here),
log lines or JSON events elsewhere, NO_COLOR, and --qr."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

from helpers import BIN, curl, split_url, wait_until
from recording_app import RecordingApp


@pytest.fixture
def app():
    a = RecordingApp("app")
    yield a
    a.close()


class Terminal:
    """`porthole ARGS` with stdout on a 120x40 pseudo-terminal; .screen holds all it drew."""

    def __init__(self, args, env=None):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        full_env = dict(os.environ, TERM="xterm-256color")
        full_env.pop("NO_COLOR", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen([BIN] + args, stdin=subprocess.DEVNULL, stdout=slave,
                                     stderr=subprocess.PIPE, env=full_env)
        os.close(slave)
        self.output = b""

    def pump(self):
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        return self.output.decode(errors="replace")

    def wait_for(self, text, timeout=10):
        """Waits until `text` was drawn; returns everything drawn so far."""
        wait_until(lambda: text in self.pump(), timeout=timeout,
                   message="%r never shown; screen so far:\n%s" % (text, self.pump()[-3000:]))
        return self.pump()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(10)
        self.pump()
        os.close(self.master)
        return code


def test_live_view_shows_session_tunnel_and_requests(relay, app):
    term = Terminal(["http", str(app.port), "--server", relay.server, "--inspect-addr", "127.0.0.1:0"])
    try:
        term.wait_for("\x1b[?1049h")  # the alternate screen: the shell comes back untouched
        term.wait_for("online")
        screen = term.pump()
        url = re.search(r"http://[a-z0-9-]+\.localhost:\d+", screen).group(0)
        assert "->  http://127.0.0.1:%d" % app.port in screen
        assert re.search(r"Inspector\s+(\x1b\[\d+m)+http://127\.0\.0\.1:\d+", screen), screen[-2000:]
        assert re.search(r"Latency\s+(\x1b\[\d+m)*\d+\.\d ms", term.wait_for(" ms")), screen[-2000:]
        for _ in range(3):
            assert curl(url + "/hello").status == 200
        term.wait_for("/hello")
        term.wait_for("3 requests")
        assert re.search(r"GET\s+/hello\s+\x1b\[32m 200", term.pump())  # 2xx in green
        assert "\x1b[32m" in term.pump()
    finally:
        code = term.stop()
    assert code == 0
    assert term.output.decode(errors="replace").endswith("\x1b[?25h\x1b[?1049l")


def test_no_color_is_respected(relay, app):
    term = Terminal(["http", str(app.port), "--server", relay.server, "--inspect=false"],
                    env={"NO_COLOR": "1"})
    try:
        term.wait_for("online")
        screen = term.pump()
        assert not re.search(r"\x1b\[\d+m", screen), screen[-1000:]
        assert "Inspector" not in screen
    finally:
        assert term.stop() == 0


def test_qr_code_is_drawn(relay, app):
    term = Terminal(["http", str(app.port), "--server", relay.server, "--qr", "--inspect=false"])
    try:
        term.wait_for("online")
        term.wait_for("█▀")
        assert term.pump().count("█") > 50
    finally:
        assert term.stop() == 0


def test_qr_code_in_text_format_on_a_terminal_follows_the_url_line(relay, app):
    term = Terminal(["http", str(app.port), "--server", relay.server, "--qr", "--log-format", "text",
                     "--inspect=false"])
    try:
        screen = term.wait_for("█▀")
        url_at = re.search(r"http://[a-z0-9-]+\.localhost:\d+", screen).start()
        assert url_at < screen.index("█")
        assert "\x1b[?1049h" not in screen
        assert screen.count("█") > 50
    finally:
        assert term.stop() == 0


def test_qr_code_goes_to_stderr_when_stdout_is_not_a_terminal(group, relay, app):
    agent = group.agent(relay, "http", app.port, "--qr")
    wait_until(lambda: agent.stderr_text().count("█") > 50, timeout=5,
               message="no QR code on stderr:\n" + agent.stderr_text())
    assert all(line.startswith("{") for line in agent.lines), agent.lines  # stdout stays JSON


def test_text_format_on_a_terminal_prints_plain_lines(relay, app):
    term = Terminal(["http", str(app.port), "--server", relay.server, "--log-format", "text",
                     "--inspect-addr", "127.0.0.1:0"])
    try:
        screen = term.wait_for(".localhost:")
        url = re.search(r"http://[a-z0-9-]+\.localhost:\d+", screen).group(0)
        curl(url + "/plain")
        term.wait_for("GET /plain -> 200")
        assert "\x1b[?1049h" not in term.pump()
    finally:
        assert term.stop() == 0


def test_json_events_for_requests_when_not_a_terminal(group, relay, app):
    agent = group.agent(relay, "http", app.port)
    assert curl(agent.ready["url"] + "/logged?q=1", "-X", "POST", "--data-binary", "x").status == 200
    ev = agent.wait_event("request")
    assert ev["method"] == "POST" and ev["uri"] == "/logged?q=1" and ev["status"] == 200
    assert ev["duration_ms"] > 0 and ev["tunnel"] == "command_line"


def test_json_request_event_escapes_the_target(group, relay, app):
    # Quotes, a backslash and a byte outside ASCII in the target must still make one valid JSON
    # line with the target intact.
    agent = group.agent(relay, "http", app.port)
    _, host, port = split_url(agent.ready["url"])
    target = b'/esc?a="b"&c=\\d&e=\xc3\xa9'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + ("%s:%d" % (host, port)).encode()
                  + b"\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200"), "the request was not served"
    ev = agent.wait_event("request")
    assert ev["uri"] == target.decode("latin-1"), ev
    assert ev["status"] == 200


def test_without_the_inspector_bytes_pass_untouched(group, relay, app):
    # --inspect=false and no routes: the fast path reads no HTTP, so there is nothing to log.
    agent = group.agent(relay, "http", app.port, "--inspect=false")
    assert curl(agent.ready["url"] + "/fast").status == 200
    assert app.seen("/fast")
    stop_index = agent.event_index()
    assert curl(agent.ready["url"] + "/fast2").status == 200
    with pytest.raises(AssertionError):
        agent.wait_event("request", timeout=0.5, start=stop_index)
