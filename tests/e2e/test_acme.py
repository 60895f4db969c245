"""Automatic HTTPS: certificates from a real ACME server (Pebble), on demand, for tunnel names the
relay serves; HTTP-01 and TLS-ALPN-01; stored and reused; renewed without a failed request."""
import os
import re
import subprocess
import threading

import pytest

from acme_ca import Knot, Pebble, certificate_text, distinct_ports, served_certificate
from helpers import BIN, curl, free_port, wait_until
from test_metrics import metrics_address

DOMAIN = "porthole.test"


def acme_relay(group, tmp_path, pebble, *extra, challenges=("http-01", "tls-alpn-01"),
               renew_after=None, state="state", acme_lines=(), top_lines=()):
    config = tmp_path / "relay.toml"
    lines = list(top_lines) + [
        "[acme]", 'challenges = [%s]' % ", ".join('"%s"' % c for c in challenges)]
    lines += list(acme_lines)
    if renew_after is not None:
        lines.append("renew_after = %r" % renew_after)
    config.write_text("\n".join(lines) + "\n")
    relay = group.relay("--config", config, "--https-addr", "127.0.0.1:%d" % pebble.tls_port,
                        "--acme-email", "ops@porthole.test", "--acme-ca", pebble.directory,
                        "--acme-ca-root", pebble.tls_cert, "--state-dir", tmp_path / state,
                        "--metrics-addr", "127.0.0.1:0", "--json", *extra,
                        http_port=pebble.http_port, domain=DOMAIN)
    relay.https_port = pebble.tls_port
    return relay


def https_url(relay, name):
    return "https://%s.%s:%d" % (name, DOMAIN, relay.https_port)


def acme_orders(relay):
    text = curl("http://%s/metrics" % metrics_address(relay)).text
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^porthole_acme_orders_total\{result="(\w+)"\} (\d+)$', text, re.M)}


def new_pebble(group, tmp_path, name="pebble"):
    http_port, tls_port = distinct_ports(2)
    return Pebble(group, tmp_path / name, http_port=http_port, tls_port=tls_port)


def test_http01_certificate_on_demand_for_a_live_tunnel_only(group, origin, tmp_path):
    pebble = new_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("http-01",))
    group.agent(relay, "http", origin.port, "--subdomain", "app")
    root = pebble.root(tmp_path / "root.pem")
    # The first visitor's handshake waits for the order and gets the new certificate.
    r = curl(https_url(relay, "app") + "/", "--cacert", root)
    assert r.status == 200 and r.body == b"hello from origin\n", (r, relay.proc.describe())
    cert = certificate_text(served_certificate(relay.https_port, "app." + DOMAIN))
    assert "Pebble" in cert and "DNS:app.porthole.test" in cert, cert
    assert acme_orders(relay)["issued"] == 1
    assert pebble.orders() == 1
    # A name nobody holds costs no order: the visitor gets the fallback certificate.
    r = curl(https_url(relay, "nobody") + "/", "--cacert", root)
    assert r.returncode != 0, r
    assert pebble.orders() == 1
    assert acme_orders(relay)["issued"] == 1
    # Later visitors are served from the installed certificate: no second order.
    for _ in range(3):
        assert curl(https_url(relay, "app") + "/", "--cacert", root).status == 200
    assert pebble.orders() == 1


def test_tls_alpn01_and_restart_reuses_the_stored_certificate(group, origin, tmp_path):
    pebble = new_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("tls-alpn-01",))
    group.agent(relay, "http", origin.port, "--subdomain", "alpn")
    root = pebble.root(tmp_path / "root.pem")
    r = curl(https_url(relay, "alpn") + "/", "--cacert", root)
    assert r.status == 200, (r, relay.proc.describe())
    first = served_certificate(relay.https_port, "alpn." + DOMAIN)
    key_files = list((tmp_path / "state" / "acme").rglob("*.key"))
    assert key_files and all(f.stat().st_mode & 0o077 == 0 for f in key_files), key_files
    # A restarted relay serves the stored certificate: Pebble takes no new order.
    relay.restart()
    wait_until(lambda: curl(https_url(relay, "alpn") + "/", "--cacert", root).status == 200,
               timeout=15, message="the reconnected tunnel should serve the stored certificate")
    assert served_certificate(relay.https_port, "alpn." + DOMAIN) == first
    assert pebble.orders() == 1
    assert acme_orders(relay).get("issued", 0) == 0


