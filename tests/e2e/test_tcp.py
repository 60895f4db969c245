"""TCP tunnels: redis through the relay, big values, fixed remote ports, half-close."""
import hashlib
import os
import shutil
import socket
import subprocess
import threading

import pytest

from helpers import RawOrigin, accepts, free_port, port_is_free, split_url, wait_until

MiB = 1024 * 1024


def redis_cli(port, *args, stdin=None):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args),
                       input=stdin, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def redis_port(module_group, tmp_path_factory):
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.fail("redis-server/redis-cli not installed (run scripts/install-deps)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = module_group.spawn("redis", [
        "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", workdir, "--daemonize", "no", "--protected-mode", "no"])
    try:
        wait_until(lambda: accepts(port) or not proc.alive(), 10)
    except TimeoutError:
        raise AssertionError("redis did not start\n" + proc.describe())
    assert proc.alive(), proc.describe()
    return port


@pytest.fixture(scope="module")
def relay(module_group):
    return module_group.relay()


@pytest.fixture(scope="module")
def redis_tunnel(module_group, relay, redis_port):
    agent = module_group.agent(relay, "tcp", redis_port)
    return agent


def tunnel_port(agent):
    scheme, host, port = split_url(agent.ready["url"])
    assert scheme == "tcp"
    return port


def test_ready_event(redis_tunnel, relay, redis_port):
    ready = redis_tunnel.ready
    assert ready["type"] == "tcp"
    scheme, host, port = split_url(ready["url"])
    assert (scheme, host) == ("tcp", "localhost")
    assert relay.tcp_low <= port <= relay.tcp_high
    assert ready["url"] == "tcp://localhost:%d" % port
    assert str(redis_port) in ready["target"]


def test_redis_set_get(redis_tunnel):
    port = tunnel_port(redis_tunnel)
    assert redis_cli(port, "SET", "k", "v").strip() == b"OK"
    assert redis_cli(port, "GET", "k").strip() == b"v"


def test_redis_big_value(redis_tunnel, redis_port):
    port = tunnel_port(redis_tunnel)
    value = (b"0123456789abcdefghijklmnopqrstuvwxyz" * (MiB // 36 + 1))[:MiB]
    assert redis_cli(port, "-x", "SET", "big", stdin=value).strip() == b"OK"
    # written through the tunnel, read directly (and the other way round)
    assert redis_cli(redis_port, "STRLEN", "big").strip() == str(MiB).encode()
    got = redis_cli(port, "GET", "big")
    assert got.rstrip(b"\n") == value


def test_remote_port(module_group, relay, redis_port):
    wanted = None
    for p in range(relay.tcp_high, relay.tcp_low - 1, -1):
        if port_is_free(p):
            wanted = p
            break
    assert wanted, "no free port in the relay's range"
    agent = module_group.agent(relay, "tcp", redis_port, "--remote-port", wanted)
    assert agent.ready["url"] == "tcp://localhost:%d" % wanted
    assert redis_cli(wanted, "PING").strip() == b"PONG"
    agent.stop()


def answer_digest(conn):
    """Reads the connection until EOF, then answers with the sha256 hex of what it got."""
    h = hashlib.sha256()
    n = 0
    while True:
        data = conn.recv(65536)
        if not data:
            break
        h.update(data)
        n += len(data)
    conn.sendall(("%s %d\n" % (h.hexdigest(), n)).encode())


@pytest.fixture
def digest_server():
    s = RawOrigin(answer_digest)
    yield s
    s.close()


def exchange_half_close(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            data = c.recv(65536)
            if not data:
                break
            reply += data
    return reply


def test_half_close(group, relay, digest_server):
    agent = group.agent(relay, "tcp", digest_server.port)
    port = tunnel_port(agent)
    payload = os.urandom(5 * MiB)
    reply = exchange_half_close(port, payload)
    assert reply == ("%s %d\n" % (hashlib.sha256(payload).hexdigest(), len(payload))).encode()


def test_concurrent_connections(group, relay, digest_server):
    agent = group.agent(relay, "tcp", digest_server.port)
    port = tunnel_port(agent)
    payloads = [os.urandom(256 * 1024 + i) for i in range(8)]
    replies = [None] * len(payloads)

    def run(i):
        replies[i] = exchange_half_close(port, payloads[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for payload, reply in zip(payloads, replies):
        assert reply == ("%s %d\n" % (hashlib.sha256(payload).hexdigest(), len(payload))).encode()


def echo(conn):
    """Echoes every byte back until EOF."""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(min(n - len(buf), 1 << 20))
        assert data, "the tunnel closed after %d of %d bytes" % (len(buf), n)
        buf += data
    return bytes(buf)


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_bulk_then_small_exchanges(group, relay, transport):
    """Bulk bursts and small exchanges on one connection, both ways, several times. Plain: a burst
    moves a direction to splice() and small reads move it back. TLS: records that are already
    there are gathered into one write. Either way the bytes must stay exact and in order."""
    echo_server = RawOrigin(echo)
    try:
        extra = ["--inspect=false"]
        if transport == "tls":
            relay = group.relay("--control-tls", "on", "--json")
            extra += ["--server-fingerprint", relay.proc.wait_event("listening")["fingerprint"]]
        agent = group.agent(relay, "tcp", echo_server.port, *extra)
        port = tunnel_port(agent)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.settimeout(30)
            for round_ in range(3):
                bulk = os.urandom(4 * MiB + round_)
                sender = threading.Thread(target=s.sendall, args=(bulk,))
                sender.start()
                assert recv_exactly(s, len(bulk)) == bulk
                sender.join(30)
                for i in range(50):
                    small = b"ping %d.%d\n" % (round_, i)
                    s.sendall(small)
                    assert recv_exactly(s, len(small)) == small
    finally:
        echo_server.close()
