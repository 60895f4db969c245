"""The PROXY protocol with a real load balancer on both sides of the relay: HAProxy in front sends
the visitor's address in a v1 or v2 header (accept_proxy_protocol, only from trusted_proxies), and
HAProxy behind reads the header the relay sends (send_proxy_protocol) and answers with the address
it names. HTTP sites and tcp sites both carry the visitor's address end to end."""

import http.client
import json
import shutil
import socket

import pytest

import backends
from helpers import accepts, free_port, wait_until

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HOST = "shop.test"
VISITOR = "127.0.0.5"


def start_haproxy(group, tmp_path, name, body):
    """HAProxy in the foreground with `body` after a common global/defaults section."""
    cfg = tmp_path / (name + ".cfg")
    cfg.write_text(
        "global\n  log stderr format short local0 warning\n"
        "defaults\n  log global\n  timeout connect 5s\n  timeout client 30s\n"
        "  timeout server 30s\n" + body)
    proc = group.spawn(name, [HAPROXY, "-db", "-f", str(cfg)])
    return proc


def wait_listening(proc, port):
    wait_until(lambda: accepts(port) or not proc.alive(), 10)
    assert proc.alive(), proc.describe()


def echo_address_haproxy(group, tmp_path, name):
    """A backend that reads a PROXY header (v1 or v2) and answers 'ADDRESS PORT' of the source it
    names: HAProxy's accept-proxy and its own return action."""
    port = free_port()
    proc = start_haproxy(group, tmp_path, name, (
        "frontend echo\n  mode http\n  bind 127.0.0.1:%d accept-proxy\n"
        "  http-request return status 200 content-type text/plain lf-string \"%%[src] %%[src_port]\"\n"
    ) % port)
    wait_listening(proc, port)
    return port


def front_haproxy(group, tmp_path, target_port, version):
    """HAProxy in TCP mode in front of the relay, sending a PROXY header of `version` (1 or 2)."""
    port = free_port()
    send = "send-proxy" if version == 1 else "send-proxy-v2"
    proc = start_haproxy(group, tmp_path, "haproxy-front-v%d" % version, (
        "frontend in\n  mode tcp\n  bind 127.0.0.1:%d\n  default_backend relay\n"
        "backend relay\n  mode tcp\n  server relay 127.0.0.1:%d %s\n") % (port, target_port, send))
    wait_listening(proc, port)
    return port


def start_relay(group, tmp_path, toml):
    path = tmp_path / "relay.toml"
    path.write_text(toml)
    return group.relay("--config", str(path))


def get(port, path="/headers", source=VISITOR, host=HOST):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def closed_without_answer(port, source, data):
    """True when the relay closes a connection from `source` that sent `data` without a byte."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    try:
        s.sendall(data)
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    finally:
        s.close()


@pytest.fixture
def header_backend():
    b = backends.start_backend("b")
    yield b
    backends.stop_backend(b)


@pytest.mark.parametrize("version", [1, 2])
def test_behind_haproxy_the_visitor_comes_from_its_proxy_header(group, tmp_path, header_backend,
                                                               version):
    relay = start_relay(group, tmp_path, (
        'trusted_proxies = ["127.0.0.1/32"]\naccept_proxy_protocol = true\n'
        '[[sites]]\nhosts = ["%s"]\nupstream = ["http://127.0.0.1:%d"]\n')
        % (HOST, header_backend.port))
    front = front_haproxy(group, tmp_path, relay.http_port, version)
    status, body = get(front)
    assert status == 200, body
    headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
    # the address HAProxy saw, not HAProxy's own
    assert headers["x-forwarded-for"] == VISITOR, headers

    # straight to the relay from an address outside trusted_proxies: closed, whatever it sends
    assert closed_without_answer(relay.http_port, "127.0.0.2",
                                 b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    # from a trusted address without a PROXY header: closed too, nothing forwarded
    before = header_backend.requests()
    assert closed_without_answer(relay.http_port, "127.0.0.1",
                                 b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    assert header_backend.requests() == before
    # and the relay keeps serving
    assert get(front)[0] == 200


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_protocol_tells_the_backend_who_the_visitor_is(group, tmp_path, version):
    echo = echo_address_haproxy(group, tmp_path, "haproxy-echo-" + version)
    relay = start_relay(group, tmp_path, (
        '[[sites]]\nhosts = ["%s"]\nupstream = ["http://127.0.0.1:%d"]\n'
        'send_proxy_protocol = "%s"\n') % (HOST, echo, version))
    for _ in range(3):  # each request on its own connection, each with its own source port
        conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=5,
                                          source_address=(VISITOR, 0))
        try:
            conn.request("GET", "/", headers={"Host": HOST})
            r = conn.getresponse()
            body = r.read().decode()
            assert r.status == 200, body
            address, port = body.split()
            assert address == VISITOR, body
            assert int(port) == conn.sock.getsockname()[1], body
        finally:
            conn.close()


def test_a_tcp_site_passes_the_visitor_address_through(group, tmp_path):
    """HAProxy (v2) -> a tcp site that accepts the header and sends its own (v1) -> a backend
    that reads it: the backend sees the visitor HAProxy saw."""
    echo = echo_address_haproxy(group, tmp_path, "haproxy-echo-tcp")
    listen = free_port()
    relay = start_relay(group, tmp_path, (
        'trusted_proxies = ["127.0.0.1/32"]\n'
        '[[tcp_sites]]\nlisten = "127.0.0.1:%d"\nupstream = ["tcp://127.0.0.1:%d"]\n'
        'accept_proxy_protocol = true\nsend_proxy_protocol = "v1"\n') % (listen, echo))
    wait_until(lambda: accepts(listen), 10)
    front = front_haproxy(group, tmp_path, listen, 2)
    status, body = get(front, "/", host="anything")
    assert status == 200, body
    assert body.decode().split()[0] == VISITOR, body
    assert relay.proc.alive()
