"""The relay's admin API and `porthole admin` (docs/design-operations.md#admin-api).

Each relay gets its own admin socket in the test's directory and, where a test needs it, a TCP
admin port on a free loopback port. Requests go through curl (--unix-socket, or TCP with a bearer
token) and through the CLI.
"""
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from helpers import BIN, free_port, wait_until

ADMIN_TOKEN = "an-admin-token-of-forty-characters-0123"
CLIENT_TOKEN = "first-client-token-abcdefghijklmnop"


# -- helpers ---------------------------------------------------------------------------------

class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Answer(%s, %r)" % (self.status, self.body[:400])


def call(where, method, path, body=None, token=None, headers=(), content_type=True):
    """One request with curl: `where` is a socket path or a TCP port."""
    cmd = ["curl", "-sS", "-i", "--max-time", "10", "-X", method]
    if isinstance(where, int):
        url = "http://127.0.0.1:%d%s" % (where, path)
    else:
        cmd += ["--unix-socket", str(where)]
        url = "http://localhost" + path
    if token is not None:
        cmd += ["-H", "Authorization: Bearer " + token]
    if body is not None:
        cmd += ["--data-binary", body]
    if method in ("POST", "DELETE") and content_type:
        cmd += ["-H", "Content-Type: application/json"]
    for h in headers:
        cmd += ["-H", h]
    p = subprocess.run(cmd + [url], capture_output=True, timeout=20)
    assert p.returncode == 0, p.stderr.decode()
    head, _, rest = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return Answer(status, fields, rest.decode("utf-8", "replace"))


def admin_cli(*args, env=None, timeout=20):
    full = dict(os.environ)
    full.pop("PORTHOLE_ADMIN_TOKEN", None)
    full.pop("XDG_RUNTIME_DIR", None)
    full.pop("RUNTIME_DIRECTORY", None)
    full.update(env or {})
    return subprocess.run([BIN, "admin"] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=full, stdin=subprocess.DEVNULL)


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "admin"
    d.mkdir()
    tokens = d / "tokens"
    tokens.write_text("# clients of this relay\n%s  # first client\n" % CLIENT_TOKEN)
    tokens.chmod(0o600)
    admin_token = d / "admin-token"
    admin_token.write_text(ADMIN_TOKEN + "\n")
    admin_token.chmod(0o600)
    return d


def start_relay(make_relay, files, *extra, wait=True):
    return make_relay("--admin-socket", files / "admin.sock", "--tokens-file", files / "tokens",
                      *extra, wait=wait)


def relay_log(relay):
    return relay.proc.stdout_text() + "\n" + relay.proc.stderr_text()


# -- reading -----------------------------------------------------------------------------------