def test_renewal_swaps_the_certificate_without_a_failed_request(group, origin, tmp_path):
    pebble = new_pebble(group, tmp_path)
    # Pebble's certificates live for years: a tiny fraction makes the renewal due in seconds.
    relay = acme_relay(group, tmp_path, pebble, challenges=("http-01",), renew_after=2e-8)
    group.agent(relay, "http", origin.port, "--subdomain", "renew")
    root = pebble.root(tmp_path / "root.pem")
    assert curl(https_url(relay, "renew") + "/", "--cacert", root).status == 200
    first = served_certificate(relay.https_port, "renew." + DOMAIN)
    failures = []
    stop = threading.Event()

    def visit():
        while not stop.is_set():
            r = curl(https_url(relay, "renew") + "/", "--cacert", root, timeout=10)
            if r.status != 200:
                failures.append(r)

    visitors = [threading.Thread(target=visit) for _ in range(2)]
    for v in visitors:
        v.start()
    try:
        wait_until(lambda: acme_orders(relay).get("renewed", 0) >= 1, timeout=30,
                   message="the certificate should be renewed")
        wait_until(lambda: served_certificate(relay.https_port, "renew." + DOMAIN) != first,
                   timeout=10, message="the renewed certificate should be served")
    finally:
        stop.set()
        for v in visitors:
            v.join()
    assert not failures, failures[:3]


def test_ca_unreachable_keeps_serving_and_retries(group, origin, tmp_path):
    pebble = new_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("http-01",))
    group.agent(relay, "http", origin.port, "--subdomain", "kept")
    group.agent(relay, "http", origin.port, "--subdomain", "later")
    root = pebble.root(tmp_path / "root.pem")
    assert curl(https_url(relay, "kept") + "/", "--cacert", root).status == 200
    pebble.stop()
    # The certificate it has keeps serving; a new name gets the fallback, and the failure is
    # logged with when the relay tries again.
    assert curl(https_url(relay, "kept") + "/", "--cacert", root).status == 200
    assert curl(https_url(relay, "later") + "/", "--cacert", root).returncode != 0
    wait_until(lambda: acme_orders(relay).get("failed", 0) >= 1, timeout=10)
    assert "no certificate for later.porthole.test" in relay.proc.stderr_text()
    assert "trying again" in relay.proc.stderr_text()
    assert relay.proc.alive()
    # Plain HTTP is not affected.
    assert curl(relay.url("later") + "/").status == 200


def dns_pebble(group, tmp_path):
    knot = Knot(group, tmp_path / "knot", DOMAIN)
    http_port, tls_port = distinct_ports(2)
    pebble = Pebble(group, tmp_path / "pebble", http_port=http_port, tls_port=tls_port,
                    dns_server=knot.server)
    return knot, pebble


def many_tunnels(group, relay, origin, tmp_path, count):
    config = tmp_path / "tunnels.toml"
    config.write_text("".join(
        '[tunnels.t%d]\ntype = "http"\ntarget = %d\nsubdomain = "t%d"\n' % (i, origin.port, i)
        for i in range(count)))
    client = group.spawn("agent-start", [BIN, "start", "--all", "--config", config, "--server",
                                         relay.server, "--json", "--inspect=false"])
    wait_until(lambda: sum(1 for e in client.events if e.get("event") == "ready") == count,
               timeout=30, message="every tunnel should be ready")
    return client


