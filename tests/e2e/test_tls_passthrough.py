"""TLS passthrough: the relay routes by SNI without decrypting; the local service's own
certificate reaches the visitor."""
import subprocess

from helpers import make_cert, BIN, curl, free_port, wait_until, accepts


def test_passthrough_keeps_the_services_certificate(group, tmp_path):
    cert, key = make_cert(tmp_path, "svc.localhost")
    service_port = free_port()
    group.spawn("s_server", ["openssl", "s_server", "-accept", "127.0.0.1:%d" % service_port,
                             "-cert", str(cert), "-key", str(key), "-www", "-quiet"])
    wait_until(lambda: accepts(service_port), timeout=10, message="openssl s_server did not start")
    https_port = free_port()
    relay = group.relay("--https-addr", "127.0.0.1:%d" % https_port)  # passthrough only
    agent = group.agent(relay, "tls", service_port, "--subdomain", "svc")
    assert agent.ready["type"] == "tls"
    assert agent.ready["url"] == "tls://svc.localhost:%d" % https_port

    # The visitor verifies against the service's own certificate: the relay never decrypted.
    r = curl("https://svc.localhost:%d/" % https_port, "--cacert", str(cert))
    assert r.status == 200 and b"s_server" in r.body, r
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % https_port,
                        "-servername", "svc.localhost", "-CAfile", str(cert)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10, text=True)
    assert "subject=CN = svc.localhost" in p.stdout and "Verify return code: 0 (ok)" in p.stdout


def test_passthrough_next_to_terminated_https(group, origin, tmp_path):
    cert, key = make_cert(tmp_path, "own.localhost")
    service_port = free_port()
    group.spawn("s_server", ["openssl", "s_server", "-accept", "127.0.0.1:%d" % service_port,
                             "-cert", str(cert), "-key", str(key), "-www", "-quiet"])
    wait_until(lambda: accepts(service_port), timeout=10)
    https_port = free_port()
    relay = group.relay("--https-addr", "127.0.0.1:%d" % https_port,
                        "--tls-self-signed", str(tmp_path / "ca"))
    group.agent(relay, "tls", service_port, "--subdomain", "own")
    group.agent(relay, "http", origin.port, "--subdomain", "term")
    own = curl("https://own.localhost:%d/" % https_port, "--cacert", str(cert))
    assert own.status == 200 and b"s_server" in own.body, own
    term = curl("https://term.localhost:%d/" % https_port, "--cacert", str(tmp_path / "ca" / "ca.pem"))
    assert term.status == 200 and term.body == b"hello from origin\n", term


def test_tls_tunnel_needs_an_https_port(group, relay):
    agent = group.agent(relay, "tls", free_port(), wait_ready=False)
    assert agent.wait_exit(10) != 0
    assert "--https-addr" in agent.stderr_text(), agent.describe()
