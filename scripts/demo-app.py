#!/usr/bin/env python3
"""A tiny local web app to expose through porthole.

    python3 scripts/demo-app.py [PORT]     (default 3000, 0 = any free port)

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import html
import http.server
import sys

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>porthole demo</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; color: #222; }}
  h1 {{ color: #2a6f4e; }}
  table {{ border-collapse: collapse; width: 100%; }}
  td, th {{ border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; font-family: monospace; }}
  .req {{ background: #f3f6f4; padding: .6rem 1rem; border-radius: .4rem; font-family: monospace; }}
</style>
</head>
<body>
<h1>Hello from behind the tunnel</h1>
<p>This page is served by a small app on your machine and reached through porthole.</p>
<p class="req">{method} {path}</p>
<h2>Request headers</h2>
<table>
<tr><th>Header</th><th>Value</th></tr>
{rows}
</table>
</body>
</html>
"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "porthole-demo/1"

    def _page(self, with_body):
        rows = "\n".join(
            "<tr><td>{}</td><td>{}</td></tr>".format(html.escape(k), html.escape(v))
            for k, v in self.headers.items()
        )
        body = PAGE.format(method=html.escape(self.command), path=html.escape(self.path), rows=rows).encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self._page(True)

    def do_HEAD(self):
        self._page(False)

    def do_POST(self):
        self._page(True)

    def log_message(self, fmt, *args):
        sys.stderr.write("demo-app: %s %s\n" % (self.address_string(), fmt % args))


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
