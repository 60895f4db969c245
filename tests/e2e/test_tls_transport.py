"""TLS between client and relay: verified by pinned fingerprint or CA, refused on mismatch."""
import hashlib
import socket

import pytest

from helpers import make_cert, BIN, curl, free_port


def tls_relay(group, *extra):
    relay = group.relay("--control-tls", "on", "--json", *extra)
    listening = relay.proc.wait_event("listening")
    assert listening["tls"] is True, listening
    return relay, listening["fingerprint"]


def test_pinned_fingerprint_http_and_tcp(group, origin):
    relay, fingerprint = tls_relay(group)
    assert fingerprint.startswith("sha256:") and len(fingerprint) == 7 + 64
    web = group.agent(relay, "http", origin.port, "--server-fingerprint", fingerprint)
    r = curl(web.ready["url"] + "/")
    assert r.status == 200 and r.body == b"hello from origin\n", r

    # Raw TCP through the encrypted transport, with a half-close answered after EOF.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    tcp = group.agent(relay, "tcp", srv.getsockname()[1], "--server-fingerprint", fingerprint)
    port = int(tcp.ready["url"].rsplit(":", 1)[1])
    payload = bytes(range(256)) * 4096  # 1 MiB
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        conn, _ = srv.accept()
        with conn:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got += chunk
            conn.sendall(hashlib.sha256(got).hexdigest().encode())
        reply = c.recv(100)
    srv.close()
    assert reply == hashlib.sha256(payload).hexdigest().encode()


def test_wrong_fingerprint_refused(group):
    relay, _ = tls_relay(group)
    agent = group.agent(relay, "http", free_port(), "--server-fingerprint", "sha256:" + "00" * 32,
                        wait_ready=False)
    assert agent.wait_exit(10) != 0
    assert "--server-fingerprint" in agent.stderr_text(), agent.describe()


def test_unverified_certificate_refused_then_insecure_warns(group, origin):
    relay, _ = tls_relay(group)
    agent = group.agent(relay, "http", origin.port, "--tls", "on", wait_ready=False)
    assert agent.wait_exit(10) != 0
    assert "certificate" in agent.stderr_text(), agent.describe()
    insecure = group.agent(relay, "http", origin.port, "--tls", "on", "--insecure")
    assert "WARNING" in insecure.stderr_text()
    assert curl(insecure.ready["url"] + "/").status == 200


def test_ca_file_and_host_name(group, origin, tmp_path):
    cert, key = make_cert(tmp_path, "127.0.0.1")
    relay, fingerprint = tls_relay(group, "--control-cert", str(cert), "--control-key", str(key))
    agent = group.agent(relay, "http", origin.port, "--tls", "on", "--server-ca", str(cert))
    assert curl(agent.ready["url"] + "/").status == 200


def test_ca_file_and_dns_name(group, origin, tmp_path):
    """A name is checked against the certificate's DNS names (and sent as SNI)."""
    cert, key = make_cert(tmp_path, "localhost")
    relay, _ = tls_relay(group, "--control-cert", str(cert), "--control-key", str(key))
    port = relay.server.rsplit(":", 1)[1]
    agent = group.agent("localhost:" + port, "http", origin.port, "--tls", "on",
                        "--server-ca", str(cert))
    assert curl(agent.ready["url"] + "/").status == 200


@pytest.mark.parametrize("name,host", [("relay.invalid", "localhost"), ("127.0.0.2", "127.0.0.1")])
def test_ca_file_with_another_name_refused(group, tmp_path, name, host):
    """A certificate the CA file trusts, but issued for another name or address, is refused."""
    cert, key = make_cert(tmp_path, name)
    relay, _ = tls_relay(group, "--control-cert", str(cert), "--control-key", str(key))
    port = relay.server.rsplit(":", 1)[1]
    agent = group.agent(host + ":" + port, "http", free_port(), "--tls", "on",
                        "--server-ca", str(cert), wait_ready=False)
    assert agent.wait_exit(10) != 0
    assert "certificate" in agent.stderr_text() and "not accepted" in agent.stderr_text(), \
        agent.describe()


def test_plain_client_against_tls_relay_explains(group):
    relay, _ = tls_relay(group)
    agent = group.agent(relay, "http", free_port(), "--tls", "off", wait_ready=False)
    assert agent.wait_exit(10) != 0
    assert "--tls on" in agent.stderr_text(), agent.describe()


def test_tls_is_default_off_loopback(group):
    relay = group.spawn("relay", [BIN, "server", "--control-addr", "0.0.0.0:%d" % free_port(),
                                  "--http-addr", "127.0.0.1:%d" % free_port(), "--token", "t",
                                  "--json"])
    listening = relay.wait_event("listening")
    assert listening["tls"] is True, listening
