"""A local HTTP service for tests that records every request it gets (stdlib only)."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingApp:
    """Answers every request with `NAME METHOD PATH` and keeps (method, path, headers, body)."""

    def __init__(self, name="app", status=200):
        self.name = name
        self.status = status
        self.requests = []
        self.lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with app.lock:
                    app.requests.append((self.command, self.path, dict(self.headers), body))
                reply = ("%s %s %s\n" % (app.name, self.command, self.path)).encode()
                self.send_response(app.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def seen(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r[1] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
