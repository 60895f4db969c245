"""The access log (README "Observing the relay"): one line per request, JSON or combined, written
in batches off the event loop, reopened on SIGUSR1, with no credentials and no query values."""
import http.client
import json
import os
import re
import signal
import subprocess

import pytest

from helpers import wait_until
from test_policies import (HOST, assert_refused_at_marked_line, basic, get, policy, site,
                           start_relay, to)

SECRET = "Bearer sk-live-0123456789abcdef"
COOKIE = "session=cookie-secret-42"
QUERY_SECRET = "oauth-code-9876"
USER = "alice:" + "$6$saltsalt$" + "x" * 86  # no password matches: every try is a 401


def log_lines(path, count, timeout=10):
    """The first `count` lines of the log, once they are there (the relay flushes each second)."""
    def ready():
        return os.path.exists(path) and len(open(path).read().splitlines()) >= count
    wait_until(ready, timeout=timeout,
               message="%d lines in %s; have: %s" % (count, path,
                                                    open(path).read() if os.path.exists(path)
                                                    else "no file"))
    return open(path).read().splitlines()


def sites_config(b, log_path, fmt="json", query=None):
    log = "access_log = { path = %s, format = %s%s }\n" % (
        json.dumps(str(log_path)), json.dumps(fmt),
        ", query = %s" % json.dumps(query) if query else "")
    return log + site([HOST], [
        to(b, path="/app"),
        to(b, path="/private", policies=[policy("basic_auth", users=[USER])]),
    ])


def test_json_lines_carry_each_request_and_no_secret(group, tmp_path, backend):
    b = backend("b")
    log = tmp_path / "access.log"
    relay = start_relay(group, tmp_path, sites_config(b, log))
    ok = get(relay.http_port, "/app/orders?code=%s&state=x" % QUERY_SECRET,
             headers=[("Authorization", SECRET), ("Cookie", COOKIE), ("User-Agent", "e2e/1.0"),
                      ("X-Request-Id", "req-1")])
    assert ok.status == 200, ok
    assert get(relay.http_port, "/nowhere").status == 404
    refused = get(relay.http_port, "/private", headers=[("Authorization", basic("alice", "no"))])
    assert refused.status == 401, refused
    assert get(relay.http_port, "/", host="unknown.test").status == 404
    lines = log_lines(log, 4)
    # Each event loop writes its own lines: in time order per loop, not across loops.
    entries = {(e["host"], e["path"]): e for e in map(json.loads, lines)}
    first = entries[(HOST, "/app/orders?code&state")]
    no_route = entries[(HOST, "/nowhere")]
    auth = entries[(HOST, "/private")]
    unknown = entries[("unknown.test", "/")]
    assert first["method"] == "GET" and first["status"] == 200, first
    assert first["path"] == "/app/orders?code&state", first
    assert first["host"] == HOST and first["site"] == HOST and first["route"] == "/app", first
    assert first["upstream"] == "http://127.0.0.1:%d" % b.port, first
    assert first["visitor"] == "127.0.0.1" and first["tls"] is False, first
    assert first["user_agent"] == "e2e/1.0" and first["request_id"] == "req-1", first
    assert first["bytes_in"] > 0 and first["bytes_out"] > 0 and first["duration_ms"] >= 0, first
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"]), first
    assert no_route["status"] == 404 and no_route["refusal"] == "no_route", no_route
    assert auth["status"] == 401 and auth["policy"] == "basic_auth", auth
    assert auth["refusal"] == "basic_auth", auth
    assert unknown["status"] == 404 and unknown["refusal"] == "unknown_host", unknown
    text = log.read_text()
    for secret in ("sk-live", "cookie-secret", QUERY_SECRET, "alice"):
        assert secret not in text, (secret, text)


def test_a_tunnels_request_names_the_tunnel(group, tmp_path, origin):
    log = tmp_path / "access.log"
    relay = group.relay("--access-log", str(log))
    agent = group.agent(relay, "http", str(origin.server_port), "--subdomain", "logged")
    host = "logged.localhost"
    answer = get(relay.http_port, "/", host=host)
    assert answer.status == 200, answer
    entry = json.loads(log_lines(log, 1)[0])
    assert entry["tunnel"] == "logged" and entry["upstream"] == "tunnel:logged", entry
    assert entry["status"] == 200 and entry["path"] == "/", entry
    assert agent.alive()


