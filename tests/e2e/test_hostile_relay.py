"""A client against a relay that does not play fair: however often the relay asks for data
connections (POOL_WANT), the client opens at most 64 at once; what the relay says is escaped
before it reaches the client's terminal and JSON events."""
import os
import socket
import struct
import threading
import time

from helpers import wait_until

HELLO, CHALLENGE, AUTH, WELCOME, OPEN_TUNNEL, TUNNEL_OPENED, TUNNEL_REFUSED, POOL_WANT = (
    1, 2, 3, 4, 6, 7, 8, 9)
DATA_HELLO = 20
MAX_OPENING = 64  # the client's cap (docs/protocol.md, "Data connections")


def frame(kind, payload=b""):
    return struct.pack(">IB", len(payload) + 1, kind) + payload


def read_frame(conn):
    head = b""
    while len(head) < 4:
        chunk = conn.recv(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    (length,) = struct.unpack(">I", head)
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return body[0], body[1:]


def text(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


class HostileRelay:
    """Speaks the relay's side of the handshake, then asks for data connections without end and
    counts the ones that arrive (it never answers their DATA_HELLO, so they stay open)."""

    def __init__(self, refusal=None):
        self.refusal = refusal
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.data_connections = 0
        self.held = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            kind, _ = read_frame(conn)
            if kind == DATA_HELLO:
                with self.lock:
                    self.data_connections += 1
                    self.held.append(conn)
                return
            assert kind == HELLO
            conn.sendall(frame(CHALLENGE, struct.pack(">H", 2) + os.urandom(32)))
            read_frame(conn)  # AUTH
            conn.sendall(frame(WELCOME, os.urandom(16) + struct.pack(">IH", 10000, 0) +
                               os.urandom(32)))
            kind, payload = read_frame(conn)
            while kind != OPEN_TUNNEL:  # the client pings at once
                kind, payload = read_frame(conn)
            (request_id,) = struct.unpack(">I", payload[:4])
            if self.refusal is not None:
                conn.sendall(frame(TUNNEL_REFUSED, struct.pack(">IH", request_id, 7) +
                                   text(self.refusal)))
                time.sleep(1)
                return
            conn.sendall(frame(TUNNEL_OPENED, struct.pack(">II", request_id, 1) +
                               text("http://x.localhost:1")))
            for _ in range(40):  # 40 x 1000 connections asked for
                conn.sendall(frame(POOL_WANT, struct.pack(">H", 1000)))
            while not self.closed:
                read_frame(conn)  # pings
        except (EOFError, OSError, AssertionError):
            pass

    def count(self):
        with self.lock:
            return self.data_connections

    def close(self):
        self.closed = True
        self.sock.close()
        with self.lock:
            for c in self.held:
                c.close()


def test_pool_want_cannot_make_the_client_open_thousands(group):
    relay = HostileRelay()
    try:
        agent = group.agent("127.0.0.1:%d" % relay.port, "http", 9, "--tls", "off")
        wait_until(lambda: relay.count() >= MAX_OPENING, 10,
                   message="the client never opened its data connections")
        # A client without the cap opens the 40,000 asked for as fast as it can connect.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert relay.count() <= MAX_OPENING, relay.count()
            time.sleep(0.05)
        assert agent.alive()
    finally:
        relay.close()


def test_a_relays_refusal_is_escaped_before_the_terminal(group):
    relay = HostileRelay(refusal="no\n2026-01-01 FORGED\x1b[31m")
    try:
        agent = group.agent("127.0.0.1:%d" % relay.port, "http", 9, "--tls", "off",
                            wait_ready=False)
        agent.wait_exit(10)
        err = agent.stderr_text()
        assert "\x1b" not in err and "\nFORGED" not in err and "\n2026-01-01 FORGED" not in err, err
        assert "\\x0a2026-01-01 FORGED\\x1b[31m" in err, err
        error = agent.wait_event("error")
        assert "\\x1b" in error["message"], error
    finally:
        relay.close()
