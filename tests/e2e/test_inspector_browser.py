"""The inspector page in Chromium: live requests, detail, replay, edit & replay, WebSocket frames.

The browser half is tests/browser/inspector_check.mjs (Node + playwright-core driving Debian's
/usr/bin/chromium); it asks this test for traffic through the tunnel at each step, and this test
checks what the local services received. Screenshots land in build/test-artifacts/.
"""
import asyncio
import http.server
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import websockets

from helpers import BIN, REPO, accepts, curl, free_port, split_url, wait_until

BROWSER_DIR = REPO / "tests" / "browser"
CHECK_SCRIPT = BROWSER_DIR / "inspector_check.mjs"
CHROMIUM = "/usr/bin/chromium"


def artifacts_dir():
    """<build dir of the binary under test>/test-artifacts, or build/test-artifacts for one elsewhere."""
    build = Path(BIN).resolve().parent
    return (build if REPO in build.parents else REPO / "build") / "test-artifacts"


ARTIFACTS = artifacts_dir()
SCREENSHOT = ARTIFACTS / "inspector.png"
SCENARIO_TIMEOUT = 180.0

PATH = "/inspect/hello?x=1"
BODY_TOKEN = "token-5f3a"
BODY = json.dumps({"greeting": "hello", "token": BODY_TOKEN, "n": [1, 2, 3]})
EDIT_PATH = "/inspect/edited?y=2"
EDIT_BODY = json.dumps({"edited": True, "text": "grüße ✓"}, ensure_ascii=False)
WS_PATH = "/echo"
WS_MESSAGES = ["ws-message-%d" % i for i in range(3)]


def require_tools():
    """The browser toolchain is part of the test environment (scripts/install-deps sets it up)."""
    problems = []
    if not shutil.which("node"):
        problems.append("`node` is not on PATH")
    if not os.access(CHROMIUM, os.X_OK):
        problems.append("%s is missing" % CHROMIUM)
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        problems.append("tests/browser/node_modules/playwright-core is missing (npm ci --prefix tests/browser)")
    if problems:
        pytest.fail("browser test tools missing: %s; run scripts/install-deps" % "; ".join(problems), pytrace=False)


# -- local services -------------------------------------------------------------

class RecordingApp(http.server.ThreadingHTTPServer):
    """Answers every request with JSON about it and remembers (method, path, body) per path."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.lock = threading.Lock()
        self.hits = []

    @property
    def port(self):
        return self.server_address[1]

    def hits_for(self, path):
        with self.lock:
            return [h for h in self.hits if h["path"] == path]


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.hits.append({"method": self.command, "path": self.path, "body": body,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
        out = json.dumps({"method": self.command, "path": self.path, "body_bytes": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _handle


class Loop:
    """An asyncio loop in a thread: the WebSocket echo server and the test's WebSocket client."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def services():
    app = RecordingApp()
    threading.Thread(target=app.serve_forever, daemon=True).start()
    loop = Loop()

    async def echo(ws, path=None):
        async for message in ws:
            await ws.send(message)

    async def start_ws():
        return await websockets.serve(echo, "127.0.0.1", 0)

    ws_server = loop.run(start_ws())
    ws_port = ws_server.sockets[0].getsockname()[1]
    yield app, loop, ws_port

    async def stop_ws():
        ws_server.close()
        await ws_server.wait_closed()

    try:
        loop.run(stop_ws(), timeout=10)
    finally:
        loop.stop()
        app.shutdown()
        app.server_close()


# -- the browser script ---------------------------------------------------------

class BrowserCheck:
    """A browser script (inspector_check.mjs unless told) as a child process speaking JSON lines."""

    def __init__(self, args, logdir, script=CHECK_SCRIPT):
        self.script = script
        self.stderr_path = logdir / (script.stem + ".stderr")
        self.stderr_file = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(
            ["node", str(script)] + [str(a) for a in args], cwd=str(BROWSER_DIR),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr_file, start_new_session=True)
        self.lines = queue.Queue()
        self.transcript = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.popen.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def next_message(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("browser check still running after %.0fs\n%s" % (SCENARIO_TIMEOUT, self.describe()))
        try:
            line = self.lines.get(timeout=left)
        except queue.Empty:
            raise AssertionError("browser check still running after %.0fs\n%s" % (SCENARIO_TIMEOUT, self.describe()))
        if line is None:
            return None
        self.transcript.append(line)
        try:
            return json.loads(line)
        except ValueError:
            return {"text": line}

    def answer(self, obj):
        self.popen.stdin.write((json.dumps(obj) + "\n").encode())
        self.popen.stdin.flush()

    def describe(self):
        try:
            self.stderr_file.flush()
            err = self.stderr_path.read_text("utf-8", "replace")[-4000:]
        except (OSError, ValueError):
            err = ""
        return "-- %s stdout --\n%s\n-- stderr --\n%s" % (
            self.script.name, "\n".join(self.transcript)[-8000:], err)

    def run(self, do):
        """Answers each {"need": NAME} with do(NAME) until the script ends; returns its last
        {"ok": ...} message (None if it printed none) and its exit status."""
        final = None
        try:
            deadline = time.monotonic() + SCENARIO_TIMEOUT
            while True:
                msg = self.next_message(deadline)
                if msg is None:
                    break
                if "need" in msg:
                    try:
                        do(msg["need"])
                    except Exception as e:  # tell the browser side, then fail with both stories
                        self.answer({"error": repr(e)})
                        raise
                    self.answer({"done": msg["need"]})
                elif "ok" in msg:
                    final = msg
            return final, self.popen.wait(30)
        finally:
            self.stop()

    def stop(self):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, 9)
        self.popen.wait(10)
        self.stderr_file.close()


