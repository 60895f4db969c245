"""A tunnel's owner sets its policies from the client (--basic-auth, --allow-ip, --deny-ip,
--rate-limit, --https-only, --verify-webhook, or [[tunnels.NAME.policies]] in porthole.toml); the relay enforces
them after its own [tunnel_policy] ones, may forbid some types, and refuses a group whose members
disagree. Passwords leave the client only as bcrypt hashes."""
import base64
import hashlib
import hmac
import http.client
import os
import signal
import subprocess

import pytest

import backends
from helpers import BIN, wait_until

NAME = "owned"


def request(relay, path="/", auth=None, source=None, conn=None, name=NAME):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10,
                                          source_address=(source, 0) if source else None)
    headers = {"Host": "%s.localhost:%d" % (name, relay.http_port)}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        if own:
            conn.close()


@pytest.fixture
def svc():
    b = backends.start_backend("svc")
    yield b
    backends.stop_backend(b)


def owner(group, relay, svc, *flags, name=NAME, **kw):
    return group.agent(relay, "http", svc.port, "--subdomain", name, *flags, **kw)


def test_basic_auth_from_the_client_reaches_the_relay_only_as_a_hash(group, svc):
    relay = group.relay()
    agent = owner(group, relay, svc, "--basic-auth", "alice:s3cret-pass", "--basic-auth",
                  "bob:other-pass")
    status, headers, _ = request(relay)
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), headers
    assert request(relay, auth="alice:wrong")[0] == 401
    assert request(relay, auth="alice:s3cret-pass")[0] == 200
    assert request(relay, auth="bob:other-pass")[0] == 200
    assert svc.requests() == 2, "a refused request reached the local service"
    for text in (relay.proc.stderr_text(), agent.stderr_text(), "\n".join(agent.lines)):
        assert "s3cret-pass" not in text and "other-pass" not in text


@pytest.mark.parametrize("flags,status", [
    (["--allow-ip", "10.0.0.0/8"], 403),
    (["--allow-ip", "127.0.0.0/8", "--allow-ip", "::1/128"], 200),
    (["--deny-ip", "127.0.0.1/32"], 403),
])
def test_ip_rules_from_the_client(group, svc, flags, status):
    relay = group.relay()
    owner(group, relay, svc, *flags)
    assert request(relay)[0] == status
    if flags[0] == "--deny-ip":
        assert request(relay, source="127.0.0.2")[0] == 200  # another address passes


def test_rate_limit_from_the_client(group, svc):
    relay = group.relay()
    owner(group, relay, svc, "--rate-limit", "5/h")
    conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10)
    statuses = [request(relay, conn=conn)[0] for _ in range(8)]
    conn.close()
    assert statuses == [200] * 5 + [429] * 3, statuses


def test_the_relays_tunnel_policy_runs_first_and_may_forbid_types(group, svc, tmp_path):
    config = tmp_path / "relay.toml"
    config.write_text('[tunnel_policy]\nforbid = ["rate_limit"]\n'
                      '[[tunnel_policy.policies]]\ntype = "ip_deny"\ncidrs = ["127.0.0.2/32"]\n')
    relay = group.relay("--config", str(config))
    owner(group, relay, svc, "--basic-auth", "alice:pw-123456")
    assert request(relay, source="127.0.0.2", auth="alice:pw-123456")[0] == 403
    assert request(relay)[0] == 401
    assert request(relay, auth="alice:pw-123456")[0] == 200
    refused = owner(group, relay, svc, "--rate-limit", "5/s", name="limited", wait_ready=False)
    assert refused.popen.wait(10) != 0
    err = refused.stderr_text() + "\n".join(refused.lines)
    assert "does not let a tunnel's owner set rate_limit policies" in err, err


def start_from_file(group, tmp_path, relay, port, name, policies):
    """`porthole start` of porthole.toml with one HTTP tunnel NAME to PORT whose
    [[tunnels.web.policies]] tables are the TOML `policies`; returns once it is ready."""
    config = tmp_path / "porthole.toml"
    config.write_text('server = "%s"\n[tunnels.web]\ntype = "http"\ntarget = "%d"\n'
                      'subdomain = "%s"\n%s' % (relay.server, port, name, policies))
    group.spawn("start", [BIN, "start", "--config", str(config), "--all", "--json",
                          "--inspect=false"]).wait_event("ready")


def test_policies_from_the_client_config_file(group, svc, tmp_path):
    relay = group.relay()
    start_from_file(group, tmp_path, relay, svc.port, NAME, '[[tunnels.web.policies]]\n'
                    'type = "respond"\nstatus = 503\nbody = "back soon"\n')
    status, _, body = request(relay)
    assert (status, body) == (503, b"back soon"), (status, body)
    assert svc.requests() == 0


