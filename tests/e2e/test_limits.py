"""Abuse limits and reserved names: each limit refuses clearly and spares everyone else."""
import socket

from helpers import BIN, curl, free_port, wait_until


def relay_with(group, tmp_path, text):
    config = tmp_path / "relay.toml"
    config.write_text(text)
    return group.relay("--config", str(config))


def read_status(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else None


def test_reserved_name_refused(group, relay, origin):
    agent = group.agent(relay, "http", origin.port, "--subdomain", "www", wait_ready=False)
    assert agent.wait_exit(5) != 0
    assert "reserved" in agent.stderr_text(), agent.describe()


def test_reserved_names_configurable(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, 'reserved_names = ["billing"]\n')
    www = group.agent(relay, "http", origin.port, "--subdomain", "www")
    assert www.ready["url"] == relay.url("www")
    billing = group.agent(relay, "http", origin.port, "--subdomain", "billing", wait_ready=False)
    assert billing.wait_exit(5) != 0
    assert "reserved" in billing.stderr_text()


def test_max_tunnels_per_client(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, "max_tunnels_per_client = 2\n")
    client = tmp_path / "client.toml"
    client.write_text("".join('[tunnels.t%d]\ntype = "http"\ntarget = %d\n' % (i, origin.port)
                              for i in range(3)))
    agent = group.spawn("agent-start", [BIN, "start", "--all", "--config", str(client),
                                        "--server", relay.server, "--json"])
    assert agent.wait_exit(10) != 0
    assert "at most 2 tunnels" in agent.stderr_text(), agent.describe()


def test_max_connections_per_ip(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, "max_connections_per_ip = 3\n")
    agent = group.agent(relay, "http", origin.port)
    held = [socket.create_connection(("127.0.0.1", relay.http_port), timeout=5) for _ in range(3)]
    # Each answered once, so the relay has taken all three in (on whichever event loop) before
    # the fourth comes.
    host = agent.ready["url"].split("://", 1)[1]
    for s in held:
        s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        assert read_status(s) == 200
    try:
        with socket.create_connection(("127.0.0.1", relay.http_port), timeout=5) as extra:
            assert read_status(extra) == 429
    finally:
        for s in held:
            s.close()
    # Once the held connections are gone the address is welcome again.
    wait_until(lambda: curl(agent.ready["url"] + "/").status == 200, timeout=10,
               message="requests should pass again after the connections closed")


def test_max_connections_per_tunnel_spares_other_tunnels(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, "max_connections_per_tunnel = 1\n")
    busy = group.agent(relay, "http", origin.port)
    other = group.agent(relay, "http", origin.port)
    host = busy.ready["url"].split("://", 1)[1]
    request = b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=5) as first:
        first.sendall(request)  # keep-alive: this connection now holds the tunnel's one slot
        assert read_status(first) == 200
        with socket.create_connection(("127.0.0.1", relay.http_port), timeout=5) as second:
            second.sendall(request)
            assert read_status(second) == 503
        assert curl(other.ready["url"] + "/").status == 200


def test_name_bound_to_a_token(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, 'tokens = ["token-a", "token-b"]\n'
                                        'bound_names = { owned = "token-a" }\n')
    thief = group.agent(relay, "http", origin.port, "--subdomain", "owned", token="token-b",
                        wait_ready=False)
    assert thief.wait_exit(5) != 0
    assert "bound to another token" in thief.stderr_text(), thief.describe()
    owner = group.agent(relay, "http", origin.port, "--subdomain", "owned", token="token-a")
    assert owner.ready["url"] == relay.url("owned")


def test_new_connections_per_second_per_tunnel(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, "max_new_connections_per_second = 2\n")
    agent = group.agent(relay, "http", origin.port)
    host = agent.ready["url"].split("://", 1)[1]
    statuses = []
    for _ in range(6):
        with socket.create_connection(("127.0.0.1", relay.http_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())
            statuses.append(read_status(s))
    assert statuses[:2] == [200, 200], statuses
    assert 429 in statuses, statuses


def test_max_header_bytes(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, "max_header_bytes = 2048\n")
    agent = group.agent(relay, "http", origin.port)
    host = agent.ready["url"].split("://", 1)[1]
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n" % (host.encode(), b"a" * 4096))
        assert read_status(s) == 431


def test_max_tunnels_per_token_across_clients(group, tmp_path, origin):
    relay = relay_with(group, tmp_path, 'tokens = ["shared"]\nmax_tunnels_per_token = 2\n')
    group.agent(relay, "http", origin.port, token="shared")
    group.agent(relay, "tcp", origin.port, token="shared")
    third = group.agent(relay, "http", origin.port, token="shared", wait_ready=False)
    assert third.wait_exit(10) != 0
    assert "at most 2 tunnels" in third.stderr_text(), third.describe()
