"""Path routing inside one HTTP tunnel: first matching prefix wins, whole segments only, the
tunnel's target takes the rest, kept-alive visitors switch services per request, and a route
whose service is down fails alone."""
import os
import re
import socket
import subprocess
import tempfile

import pytest

from helpers import wait_until, BIN, curl, free_port, resolve_args, split_url
from recording_app import RecordingApp


@pytest.fixture
def apps():
    web, api, admin = RecordingApp("web"), RecordingApp("api"), RecordingApp("admin")
    yield web, api, admin
    for a in (web, api, admin):
        a.close()


def body(url):
    r = curl(url)
    assert r.status == 200, r
    return r.body.decode()


def test_first_matching_prefix_wins(group, relay, apps):
    web, api, admin = apps
    agent = group.agent(relay, "http", web.port, "--route", "/api/admin=%d" % admin.port,
                        "--route", "/api=127.0.0.1:%d" % api.port)
    url = agent.ready["url"]
    assert body(url + "/api/admin/users") == "admin GET /api/admin/users\n"
    assert body(url + "/api/users?page=2") == "api GET /api/users?page=2\n"
    assert body(url + "/api") == "api GET /api\n"
    assert body(url + "/apix") == "web GET /apix\n"
    assert body(url + "/") == "web GET /\n"


def test_one_kept_alive_connection_is_routed_per_request(group, relay, apps):
    web, api, _ = apps
    agent = group.agent(relay, "http", web.port, "--route", "/api=%d" % api.port)
    host, port = split_url(agent.ready["url"])[1:]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        answers = []
        for path in ("/a", "/api/b", "/c", "/api/d"):
            s.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path.encode(), host.encode(), port))
            data = b""
            while True:
                head, sep, rest = data.partition(b"\r\n\r\n")
                if sep:
                    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                    if len(rest) >= length:
                        break
                chunk = s.recv(65536)
                assert chunk, "connection closed after %r" % answers
                data += chunk
            answers.append(rest.decode())
    assert answers == ["web GET /a\n", "api GET /api/b\n", "web GET /c\n", "api GET /api/d\n"]


def test_a_route_whose_service_is_down_fails_alone(group, relay, apps):
    web, _, _ = apps
    dead = free_port()
    agent = group.agent(relay, "http", web.port, "--route", "/api=%d" % dead)
    r = curl(agent.ready["url"] + "/api/x")
    assert r.status == 502, r
    # the visitor learns that the service is down, not where it lives; the client's log says
    assert "not reachable" in r.body.decode() and str(dead) not in r.body.decode(), r
    wait_until(lambda: ("127.0.0.1:%d" % dead) in agent.stderr_text(), 5)
    assert body(agent.ready["url"] + "/ok") == "web GET /ok\n"


def test_routes_from_the_config_file(group, relay, apps):
    web, api, _ = apps
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "porthole.toml")
        with open(path, "w") as f:
            f.write('server = "%s"\n\n[tunnels.site]\ntype = "http"\ntarget = %d\n'
                    'routes = [ { path = "/api", target = %d } ]\n' % (relay.server, web.port, api.port))
        check = subprocess.run([BIN, "config", "check", "--config", path], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        agent = group.spawn("start", [BIN, "start", "--all", "--config", path, "--json",
                                      "--inspect-addr", "127.0.0.1:0"])
        url = agent.wait_event("ready")["url"]
        assert body(url + "/api/v1") == "api GET /api/v1\n"
        assert body(url + "/home") == "web GET /home\n"


@pytest.mark.parametrize("flag,message", [
    ("api=8000", "must start with '/'"),
    ("/api", "is not PATH=TARGET"),
    ("/api=99999", "route target"),
])
def test_bad_route_flags_name_themselves(flag, message):
    r = subprocess.run([BIN, "http", "3000", "--route", flag], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "--route" in r.stderr and message in r.stderr, r.stderr