@pytest.mark.parametrize("table,says", [
    ('type = "basic_auth"\nhtpasswd_file = "/etc/passwd"\n', "cannot make the relay read files"),
    ('type = "ip_allow"\ncidrs = ["10.0.0.0/40"]\n', "porthole.toml:7: 'cidrs'"),
    ('type = "nope"\n', "unknown policy type 'nope'"),
])
def test_a_bad_policy_in_the_client_file_stops_the_client_naming_the_line(tmp_path, table, says):
    config = tmp_path / "porthole.toml"
    config.write_text('server = "127.0.0.1:1"\n[tunnels.web]\ntype = "http"\ntarget = "3000"\n'
                      '[[tunnels.web.policies]]\n' + table)
    p = subprocess.run([BIN, "start", "--config", str(config), "--all"], capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and says in p.stderr, p.stderr


@pytest.mark.parametrize("flags,says", [
    (["--allow-ip", "10.0.0.0/99"], "--allow-ip:"),
    (["--rate-limit", "lots"], "--rate-limit: 'lots' is not a rate"),
    (["--basic-auth", "alice"], "--basic-auth: give USER:PASSWORD"),
    (["--verify-webhook", "gitlab:hush-hush-secret"], "--verify-webhook: give PROVIDER:SECRET"),
    (["--verify-webhook", "github"], "--verify-webhook: give PROVIDER:SECRET"),
])
def test_a_bad_policy_flag_names_itself(flags, says):
    p = subprocess.run([BIN, "http", "3000", "--server", "127.0.0.1:1"] + flags,
                       capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and says in p.stderr, p.stderr
    assert "hush-hush-secret" not in p.stderr


def test_verify_webhook_from_the_client(group, svc):
    """--verify-webhook github:SECRET: the relay checks X-Hub-Signature-256 (computed here from
    GitHub's documented algorithm) before anything reaches the local service."""
    secret = "wh-secret-for-the-owner"
    relay = group.relay()
    agent = owner(group, relay, svc, "--verify-webhook", "github:" + secret)
    body = b'{"action":"opened"}'

    def post(signature):
        conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10)
        headers = {"Host": "%s.localhost" % NAME, "Content-Type": "application/json"}
        if signature:
            headers["X-Hub-Signature-256"] = signature
        try:
            conn.request("POST", "/hook", body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    assert post(None)[0] == 401
    assert post(bad)[0] == 401
    assert post(good)[0] == 200
    assert svc.requests() == 1, "an unsigned or wrongly signed request reached the service"
    for text in (relay.proc.stderr_text(), agent.stderr_text(), "\n".join(agent.lines)):
        assert secret not in text


def test_a_group_whose_members_disagree_on_policies_is_refused(group, svc):
    relay = group.relay()
    owner(group, relay, svc, "--group", "k-1", "--basic-auth", "alice:pw-123456")
    other = owner(group, relay, svc, "--group", "k-1", wait_ready=False)
    assert other.popen.wait(10) != 0
    err = other.stderr_text() + "\n".join(other.lines)
    assert "set policies; give every member the same" in err, err
    same = owner(group, relay, svc, "--group", "k-1", "--basic-auth", "alice:pw-123456")
    assert same.ready


def test_a_kept_alive_visitor_is_judged_by_the_owners_new_policies(group, svc):
    relay = group.relay()
    first = owner(group, relay, svc)
    conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10)
    assert request(relay, conn=conn)[0] == 200
    first.popen.send_signal(signal.SIGINT)  # a clean stop frees the name at once
    assert first.popen.wait(10) == 0
    owner(group, relay, svc, "--basic-auth", "alice:pw-123456")
    status = request(relay, conn=conn)[0]
    conn.close()
    assert status == 401


def test_a_relay_of_protocol_version_2_is_not_given_a_guarded_tunnel(group):
    """A relay that speaks only version 2 has no field for policies: the client stops rather
    than open the tunnel unguarded."""
    import socket
    import struct
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # HELLO
            conn.sendall(struct.pack(">IBH", 35, 2, 2) + os.urandom(32))  # CHALLENGE, version 2
            try:
                conn.recv(4096)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    server = "127.0.0.1:%d" % listener.getsockname()[1]
    agent = group.agent(server, "http", 3000, "--basic-auth", "alice:pw-123456",
                        wait_ready=False)
    assert agent.popen.wait(10) != 0
    err = agent.stderr_text() + "\n".join(agent.lines)
    assert "speaks protocol version 2, which cannot carry a tunnel's policies" in err, err
    listener.close()