def test_read_endpoints_over_the_socket(make_relay, make_agent, files, origin, tmp_path):
    config = tmp_path / "relay.toml"
    config.write_text('admin_hosts = ["admin.example"]\n\n[[sites]]\nhosts = ["shop.localhost"]\n'
                      'upstream = ["http://127.0.0.1:%d"]\n' % origin.port)
    relay = start_relay(make_relay, files, "--config", config)
    sock = files / "admin.sock"
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    agent = make_agent(relay, "http", origin.port, "--subdomain", "demo", token=CLIENT_TOKEN)
    assert agent.ready["url"] == relay.url("demo")

    clients = call(sock, "GET", "/api/clients")
    assert clients.status == 200 and clients.headers["content-type"] == "application/json"
    doc = clients.json()
    assert doc["truncated"] is False and len(doc["clients"]) == 1, doc
    c = doc["clients"][0]
    assert len(c["id"]) == 32 and c["address"].startswith("127.0.0.1:"), c
    assert c["agent"].startswith("porthole/") and c["tunnels"] == ["http:demo"], c
    assert len(c["token"]) == 16 and c["connected_since"].endswith("Z"), c
    assert set(c["data_pool"]) == {"idle", "waiting"}, c

    tunnels = call(sock, "GET", "/api/tunnels").json()["tunnels"]
    assert [(t["name"], t["kind"], t["state"]) for t in tunnels] == [("demo", "http", "serving")]
    assert tunnels[0]["url"] == relay.url("demo") and tunnels[0]["members"][0]["client"] == c["id"][:8]

    sites = call(sock, "GET", "/api/sites").json()
    route = sites["sites"][0]["routes"][0]
    assert sites["sites"][0]["hosts"] == ["shop.localhost"] and route["path"] == "/", sites
    assert route["members"][0]["url"] == "http://127.0.0.1:%d" % origin.port
    assert route["members"][0]["health"] == "unchecked" and sites["tcp_sites"] == [], sites

    tokens = call(sock, "GET", "/api/tokens").json()["tokens"]
    assert tokens == [{"digest": c["token"], "source": "%s:2" % (files / "tokens"),
                       "label": "first client", "sessions": 1}], tokens

    cfg = call(sock, "GET", "/api/config")
    assert cfg.status == 200
    assert cfg.json()["tokens"] == ["<redacted>"] and cfg.json()["admin_hosts"] == ["admin.example"]
    assert cfg.json()["generation"] == 1 and cfg.json()["source"] == str(config)

    assert call(sock, "GET", "/api/nothing").status == 404
    reload = call(sock, "POST", "/api/reload", body="{}")
    assert reload.status == 200 and reload.json()["generation"] == 2, reload.json()
    assert call(sock, "GET", "/api/config").json()["generation"] == 2
    metrics = call(sock, "GET", "/metrics")
    assert metrics.status == 200 and 'porthole_config_reloads_total{result="ok"} 1' in metrics.body

    # the CLI's tables and --json
    p = admin_cli("--socket", sock, "clients")
    assert p.returncode == 0, p.stderr
    header, row = p.stdout.splitlines()[:2]
    assert header.split() == ["ID", "ADDRESS", "AGENT", "SINCE", "RTT", "TUNNELS"]
    assert row.startswith(c["id"][:8]) and "http:demo" in row, p.stdout
    p = admin_cli("--socket", sock, "--json", "tunnels")
    assert p.returncode == 0 and json.loads(p.stdout)["tunnels"][0]["name"] == "demo", p.stdout
    for command in ("sites", "tokens", "config"):
        p = admin_cli("--socket", sock, command)
        assert p.returncode == 0 and p.stdout, (command, p.stderr)
    assert "shop.localhost" in admin_cli("--socket", sock, "sites").stdout
    assert CLIENT_TOKEN not in relay_log(relay) + call(sock, "GET", "/api/config").body


def test_default_socket_paths(make_relay, files, tmp_path):
    # systemd's RuntimeDirectory: the relay takes $RUNTIME_DIRECTORY/admin.sock and the CLI,
    # given no --socket, finds it there
    runtime = tmp_path / "run"
    runtime.mkdir()
    make_relay("--tokens-file", files / "tokens", env={"RUNTIME_DIRECTORY": str(runtime)})
    assert stat.S_IMODE(os.stat(runtime / "admin.sock").st_mode) == 0o660
    p = admin_cli("tokens", env={"RUNTIME_DIRECTORY": str(runtime)})
    assert p.returncode == 0 and "first client" in p.stdout, p.stderr
    # a desktop session: $XDG_RUNTIME_DIR/porthole is made for it
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    make_relay("--tokens-file", files / "tokens", env={"XDG_RUNTIME_DIR": str(xdg)})
    assert stat.S_ISSOCK(os.stat(xdg / "porthole" / "admin.sock").st_mode)
    p = admin_cli("--json", "tokens", env={"XDG_RUNTIME_DIR": str(xdg)})
    assert p.returncode == 0 and json.loads(p.stdout)["tokens"][0]["label"] == "first client"
    p = admin_cli("tokens", env={"XDG_RUNTIME_DIR": str(tmp_path / "nothing")})
    assert p.returncode == 2, (p.stdout, p.stderr)


