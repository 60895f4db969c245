#!/usr/bin/env python3
"""A small threaded HTTP/1.1 origin used by the end-to-end tests.

Routes:
  GET  /            200 "hello from origin\\n"
  GET  /headers     200 JSON {"method", "path", "headers": {lower-case name: value}}
  POST /sha256      reads the body as a stream (Content-Length or chunked) and
  PUT  /sha256      answers JSON {"sha256": hex, "bytes": N}
  GET  /chunked     chunked response: "part-0\\n" ... "part-4\\n"
  GET  /bytes?n=N   N bytes of a deterministic pattern (see pattern_chunks), with Content-Length
  GET  /count       JSON {"count": N}: requests served so far, not counting /count itself
  GET  /status?code=N  a bodiless response with status N (for 204, 304, ...)

Run it alone with `python3 origin.py PORT`, or import it and call start_origin().
"""
import hashlib
import http.server
import json
import sys
import threading
import time
import urllib.parse

READ_CHUNK = 64 * 1024

# 251 is prime, so misplaced or repeated blocks change the hash.
_PATTERN_UNIT = bytes(range(251))
_PATTERN_BLOCK = _PATTERN_UNIT * 261  # 65511 bytes, a whole number of units


def pattern_chunks(n):
    """Yield the first n bytes of the /bytes pattern in blocks."""
    remaining = n
    while remaining > 0:
        take = min(remaining, len(_PATTERN_BLOCK))
        yield _PATTERN_BLOCK[:take]
        remaining -= take


def pattern_sha256(n):
    h = hashlib.sha256()
    for chunk in pattern_chunks(n):
        h.update(chunk)
    return h.hexdigest()


class OriginServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr):
        super().__init__(addr, OriginHandler)
        self.count = 0
        self.count_lock = threading.Lock()

    @property
    def port(self):
        return self.server_address[1]

    def served(self):
        with self.count_lock:
            return self.count


class OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "porthole-test-origin/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    # -- helpers ---------------------------------------------------------
    def _count(self):
        with self.server.count_lock:
            self.server.count += 1

    def _send(self, status, body, content_type="text/plain; charset=utf-8"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj, status=200):
        self._send(status, json.dumps(obj) + "\n", "application/json")

    def _body_chunks(self):
        """Yield the request body in pieces, whatever its framing."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until the empty line
                    while True:
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return
                left = size
                while left > 0:
                    data = self.rfile.read(min(left, READ_CHUNK))
                    if not data:
                        raise ConnectionError("eof in chunk data")
                    left -= len(data)
                    yield data
                self.rfile.readline(16)  # CRLF after the chunk
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, READ_CHUNK))
                if not data:
                    raise ConnectionError("eof in body")
                left -= len(data)
                yield data

    def _drain(self):
        for _ in self._body_chunks():
            pass

    # -- routes ----------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/count":
            self._drain()
            self._send_json({"count": self.server.served()})
            return
        self._count()
        self._drain()
        if url.path == "/":
            self._send(200, "hello from origin\n")
        elif url.path == "/headers":
            headers = {}
            for k, v in self.headers.items():
                k = k.lower()
                headers[k] = headers[k] + ", " + v if k in headers else v
            self._send_json({"method": self.command, "path": self.path, "headers": headers})
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                part = ("part-%d\n" % i).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/sse":
            q = urllib.parse.parse_qs(url.query)
            n, gap = int(q.get("n", ["5"])[0]), float(q.get("gap", ["0.3"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(n):
                if i:
                    time.sleep(gap)
                event = ("id: %d\ndata: event-%d\n\n" % (i, i)).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/bytes":
            q = urllib.parse.parse_qs(url.query)
            n = int(q.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            for chunk in pattern_chunks(n):
                self.wfile.write(chunk)
        elif url.path == "/status":
            q = urllib.parse.parse_qs(url.query)
            self.send_response(int(q.get("code", ["204"])[0]))
            self.send_header("ETag", '"porthole-test"')
            self.end_headers()
        else:
            self._send(404, "origin: no route for %s\n" % url.path)

    do_HEAD = do_GET

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        self._count()
        if url.path == "/sha256":
            h = hashlib.sha256()
            total = 0
            for data in self._body_chunks():
                h.update(data)
                total += len(data)
            self._send_json({"sha256": h.hexdigest(), "bytes": total})
        else:
            self._drain()
            self._send(404, "origin: no route for %s\n" % url.path)

    do_PUT = do_POST


def start_origin(port=0, host="127.0.0.1"):
    """Start an origin in a background thread; returns the server (has .port, .served(), .shutdown())."""
    server = OriginServer((host, port))
    t = threading.Thread(target=server.serve_forever, name="origin-%d" % server.port, daemon=True)
    t.start()
    return server


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = OriginServer(("127.0.0.1", port))
    print("origin listening on 127.0.0.1:%d" % server.port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