COMBINED = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(\S+) (\S+) HTTP/1\.1" '
    r'(\d{3}) (\d+) "([^"]*)" "([^"]*)" (\d+) (\d+\.\d{3}) (\S+) site=(\S+) upstream=(\S+) '
    r'rid=(\S+) policy=(\S+)$')


def test_combined_lines_match_apaches_format_then_porthole_fields(group, tmp_path, backend):
    b = backend("b")
    log = tmp_path / "access.log"
    relay = start_relay(group, tmp_path, sites_config(b, log, fmt="json"),
                        "--access-log-format", "combined")
    assert get(relay.http_port, "/app/x?token=%s" % QUERY_SECRET,
               headers=[("Referer", "https://ref.test/p?sig=%s" % QUERY_SECRET),
                        ("User-Agent", 'agent "quoted"')]).status == 200
    assert get(relay.http_port, "/private").status == 401
    # Each event loop writes its own lines: in time order per loop, not across loops.
    lines = sorted(log_lines(log, 2), key=lambda line: " 401 " in line)
    first = COMBINED.match(lines[0])
    assert first, lines[0]
    method, target, status, sent, referer, agent = first.group(1, 2, 3, 4, 5, 6)
    assert (method, target, status) == ("GET", "/app/x?token", "200"), lines[0]
    assert referer == "https://ref.test/p?sig" and '"' not in agent and int(sent) > 0, lines[0]
    second = COMBINED.match(lines[1])
    assert second and second.group(3) == "401" and second.group(13) == "basic_auth", lines[1]
    assert QUERY_SECRET not in log.read_text()


def test_sigusr1_reopens_the_file_after_logrotate_moved_it(group, tmp_path, backend):
    b = backend("b")
    log = tmp_path / "access.log"
    relay = start_relay(group, tmp_path, sites_config(b, log))
    assert get(relay.http_port, "/app/1").status == 200
    log_lines(log, 1)
    os.rename(log, str(log) + ".1")
    assert get(relay.http_port, "/app/2").status == 200
    wait_until(lambda: len(open(str(log) + ".1").read().splitlines()) == 2,
               message="the second line in the moved file")
    relay.proc.signal(signal.SIGUSR1)
    wait_until(log.exists, message="the relay opens the path again on SIGUSR1")
    assert get(relay.http_port, "/app/3").status == 200
    assert json.loads(log_lines(log, 1)[0])["path"] == "/app/3"
    assert relay.proc.alive()


@pytest.mark.skipif(not os.path.exists("/usr/bin/strace"), reason="strace is not installed")
def test_a_thousand_requests_take_a_few_writes(group, tmp_path, backend):
    b = backend("b")
    log = tmp_path / "access.log"
    relay = start_relay(group, tmp_path, sites_config(b, log))
    trace = tmp_path / "writes.txt"
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=write", "-e", "signal=none",
                               "-o", str(trace), "-p", str(relay.pid)],
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: trace.exists(), message="strace attached")
        conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=5)
        for i in range(1000):
            conn.request("GET", "/app/%d" % i, headers={"Host": HOST})
            assert conn.getresponse().read() is not None
        conn.close()
        log_lines(log, 1000)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=10)
    log_fd_writes = [line for line in trace.read_text().splitlines()
                     if re.search(r'write\(\d+, "\{\\"time', line)]
    assert 1 <= len(log_fd_writes) <= 10, "%d writes of log lines" % len(log_fd_writes)


def test_a_bad_access_log_setting_names_its_line(tmp_path):
    assert_refused_at_marked_line(tmp_path / "relay.toml", """
domain = "localhost"
access_log = { path = "-", format = "clf" }  #<
""", 'use "json" or "combined"')
    assert_refused_at_marked_line(tmp_path / "relay.toml", """
access_log = { format = "json" }  #<
""", "access_log needs a path")
