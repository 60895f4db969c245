"""Pebble, Let's Encrypt's ACME test server, on loopback ports, with pebble-challtestsrv as the DNS
server it asks: every name resolves to 127.0.0.1, so Pebble validates challenges against the relay
under test."""
import json
import ssl
import subprocess
import urllib.request
from pathlib import Path

from helpers import free_port, make_cert, wait_until


class Pebble:
    def __init__(self, group, workdir, http_port, tls_port, env=None):
        self.group = group
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port = http_port
        self.tls_port = tls_port
        self.port = free_port()
        self.management_port = free_port()
        self.dns_port = free_port()
        self.dns_management_port = free_port()
        # Pebble's own HTTPS: a certificate for 127.0.0.1 that the relay trusts by --acme-ca-root.
        self.tls_cert, self.tls_key = make_cert(self.dir, "127.0.0.1")
        self.env = {"PEBBLE_VA_NOSLEEP": "1"}
        self.env.update(env or {})
        self.dns = group.spawn("challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", "127.0.0.1:%d" % self.dns_port,
            "-management", "127.0.0.1:%d" % self.dns_management_port,
            "-http01", "", "-https01", "", "-tlsalpn01", ""])
        self.proc = None
        self.start()

    @property
    def directory(self):
        return "https://127.0.0.1:%d/dir" % self.port

    def start(self):
        config = self.dir / "pebble.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": "127.0.0.1:%d" % self.port,
            "managementListenAddress": "127.0.0.1:%d" % self.management_port,
            "certificate": str(self.tls_cert), "privateKey": str(self.tls_key),
            "httpPort": self.http_port, "tlsPort": self.tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        self.proc = self.group.spawn("pebble", [
            "pebble", "-config", str(config), "-dnsserver", "127.0.0.1:%d" % self.dns_port],
            env=self.env)
        wait_until(self._answers, timeout=20, message="pebble should serve its directory")
        return self

    def stop(self):
        self.proc.stop()

    def _get(self, url):
        context = ssl.create_default_context(cafile=str(self.tls_cert))
        with urllib.request.urlopen(url, context=context, timeout=5) as r:
            return r.read()

    def _answers(self):
        if not self.proc.alive():
            raise AssertionError("pebble exited\n" + self.proc.describe())
        try:
            return b"newOrder" in self._get(self.directory)
        except OSError:
            return False

    def root(self, path):
        """Pebble's root certificate (made anew at each start) written to `path`, to verify with."""
        Path(path).write_bytes(self._get("https://127.0.0.1:%d/roots/0" % self.management_port))
        return str(path)

    def orders(self):
        """How many new orders Pebble has taken since it started, from its log."""
        return sum(1 for line in self.proc.stderr_text().splitlines() + self.proc.lines
                   if "POST /order-plz" in line)


def served_certificate(port, name):
    """The PEM certificate the listener at 127.0.0.1:port serves for SNI `name`."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", name, "-showcerts"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20, text=True)
    out = p.stdout
    start = out.find("-----BEGIN CERTIFICATE-----")
    end = out.find("-----END CERTIFICATE-----")
    assert start >= 0, p.stdout[-2000:] + p.stderr[-2000:]
    return out[start:end + len("-----END CERTIFICATE-----")] + "\n"


def certificate_text(pem):
    return subprocess.run(["openssl", "x509", "-noout", "-issuer", "-serial", "-ext",
                           "subjectAltName"], input=pem, capture_output=True, text=True,
                          check=True).stdout