def test_cli_exit_status(make_relay, files):
    start_relay(make_relay, files, "--token", "a-token-given-on-the-command-line")
    sock = files / "admin.sock"
    # a token from the command line is not the API's to revoke
    given = [t for t in call(sock, "GET", "/api/tokens").json()["tokens"]
             if t["source"] == "--token"]
    assert len(given) == 1, given
    p = admin_cli("--socket", sock, "tokens", "revoke", given[0]["digest"])
    assert p.returncode == 1 and "set at --token" in p.stderr, p.stderr
    p = admin_cli("--socket", sock, "kick", "0123456789abcdef")
    assert p.returncode == 1 and "no client" in p.stderr, p.stderr
    p = admin_cli("--socket", files / "elsewhere.sock", "clients")
    assert p.returncode == 2 and "no relay answers" in p.stderr, p.stderr
    p = admin_cli("--socket", sock, "kick", "xyz")
    assert p.returncode == 1 and "hex" in p.stderr, p.stderr


# -- who may call ------------------------------------------------------------------------------

def test_tcp_needs_the_bearer_token(make_relay, files):
    port = free_port()
    relay = start_relay(make_relay, files, "--admin-addr", "127.0.0.1:%d" % port,
                        "--admin-token-file", files / "admin-token")
    wait_until(lambda: call(port, "GET", "/api/clients", token=ADMIN_TOKEN).status == 200,
               timeout=5, message="the TCP admin port does not answer")
    started = time.monotonic()
    for token in (None, "wrong", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]):
        a = call(port, "GET", "/api/clients", token=token)
        assert a.status == 401 and a.headers.get("www-authenticate") == "Bearer", (token, a)
    a = call(port, "POST", "/api/tokens", body="{}", token="wrong")
    assert a.status == 401
    # each miss is counted, but logged at most once a second per address
    within_a_second = time.monotonic() - started < 1.0
    line = "admin: refused a request from 127.0.0.1"
    wait_until(lambda: line in relay_log(relay), timeout=5, message="no refusal logged")
    if within_a_second:
        assert relay_log(relay).count(line) <= 2, relay_log(relay)
    assert call(port, "GET", "/api/clients", token=ADMIN_TOKEN).json()["clients"] == []
    # the five misses above, in the metrics
    metrics = call(port, "GET", "/metrics", token=ADMIN_TOKEN).body
    assert "\nporthole_admin_auth_failures_total 5\n" in metrics, metrics[-2000:]

    p = admin_cli("--addr", "127.0.0.1:%d" % port, "--token-file", files / "admin-token", "tokens")
    assert p.returncode == 0 and "first client" in p.stdout, p.stderr
    p = admin_cli("--addr", "127.0.0.1:%d" % port, "clients",
                  env={"PORTHOLE_ADMIN_TOKEN": ADMIN_TOKEN})
    assert p.returncode == 0 and p.stdout.startswith("ID"), p.stderr
    p = admin_cli("--addr", "127.0.0.1:%d" % port, "clients", env={"PORTHOLE_ADMIN_TOKEN": "no"})
    assert p.returncode == 1 and "401" in p.stderr, p.stderr
    assert ADMIN_TOKEN not in relay_log(relay)
    assert ADMIN_TOKEN not in call(port, "GET", "/api/config", token=ADMIN_TOKEN).body


def test_admin_addr_without_a_token_stops_the_start(make_relay, files, tmp_path):
    relay = start_relay(make_relay, files, "--admin-addr", "0.0.0.0:%d" % free_port(), wait=False)
    assert relay.proc.wait_exit(10) == 2
    assert "needs admin_token or admin_token_file" in relay.proc.stderr_text()

    config = tmp_path / "relay.toml"
    config.write_text('domain = "localhost"\nadmin_addr = "127.0.0.1:%d"\n' % free_port())
    relay = start_relay(make_relay, files, "--config", config, wait=False)
    assert relay.proc.wait_exit(10) == 2
    assert "%s:2: admin_addr" % config in relay.proc.stderr_text(), relay.proc.stderr_text()

    config.write_text('admin_token = "short"\n')
    relay = start_relay(make_relay, files, "--config", config, wait=False)
    assert relay.proc.wait_exit(10) == 2
    err = relay.proc.stderr_text()
    assert "%s:1: admin_token has 5 characters: use at least 32" % config in err, err


