"""`porthole start`: several tunnels of different kinds from one config file, in one client."""
import socket

from helpers import BIN, curl, wait_until


def write_config(tmp_path, relay, origin_port, echo_port):
    path = tmp_path / "porthole.toml"
    path.write_text(
        'server = "%s"\n'
        "[tunnels.web]\n"
        'type = "http"\n'
        "target = %d\n"
        'subdomain = "startweb"\n'
        "[tunnels.echo]\n"
        'type = "tcp"\n'
        'target = "127.0.0.1:%d"\n' % (relay.server, origin_port, echo_port))
    return path


def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    return srv


def test_http_and_tcp_in_one_client(group, relay, origin, tmp_path):
    srv = echo_server()
    config = write_config(tmp_path, relay, origin.port, srv.getsockname()[1])
    agent = group.spawn("agent-start", [BIN, "start", "--all", "--config", str(config), "--json"])
    first = agent.wait_event("ready")
    wait_until(lambda: sum(1 for e in agent.events if e.get("event") == "ready") >= 2, timeout=10,
               message="both tunnels should become ready")
    ready = {e["name"]: e for e in agent.events if e.get("event") == "ready"}
    assert first["name"] in ready
    assert ready["web"]["type"] == "http"
    assert ready["web"]["url"] == relay.url("startweb")
    assert ready["echo"]["type"] == "tcp"

    r = curl(ready["web"]["url"] + "/")
    assert r.status == 200 and r.body == b"hello from origin\n", r

    port = int(ready["echo"]["url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        conn, _ = srv.accept()
        with conn:
            c.sendall(b"ping through the tcp tunnel")
            assert conn.recv(100) == b"ping through the tcp tunnel"
            conn.sendall(b"pong")
            assert c.recv(100) == b"pong"
    srv.close()


def test_start_named_subset(group, relay, origin, tmp_path):
    srv = echo_server()
    config = write_config(tmp_path, relay, origin.port, srv.getsockname()[1])
    agent = group.spawn("agent-start", [BIN, "start", "web", "--config", str(config), "--json"])
    ready = agent.wait_event("ready")
    assert ready["name"] == "web"
    srv.close()


def test_start_unknown_name_and_bad_file(group, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[tunnels.x]\ntype = "http"\ntarget = 3000\nbogus = 1\n')
    p = group.spawn("check", [BIN, "config", "check", "--config", str(bad)])
    assert p.wait_exit(5) != 0
    assert "bad.toml:4" in p.stderr_text() and "bogus" in p.stderr_text()

    good = tmp_path / "good.toml"
    good.write_text('[tunnels.x]\ntype = "http"\ntarget = 3000\n')
    p = group.spawn("check", [BIN, "config", "check", "--config", str(good)])
    assert p.wait_exit(5) == 0
    p = group.spawn("start", [BIN, "start", "nope", "--config", str(good)])
    assert p.wait_exit(5) != 0
    assert "nope" in p.stderr_text()


def test_config_check_reads_utf8_and_names_the_line_of_invalid_utf8(group, tmp_path):
    good = tmp_path / "good.toml"
    good.write_bytes("# Zoë's laptop, 東京 😀\ntoken = 'jeton-été'\n[tunnels.x]  # ещё\n"
                     "type = \"http\"\ntarget = 3000\n".encode("utf-8"))
    p = group.spawn("check", [BIN, "config", "check", "--config", str(good)])
    assert p.wait_exit(5) == 0, p.stderr_text()

    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"# Zo\xc3\xab\n[tunnels.x]\ntype = \"http\"  # caf\xe9\ntarget = 3000\n")
    p = group.spawn("check", [BIN, "config", "check", "--config", str(bad)])
    assert p.wait_exit(5) != 0
    assert "bad.toml:3: invalid UTF-8" in p.stderr_text(), p.stderr_text()
