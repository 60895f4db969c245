#!/usr/bin/env python3
"""Small HTTP/1.1 backends for the reverse-proxy tests: each answers with its own id and keeps a
log of what it served.

Every answer (except the control paths) has the body "ID METHOD TARGET\\n" and the header
X-Backend: ID, with Content-Length so keep-alive works.
  GET /healthz          `health` status (settable), counted apart from other requests
  GET /headers          JSON {"id", "path", "headers": [[name, value], ...]}
  any other path        `status` (default 200) after `delay` seconds (default 0)
  GET /__backend/stats  JSON {"requests": N, "health": N, "paths": {...}}: only for the test,
  POST /__backend/set?health=500&status=200&delay=0.3   which talks to the backend directly

In-process: start_backend("a") / start_unix_backend("a", path) return a server with .port,
.requests(), .log (list of (monotonic time, kind, target)), .health, .status, .delay, and
.bodies() (per request served: (target, body bytes as framed on the wire, body decoded)).
As a process (so SIGKILL is real): python3 backends.py ID [--port N] [--status N] [--delay S];
it prints "backend ID listening on PORT" once it listens.
"""
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

CONTROL = "/__backend/"


class _State:
    def _init_state(self, backend_id, status=200, delay=0.0, health=200):
        self.backend_id = backend_id
        self.status = status
        self.delay = delay
        self.health = health
        self.lock = threading.Lock()
        self.log = []  # (time.monotonic(), "req" | "health-ok" | "health-fail", target)
        self.paths = {}
        self.last_headers = None
        self.received = []  # (target, raw body, decoded body) per request served

    def bodies(self):
        with self.lock:
            return list(self.received)

    def record(self, kind, target):
        with self.lock:
            self.log.append((time.monotonic(), kind, target))
            if kind == "req":
                self.paths[target] = self.paths.get(target, 0) + 1

    def requests(self):
        with self.lock:
            return sum(1 for _, kind, _ in self.log if kind == "req")

    def health_checks(self):
        with self.lock:
            return sum(1 for _, kind, _ in self.log if kind != "req")

    def events(self):
        with self.lock:
            return list(self.log)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "porthole-test-backend/1"
    def setup(self):
        # Nagle would hold each answer for the relay's delayed ACK; unix sockets have no Nagle
        self.disable_nagle_algorithm = self.request.family != socket.AF_UNIX
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, body, content_type="text/plain; charset=utf-8"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.backend_id)
        # head and body in one write
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def _drain(self):
        """Reads the request's body; returns it (raw as framed, decoded)."""
        raw, decoded = [], []
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:  # the whole chunked body, before answering, as most servers do
                line = self.rfile.readline()
                raw.append(line)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        line = self.rfile.readline()
                        raw.append(line)
                        if line in (b"\r\n", b"\n", b""):
                            break
                    return b"".join(raw), b"".join(decoded)
                data = self.rfile.read(size + 2)
                raw.append(data)
                decoded.append(data[:size])
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            data = self.rfile.read(min(left, 65536))
            if not data:
                break
            raw.append(data)
            left -= len(data)
        return b"".join(raw), b"".join(raw)

    def _handle(self):
        srv = self.server
        raw_body, body = self._drain()
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith(CONTROL):
            q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            if "health" in q:
                srv.health = int(q["health"])
            if "status" in q:
                srv.status = int(q["status"])
            if "delay" in q:
                srv.delay = float(q["delay"])
            with srv.lock:
                stats = {"id": srv.backend_id, "requests": sum(1 for e in srv.log if e[1] == "req"),
                         "health": sum(1 for e in srv.log if e[1] != "req"), "paths": dict(srv.paths)}
            self._reply(200, json.dumps(stats) + "\n", "application/json")
            return
        if url.path == "/healthz":
            status = srv.health
            srv.record("health-ok" if 200 <= status < 300 else "health-fail", self.path)
            self._reply(status, "%s health %d\n" % (srv.backend_id, status))
            return
        srv.record("req", self.path)
        with srv.lock:
            srv.received.append((self.path, raw_body, body))
        srv.last_headers = list(self.headers.items())
        if srv.delay:
            time.sleep(srv.delay)
        if url.path == "/headers":
            self._reply(200, json.dumps({"id": srv.backend_id, "path": self.path,
                                         "headers": list(self.headers.items())}) + "\n",
                        "application/json")
            return
        self._reply(srv.status, "%s %s %s\n" % (srv.backend_id, self.command, self.path))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


class Backend(_State, http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, backend_id, host="127.0.0.1", port=0, **state):
        self._init_state(backend_id, **state)
        super().__init__((host, port), Handler)

    @property
    def port(self):
        return self.server_address[1]


class UnixBackend(_State, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, backend_id, path, **state):
        self._init_state(backend_id, **state)
        self.path = str(path)
        super().__init__(self.path, Handler)

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port) client address


def _serve(server):
    threading.Thread(target=server.serve_forever, name="backend-%s" % server.backend_id,
                     daemon=True).start()
    return server


def start_backend(backend_id, **kw):
    return _serve(Backend(backend_id, **kw))


def start_unix_backend(backend_id, path, **kw):
    return _serve(UnixBackend(backend_id, path, **kw))


def stop_backend(server):
    server.shutdown()
    server.server_close()
    if isinstance(server, UnixBackend):
        try:
            os.unlink(server.path)
        except OSError:
            pass


def control(port, **settings):
    """Set or read a backend (in-process or a subprocess) through its control path."""
    query = urllib.parse.urlencode(settings)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST %sset?%s HTTP/1.1\r\nHost: backend\r\nContent-Length: 0\r\n"
                  b"Connection: close\r\n\r\n" % (CONTROL.encode(), query.encode()))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])


def main():
    args = sys.argv[1:]
    backend_id, opts = args[0], dict(zip(args[1::2], args[2::2]))
    server = Backend(backend_id, port=int(opts.get("--port", 0)),
                     status=int(opts.get("--status", 200)), delay=float(opts.get("--delay", 0)))
    print("backend %s listening on %d" % (backend_id, server.port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