def test_admin_socket_in_a_missing_directory_stops_the_start(make_relay, files):
    missing = files / "no-such-dir" / "admin.sock"
    relay = make_relay("--admin-socket", missing, wait=False)
    assert relay.proc.wait_exit(10) == 1
    err = relay.proc.stderr_text()
    assert "admin_socket %s: %s does not exist" % (missing, missing.parent) in err, err
    assert "RuntimeDirectory=" in err, err


def test_host_origin_and_content_type(make_relay, files):
    port = free_port()
    start_relay(make_relay, files, "--admin-addr", "127.0.0.1:%d" % port,
                "--admin-token-file", files / "admin-token")
    sock = files / "admin.sock"
    wait_until(lambda: call(sock, "GET", "/api/tokens").status == 200, timeout=5)
    assert call(sock, "GET", "/api/clients", headers=["Host: evil.example"]).status == 421
    assert call(port, "GET", "/api/clients", token=ADMIN_TOKEN,
                headers=["Host: evil.example:%d" % port]).status == 421
    a = call(sock, "POST", "/api/tokens", body="{}", headers=["Origin: http://evil.example"])
    assert a.status == 403, a
    a = call(sock, "GET", "/api/tokens", headers=["Origin: http://evil.example"])
    assert a.status == 403, a
    a = call(sock, "POST", "/api/tokens", body="{}", content_type=False,
             headers=["Content-Type: text/plain"])
    assert a.status == 415, a
    a = call(sock, "GET", "/api/tokens", headers=["Origin: http://localhost"])
    assert a.status == 200 and "access-control-allow-origin" not in a.headers, a


def test_socket_refuses_other_users(make_relay, files):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to call as another user")
    shared = tempfile.mkdtemp(prefix="porthole-admin-")  # a directory another user can enter
    try:
        os.chmod(shared, 0o755)
        sock = os.path.join(shared, "admin.sock")
        relay = make_relay("--admin-socket", sock, "--tokens-file", files / "tokens")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
        # Past the file mode, the relay's own check of the caller: uid and groups from the kernel.
        os.chmod(sock, 0o666)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "curl", "-sS", "--max-time", "5", "--unix-socket", sock,
                            "http://localhost/api/tokens"],
                           capture_output=True, text=True, timeout=20)
        # Closed unanswered; curl may call that a failed connect when the close comes first, so
        # the relay's own line says that the file mode let it through and the check refused it.
        assert p.returncode != 0 and "first client" not in p.stdout, (p.returncode, p.stderr)
        wait_until(lambda: "admin: refused uid 65534" in relay.proc.stderr_text(), timeout=5,
                   message="the relay did not refuse uid 65534\n" + relay.proc.describe())
        assert call(sock, "GET", "/api/tokens").status == 200
        relay.stop()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_stale_socket_is_replaced_and_a_live_one_stops_the_start(make_relay, files):
    sock = files / "admin.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens
    relay = start_relay(make_relay, files)
    assert call(sock, "GET", "/api/clients").status == 200
    second = start_relay(make_relay, files, wait=False)
    assert second.proc.wait_exit(10) == 1, second.proc.describe()
    assert "another relay answers on %s" % sock in second.proc.stderr_text()
    assert call(sock, "GET", "/api/clients").status == 200  # the first one still answers
    relay.stop()
    assert not sock.exists()


# -- changes -----------------------------------------------------------------------------------

def test_kick_the_client_reconnects_with_its_url(make_relay, make_agent, files, origin):
    relay = start_relay(make_relay, files)
    sock = files / "admin.sock"
    agent = make_agent(relay, "http", origin.port, token=CLIENT_TOKEN)
    url = agent.ready["url"]
    name = url.split("//")[1].split(".")[0]
    first = call(sock, "GET", "/api/clients").json()["clients"][0]["id"]

    mark = agent.event_index()
    p = admin_cli("--socket", sock, "kick", first[:8])
    assert p.returncode == 0 and first[:8] in p.stdout and "http:%s" % name in p.stdout, p
    agent.wait_event("reconnecting", timeout=5, start=mark)
    assert agent.wait_event("ready", timeout=15, start=mark)["url"] == url
    clients = call(sock, "GET", "/api/clients").json()["clients"]
    assert len(clients) == 1 and clients[0]["id"] != first and clients[0]["tunnels"] == ["http:" + name]
    assert "closed session %s" % first[:8] in relay.proc.stderr_text()
    a = call(sock, "DELETE", "/api/clients/%s" % first)
    assert a.status == 404, a