def inspector_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return json.loads(r.read())


def test_inspector_page_live_replay_edit_websocket(group, relay, services, tmp_path, capsys):
    require_tools()
    app, loop, ws_port = services
    inspect_port = free_port()
    agent = group.agent(relay, "http", app.port, "--inspect-addr", "127.0.0.1:%d" % inspect_port,
                        "--route", "%s=%d" % (WS_PATH, ws_port))
    url = agent.ready["url"]
    wait_until(lambda: accepts(inspect_port), 10, message="inspector not listening on %d" % inspect_port)
    tunnels = inspector_get(inspect_port, "/api/tunnels")
    assert [t.get("public_url") for t in tunnels.get("tunnels", [])] == [url], tunnels

    _, ws_host, ws_relay_port = split_url(url)
    ws = {}

    async def ws_open():
        sock = socket.create_connection(("127.0.0.1", ws_relay_port))
        ws["conn"] = await websockets.connect("ws://%s:%d%s" % (ws_host, ws_relay_port, WS_PATH), sock=sock)

    async def ws_send():
        for m in WS_MESSAGES:
            await ws["conn"].send(m)
            assert await asyncio.wait_for(ws["conn"].recv(), 10) == m

    async def ws_close():
        await ws["conn"].close()

    def do(need):
        if need == "http":
            r = curl(url + PATH, "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", BODY)
            assert r.returncode == 0 and r.status == 200, r
        elif need == "ws-open":
            loop.run(ws_open())
        elif need == "ws-send":
            loop.run(ws_send())
        elif need == "ws-close":
            loop.run(ws_close())
        else:
            raise AssertionError("unknown need %r" % need)

    check = BrowserCheck([
        "--url", "http://127.0.0.1:%d/" % inspect_port, "--public-url", url,
        "--method", "POST", "--path", PATH, "--body-token", BODY_TOKEN,
        "--edit-path", EDIT_PATH, "--edit-body", EDIT_BODY,
        "--ws-path", WS_PATH, "--ws-messages", len(WS_MESSAGES),
        "--screenshot", SCREENSHOT, "--chromium", CHROMIUM,
    ], tmp_path)
    final, rc = check.run(do)

    with capsys.disabled():
        shots = (final or {}).get("result", {}).get("screenshots") or [str(SCREENSHOT)]
        print("\ninspector screenshots: %s" % ", ".join(shots))
    assert final is not None, "browser check ended without a result (exit %s)\n%s" % (rc, check.describe())
    assert final["ok"] and rc == 0, "browser check failed at %r: %s\nscreenshot: %s\n%s" % (
        final.get("step"), final.get("error"), final.get("screenshot"), check.describe())
    result = final["result"]
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 0

    # The app saw the original, the replay as recorded, and the edited replay as edited.
    originals = app.hits_for(PATH)
    assert len(originals) == 2, originals
    assert all(h["method"] == "POST" and h["body"] == BODY.encode() for h in originals), originals
    edited = app.hits_for(EDIT_PATH)
    assert len(edited) == 1, app.hits
    assert edited[0]["method"] == "POST"
    assert edited[0]["body"] == EDIT_BODY.encode("utf-8"), edited
    assert int(edited[0]["headers"].get("content-length", -1)) == len(EDIT_BODY.encode("utf-8")), edited
    assert "transfer-encoding" not in edited[0]["headers"], edited

    # The page showed each message both ways, live.
    text_frames = [(f["dir"], f["payload"]) for f in result["frames"] if f["opcode"] == "text"]
    assert [p for d, p in text_frames if d == "in"] == WS_MESSAGES, result["frames"]
    assert [p for d, p in text_frames if d == "out"] == WS_MESSAGES, result["frames"]
    assert result["frames_before_send"] == 0, result
    assert result["replay_id"] != result["original_id"] != result["edit_id"]

    # Clear in the page forgot the records on the inspector side too.
    assert inspector_get(inspect_port, "/api/requests/http")["requests"] == []
