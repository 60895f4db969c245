"""Pebble, Let's Encrypt's ACME test server, on loopback ports, with pebble-challtestsrv as the DNS
server it asks: every name resolves to 127.0.0.1, so Pebble validates challenges against the relay
under test."""
import base64
import json
import os
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

from helpers import free_port, make_cert, wait_until


def distinct_ports(count):
    """`count` free loopback ports, all different."""
    ports = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class Pebble:
    def __init__(self, group, workdir, http_port, tls_port, env=None, dns_server=None,
                 eab_keys=None):
        self.group = group
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port = http_port
        self.tls_port = tls_port
        self.port, self.management_port, self.dns_port, self.dns_management_port = \
            distinct_ports(4)
        # Pebble's own HTTPS: a certificate for 127.0.0.1 that the relay trusts by --acme-ca-root.
        self.tls_cert, self.tls_key = make_cert(self.dir, "127.0.0.1")
        self.env = {"PEBBLE_VA_NOSLEEP": "1"}
        self.env.update(env or {})
        self.dns_server = dns_server
        self.eab_keys = eab_keys or {}
        self.dns = None if dns_server else group.spawn("challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", "127.0.0.1:%d" % self.dns_port,
            "-management", "127.0.0.1:%d" % self.dns_management_port,
            "-http01", "", "-https01", "", "-tlsalpn01", ""])
        self.proc = None
        self.start(may_move=True)

    @property
    def directory(self):
        return "https://127.0.0.1:%d/dir" % self.port

    def start(self, may_move=False):
        """Starts Pebble; on its first start (`may_move`), a port another test took between being
        chosen and being bound is chosen again (tests run side by side)."""
        for attempt in range(3):
            config = self.dir / "pebble.json"
            config.write_text(json.dumps({"pebble": {
                "listenAddress": "127.0.0.1:%d" % self.port,
                "managementListenAddress": "127.0.0.1:%d" % self.management_port,
                "certificate": str(self.tls_cert), "privateKey": str(self.tls_key),
                "httpPort": self.http_port, "tlsPort": self.tls_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": bool(self.eab_keys),
                "externalAccountMACKeys": self.eab_keys}}))
            self.proc = self.group.spawn("pebble", [
                "pebble", "-config", str(config), "-dnsserver",
                self.dns_server or "127.0.0.1:%d" % self.dns_port],
                env=self.env)
            try:
                wait_until(self._answers, timeout=20, message="pebble should serve its directory")
                return self
            except AssertionError:
                taken = "address already in use" in self.proc.stderr_text()
                if not (may_move and taken and attempt < 2):
                    raise
                self.port, self.management_port = distinct_ports(2)
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
        """How many new orders Pebble has taken since it started, from its log (not its requests:
        a request it refused for a bad nonce, as it does 5% of the time, is no order)."""
        return sum(1 for line in self.proc.stderr_text().splitlines() + self.proc.lines
                   if "Added order" in line)


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


class Knot:
    """Knot DNS, authoritative for `zone` on a loopback port: every name in it resolves to
    127.0.0.1, and the holder of the TSIG key `acme` may update it (RFC 2136)."""

    def __init__(self, group, workdir, zone):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zone = zone
        self.port = free_port()
        self.key_name = "acme"
        self.secret = base64.b64encode(os.urandom(32)).decode()
        (self.dir / "zone").write_text(
            "$ORIGIN %s.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\n"
            "ns1 A 127.0.0.1\n@ A 127.0.0.1\n* A 127.0.0.1\n" % zone)
        config = self.dir / "knot.conf"
        config.write_text(
            "server:\n  rundir: \"%(d)s\"\n  listen: 127.0.0.1@%(port)d\n"
            "database:\n  storage: \"%(d)s\"\n"
            "key:\n  - id: %(key)s\n    algorithm: hmac-sha256\n    secret: %(secret)s\n"
            "acl:\n  - id: acme_update\n    key: %(key)s\n    action: update\n"
            "zone:\n  - domain: %(zone)s\n    file: \"%(d)s/zone\"\n    acl: acme_update\n"
            "    zonefile-sync: -1\n"
            % {"d": self.dir, "port": self.port, "key": self.key_name, "secret": self.secret,
               "zone": zone})
        self.proc = group.spawn("knotd", ["knotd", "-c", str(config)])
        wait_until(self._answers, timeout=20, message="knotd should answer for its zone")

    def _answers(self):
        if not self.proc.alive():
            raise AssertionError("knotd exited\n" + self.proc.describe())
        return self.txt("probe." + self.zone) is not None

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def txt(self, name):
        """The TXT values of `name` (a list), or None when the server does not answer."""
        p = subprocess.run(["kdig", "@127.0.0.1", "-p", str(self.port), "+short", "+time=1",
                            "+retry=0", name, "TXT"], capture_output=True, text=True, timeout=10)
        if p.returncode != 0 or "timed out" in p.stdout:
            return None
        return [line.strip('"') for line in p.stdout.split()]

    def hook_script(self, path):
        """A dns_hook that publishes with knsupdate, as an operator would write one."""
        Path(path).write_text(
            "#!/bin/sh\n# dns_hook add|remove NAME VALUE\nset -e\n"
            "case \"$1\" in add) op=\"add $2. 60 TXT \\\"$3\\\"\";; "
            "remove) op=\"del $2. 0 TXT \\\"$3\\\"\";; *) exit 2;; esac\n"
            "printf 'server 127.0.0.1 %d\\nzone %s.\\nkey hmac-sha256:%s %s\\n%%s\\nsend\\n' "
            "\"$op\" | knsupdate\n" % (self.port, self.zone, self.key_name, self.secret))
        Path(path).chmod(0o700)
        return str(path)