def test_dns01_wildcard_serves_fifty_tunnels_with_one_order(group, origin, tmp_path):
    knot, pebble = dns_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("dns-01",), acme_lines=[
        'dns = { rfc2136 = { server = "%s", zone = "%s", tsig_name = "%s", '
        'tsig_alg = "hmac-sha256", tsig_secret = "%s" } }'
        % (knot.server, DOMAIN, knot.key_name, knot.secret)])
    root = pebble.root(tmp_path / "root.pem")
    # Ordered at start, before any visitor: DOMAIN and *.DOMAIN in one certificate.
    wait_until(lambda: acme_orders(relay).get("issued", 0) == 1, timeout=30,
               message="the wildcard certificate should be issued at start\n%s"
               % relay.proc.describe())
    many_tunnels(group, relay, origin, tmp_path, 50)
    for i in range(50):
        r = curl(https_url(relay, "t%d" % i) + "/", "--cacert", root)
        assert r.status == 200 and r.body == b"hello from origin\n", (i, r)
    cert = certificate_text(served_certificate(relay.https_port, "t7." + DOMAIN))
    assert "DNS:*.porthole.test" in cert and "DNS:porthole.test" in cert, cert
    assert pebble.orders() == 1
    assert acme_orders(relay)["issued"] == 1
    # The challenge's TXT records were removed once the CA had checked them.
    assert not knot.txt("_acme-challenge." + DOMAIN)


def test_dns_hook_publishes_through_an_operator_command(group, origin, tmp_path):
    knot, pebble = dns_pebble(group, tmp_path)
    hook = knot.hook_script(tmp_path / "dns-hook")
    relay = acme_relay(group, tmp_path, pebble, challenges=("dns-01",),
                       acme_lines=['dns_hook = "%s"' % hook])
    group.agent(relay, "http", origin.port, "--subdomain", "hooked")
    root = pebble.root(tmp_path / "root.pem")
    wait_until(lambda: curl(https_url(relay, "hooked") + "/", "--cacert", root).status == 200,
               timeout=30, message="the wildcard should serve the tunnel\n%s" % relay.proc.describe())
    assert pebble.orders() == 1
    assert not knot.txt("_acme-challenge." + DOMAIN)


def test_dns01_with_a_wrong_tsig_secret_says_why(group, origin, tmp_path):
    knot, pebble = dns_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("dns-01",), acme_lines=[
        'dns = { rfc2136 = { server = "%s", zone = "%s", tsig_name = "%s", tsig_secret = "%s" } }'
        % (knot.server, DOMAIN, knot.key_name, "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA==")])
    wait_until(lambda: "refused TSIG key acme" in relay.proc.stderr_text(), timeout=30,
               message="the refusal should be logged\n%s" % relay.proc.describe())
    assert "d3Jvbmcg" not in relay.proc.stderr_text()  # the secret is never logged
    assert acme_orders(relay).get("failed", 0) >= 1


def test_acme_flag_errors(group, tmp_path):
    def fails(*args):
        p = group.spawn("relay", [BIN, "server", "--http-addr", "127.0.0.1:%d" % free_port(),
                                  "--control-addr", "127.0.0.1:%d" % free_port(), *args])
        assert p.wait_exit(10) == 2
        return p.stderr_text()

    assert "needs --https-addr" in fails("--domain", DOMAIN, "--acme-email", "a@b.test")
    assert "public DNS names" in fails("--https-addr", "127.0.0.1:%d" % free_port(),
                                       "--acme-email", "a@b.test")
    assert "letsencrypt-staging" in fails("--domain", DOMAIN, "--https-addr",
                                          "127.0.0.1:%d" % free_port(), "--acme-ca", "http://x")
    config = tmp_path / "bad.toml"
    config.write_text('[acme]\nemail = "a@b.test"\nchallenges = ["dns-01"]\n')
    out = fails("--config", config, "--domain", DOMAIN, "--https-addr",
                "127.0.0.1:%d" % free_port())
    assert "bad.toml:1" in out and "dns_hook" in out and "rfc2136" in out, out
    config.write_text('[acme]\ndns = { rfc2136 = { server = "127.0.0.1", zone = "x" } }\n')
    out = fails("--config", config, "--domain", DOMAIN, "--https-addr",
                "127.0.0.1:%d" % free_port())
    assert "bad.toml:2" in out and "tsig_name" in out, out
    config.write_text('[acme]\nemal = "a@b.test"\n')
    assert "did you mean 'email'" in fails("--config", config)


