"""HTTPS for visitors: a local CA for development, given certificates chosen by SNI, redirects."""
import json
import subprocess

from helpers import make_cert, curl, free_port, wait_until


def https_relay(group, *extra):
    https_port = free_port()
    relay = group.relay("--https-addr", "127.0.0.1:%d" % https_port, *extra)
    relay.https_port = https_port
    return relay


def https_url(relay, name):
    return "https://%s.localhost:%d" % (name, relay.https_port)


def test_self_signed_ca_serves_https_with_forwarded_proto(group, origin, tmp_path):
    ca_dir = tmp_path / "ca"
    relay = https_relay(group, "--tls-self-signed", str(ca_dir))
    agent = group.agent(relay, "http", origin.port, "--subdomain", "secure")
    assert agent.ready["url"] == https_url(relay, "secure")
    ca = str(ca_dir / "ca.pem")
    r = curl(https_url(relay, "secure") + "/headers", "--cacert", ca)
    assert r.status == 200, r
    headers = json.loads(r.body)["headers"]
    assert headers["x-forwarded-proto"] == "https"
    # Without trusting the CA the certificate is refused: this is not a blanket accept.
    assert curl(https_url(relay, "secure") + "/").returncode != 0
    # The CA persists: a restarted relay signs with the same one, so the same trust still works.
    relay.stop()
    relay.start()
    wait_until(lambda: curl(https_url(relay, "secure") + "/", "--cacert", ca).status == 200,
               timeout=15, message="the reconnected tunnel should serve HTTPS with the same CA")


def test_redirect_http_to_https(group, origin, tmp_path):
    relay = https_relay(group, "--tls-self-signed", str(tmp_path / "ca"), "--redirect-https")
    group.agent(relay, "http", origin.port, "--subdomain", "moved")
    r = curl(relay.url("moved") + "/a/b?c=d", "-D", "-")
    assert r.status == 308, r
    assert ("location: %s/a/b?c=d" % https_url(relay, "moved")).encode() in r.body.lower()


def test_given_certificates_chosen_by_sni(group, origin, tmp_path):
    alpha = make_cert(tmp_path, "alpha.localhost")
    beta = make_cert(tmp_path, "beta.localhost")
    relay = https_relay(group, "--tls-cert", alpha[0], "--tls-key", alpha[1],
                        "--tls-cert", beta[0], "--tls-key", beta[1])
    group.agent(relay, "http", origin.port, "--subdomain", "alpha")
    group.agent(relay, "http", origin.port, "--subdomain", "beta")
    for name, (cert, _) in (("alpha", alpha), ("beta", beta)):
        r = curl(https_url(relay, name) + "/", "--cacert", str(cert))
        assert r.status == 200 and r.body == b"hello from origin\n", (name, r)


def test_old_tls_versions_refused(group, tmp_path):
    relay = https_relay(group, "--tls-self-signed", str(tmp_path / "ca"))
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % relay.https_port,
                        "-servername", "x.localhost", "-tls1_1"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert p.returncode != 0
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % relay.https_port,
                        "-servername", "x.localhost", "-alpn", "http/1.1", "-tls1_2"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10, text=True)
    assert "ALPN protocol: http/1.1" in p.stdout, p.stdout[-2000:]


def test_https_flag_errors(group):
    from helpers import BIN
    # A redirect to HTTPS needs certificates to terminate it (a bare --https-addr is passthrough).
    p = group.spawn("relay", [BIN, "server", "--https-addr", "127.0.0.1:%d" % free_port(),
                              "--http-addr", "127.0.0.1:%d" % free_port(),
                              "--control-addr", "127.0.0.1:%d" % free_port(), "--redirect-https"])
    assert p.wait_exit(5) != 0
    assert "--tls-cert" in p.stderr_text() and "--tls-self-signed" in p.stderr_text()
    p = group.spawn("relay", [BIN, "server", "--tls-cert", "/etc/hostname", "--tls-key",
                              "/etc/hostname", "--http-addr", "127.0.0.1:%d" % free_port(),
                              "--control-addr", "127.0.0.1:%d" % free_port()])
    assert p.wait_exit(5) != 0
    assert "--https-addr" in p.stderr_text()