def test_release_a_lease(make_relay, make_agent, files, origin):
    relay = start_relay(make_relay, files, "--lease-grace", "300")
    sock = files / "admin.sock"
    agent = make_agent(relay, "http", origin.port, "--subdomain", "keep", token=CLIENT_TOKEN)
    a = call(sock, "DELETE", "/api/leases/keep")
    assert a.status == 409 and "kick" in a.json()["error"], a
    os.kill(agent.pid, 9)  # a dropped client: its name becomes a lease
    agent.wait_exit(5)

    def leased():
        tunnels = call(sock, "GET", "/api/tunnels").json()["tunnels"]
        return [t for t in tunnels if t["state"] == "leased"]
    lease = wait_until(leased, timeout=10, message="the name did not become a lease")
    assert lease[0]["name"] == "keep" and lease[0]["lease_until"].endswith("Z"), lease
    assert "leased" in admin_cli("--socket", sock, "tunnels").stdout
    p = admin_cli("--socket", sock, "release", "keep")
    assert p.returncode == 0 and "released keep" in p.stdout, p
    assert call(sock, "GET", "/api/tunnels").json()["tunnels"] == []
    assert call(sock, "DELETE", "/api/leases/keep").status == 404
    assert call(sock, "DELETE", "/api/leases/tcp:1").status == 404


def test_tokens_add_and_revoke(make_relay, make_agent, files, origin, tmp_path):
    tokens_file = files / "tokens"
    tokens_file.write_text("")  # set and empty: tokens are required all the same
    tokens_file.chmod(0o600)
    relay = make_relay("--admin-socket", files / "admin.sock", "--tokens-file", tokens_file)
    sock = files / "admin.sock"
    refused = make_agent(relay, "http", origin.port, token="anything", wait_ready=False)
    assert refused.wait_exit(10) != 0

    p = admin_cli("--socket", sock, "tokens", "add", "--label", "ci-runner")
    assert p.returncode == 0, p.stderr
    token = p.stdout.split()[0]
    assert len(token) == 43, p.stdout
    text = tokens_file.read_text()
    assert token not in text and "verifier:" in text and "# ci-runner, added " in text, text

    agent = make_agent(relay, "http", origin.port, token=token)
    listed = call(sock, "GET", "/api/tokens").json()["tokens"]
    assert [(t["label"], t["sessions"]) for t in listed] == [("ci-runner", 1)], listed
    digest = listed[0]["digest"]
    assert listed[0]["source"] == "%s:1" % tokens_file

    mark = agent.event_index()
    started = time.monotonic()
    p = admin_cli("--socket", sock, "tokens", "revoke", digest[:12])
    assert p.returncode == 0 and "1 session(s) closed" in p.stdout, p
    agent.wait_event("reconnecting", timeout=1.0, start=mark)
    assert time.monotonic() - started < 2.0
    assert call(sock, "GET", "/api/clients").json()["clients"] == []
    assert agent.wait_exit(15) != 0  # its reconnect is refused
    assert "did not accept this token" in agent.stderr_text(), agent.describe()
    assert digest not in tokens_file.read_text() and "verifier:" not in tokens_file.read_text()
    assert stat.S_IMODE(os.stat(tokens_file).st_mode) == 0o600  # the rewrite keeps the mode
    assert call(sock, "DELETE", "/api/tokens/%s" % digest).status == 404
    log = relay_log(relay)
    assert token not in log and "revoked token %s" % digest in log, log


def test_tokens_add_needs_a_tokens_file(make_relay, files):
    make_relay("--admin-socket", files / "admin.sock")
    a = call(files / "admin.sock", "POST", "/api/tokens", body='{"label":"x"}')
    assert a.status == 409 and "tokens_file" in a.json()["error"], a