def test_client_reaches_the_relay_on_its_https_port_by_alpn(group, origin, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a private /etc/hosts for the client (unshare -m) needs root")
    pebble = new_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("http-01",))
    root = pebble.root(tmp_path / "root.pem")
    # The client knows the relay by its public name, which resolves to loopback only for it.
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 %s\n" % DOMAIN)
    client = group.spawn("agent-443", [
        "unshare", "-m", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts,
        BIN, "http", origin.port, "--server", "%s:%d" % (DOMAIN, relay.https_port),
        "--tls", "on", "--server-ca", root, "--subdomain", "via443", "--json",
        "--inspect=false"])
    ready = client.wait_event("ready", timeout=30)
    assert ready["url"] == https_url(relay, "via443")
    # The relay's own certificate for its domain was ordered for the client's handshake, and
    # the client verified it against the CA's root: no fingerprint to copy.
    cert = certificate_text(served_certificate(relay.https_port, DOMAIN))
    assert "Pebble" in cert and "DNS:porthole.test" in cert, cert
    r = curl(https_url(relay, "via443") + "/", "--cacert", root)
    assert r.status == 200 and r.body == b"hello from origin\n", r
    # Visitors on the same port are not mistaken for clients.
    assert curl(https_url(relay, "nobody") + "/", "-k").status == 404


def test_custom_domain_from_a_client_gets_its_certificate(group, origin, tmp_path):
    token = "custom-domain-token-0123456789abcdef"
    verifier = subprocess.run([BIN, "token", "verifier"], input=token + "\n", text=True,
                              capture_output=True, check=True).stdout.strip()
    pebble = new_pebble(group, tmp_path)
    relay = acme_relay(group, tmp_path, pebble, challenges=("http-01",), top_lines=[
        'tokens = ["%s"]' % verifier,
        'custom_domains = { "%s" = ["*.customer.test"] }' % verifier])
    root = pebble.root(tmp_path / "root.pem")
    agent = group.agent(relay, "http", origin.port, "--domain", "App.Customer.test",
                        token=token)
    assert agent.ready["url"] == "https://app.customer.test:%d" % relay.https_port
    # The first visitor's handshake gets a certificate for the client's own domain.
    r = curl("https://app.customer.test:%d/" % relay.https_port, "--cacert", root)
    assert r.status == 200 and r.body == b"hello from origin\n", (r, relay.proc.describe())
    cert = certificate_text(served_certificate(relay.https_port, "app.customer.test"))
    assert "DNS:app.customer.test" in cert and "Pebble" in cert, cert
    assert curl("http://app.customer.test:%d/" % relay.http_port).status == 200
    # A domain the token may not use, and one under the relay's own domain, are refused.
    for domain, why in (("shop.other.test", "does not let your token serve"),
                        ("x.porthole.test", "under this relay's domain")):
        other = group.agent(relay, "http", origin.port, "--domain", domain, token=token,
                            wait_ready=False)
        assert other.wait_exit(10) == 1
        assert why in other.stderr_text() + other.stdout_text(), other.describe()
    assert pebble.orders() == 1


def test_external_account_binding(group, origin, tmp_path):
    mac_key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    http_port, tls_port = distinct_ports(2)
    pebble = Pebble(group, tmp_path / "pebble", http_port=http_port, tls_port=tls_port,
                    eab_keys={"kid-1": mac_key})
    # Without the binding the CA's requirement is named, with what to set.
    bare = acme_relay(group, tmp_path, pebble, challenges=("http-01",), state="bare")
    group.agent(bare, "http", origin.port, "--subdomain", "eab")
    assert curl(https_url(bare, "eab") + "/", "-k").status == 200  # the fallback certificate
    assert "eab_kid and eab_hmac" in bare.proc.stderr_text()
    bare.stop()
    relay = acme_relay(group, tmp_path, pebble, challenges=("http-01",), state="bound",
                       acme_lines=['eab_kid = "kid-1"', 'eab_hmac = "%s"' % mac_key])
    group.agent(relay, "http", origin.port, "--subdomain", "eab")
    root = pebble.root(tmp_path / "root.pem")
    r = curl(https_url(relay, "eab") + "/", "--cacert", root)
    assert r.status == 200, (r, relay.proc.describe())
    assert mac_key not in relay.proc.stderr_text()
