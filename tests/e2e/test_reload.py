"""Hot reload (README "Reloading the config"): SIGHUP reads the config again and applies all of
it or none. Sites, routes, policies, tokens and limits change without closing a client session,
a tunnel, a kept-alive visitor or a request under way; a broken file or a change only a restart
can make leaves the running config serving."""
import json
import subprocess
import re
import signal
import threading

from helpers import BIN, wait_until
from test_policies import HOST, KeptAlive, get, site, to

TOKEN_A = "reload-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
TOKEN_B = "reload-token-bbbbbbbbbbbbbbbbbbbbbbbbbbbb"


class Load:
    """Visitors sending requests back to back on kept-alive connections, counting every answer."""

    def __init__(self, port, host, path, threads=4):
        self.port, self.host, self.path = port, host, path
        self.statuses, self.errors = [], []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        visitor = None
        while not self.stopping.is_set():
            try:
                if visitor is None:
                    visitor = KeptAlive(self.port, host=self.host)
                status = visitor.get(self.path).status
                with self.lock:
                    self.statuses.append(status)
            except BaseException as e:  # pytest.fail raises a BaseException subclass
                with self.lock:
                    self.errors.append(repr(e))
                visitor = None

    def count(self):
        with self.lock:
            return len(self.statuses)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=10)


def write_config(path, backends, tokens_file, extra=""):
    routes = [{"path": "/app", "upstream": ["http://127.0.0.1:%d" % b.port for b in backends]}]
    path.write_text('tokens_file = "%s"\n%s' % (tokens_file, extra) + site([HOST], routes))


def reload_and_wait(relay, line, start):
    relay.proc.signal(signal.SIGHUP)
    wait_until(lambda: line in relay.proc.stderr_text()[start:],
               message="the relay logs %r after SIGHUP" % line)


def test_a_reload_under_load_changes_sites_and_tokens_without_dropping_anything(
        group, tmp_path, backend, origin):
    a, b = backend("a"), backend("b")
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN_A + "\n" + TOKEN_B + "\n")
    config = tmp_path / "relay.toml"
    write_config(config, [a], tokens)
    relay = group.relay("--config", str(config))
    kept = group.agent(relay, "http", str(origin.server_port), "--subdomain", "kept",
                       token=TOKEN_A)
    revoked = group.agent(relay, "http", str(origin.server_port), "--subdomain", "gone",
                          token=TOKEN_B)
    assert get(relay.http_port, "/", host="gone.localhost").status == 200
    visitor = KeptAlive(relay.http_port, host="kept.localhost")
    assert visitor.get("/").status == 200
    site_load = Load(relay.http_port, HOST, "/app/x")
    tunnel_load = Load(relay.http_port, "kept.localhost", "/")
    try:
        wait_until(lambda: site_load.count() > 50 and tunnel_load.count() > 50,
                   message="load is running")
        # A second member for the site's route, and B's token no longer accepted.
        write_config(config, [a, b], tokens)
        tokens.write_text(TOKEN_A + "\n")
        start = len(relay.proc.stderr_text())
        reload_and_wait(relay, "config reloaded", start)
        assert "tokens 0 added, 1 removed (1 sessions closed)" in relay.proc.stderr_text()[start:]
        before = site_load.count()
        wait_until(lambda: site_load.count() > before + 100 and b.requests() > 0,
                   message="the new member takes requests")
    finally:
        site_load.stop()
        tunnel_load.stop()
    assert site_load.errors == [] and tunnel_load.errors == [], (site_load.errors,
                                                                tunnel_load.errors)
    assert set(site_load.statuses) == {200} and set(tunnel_load.statuses) == {200}
    # The kept-alive visitor goes on on the same connection; A's client never reconnected.
    assert visitor.get("/").status == 200
    assert relay.proc.stderr_text().count("opened from") == 2, relay.proc.stderr_text()
    assert kept.alive()
    # B's session closed at once and its name is free, not leased.
    wait_until(lambda: get(relay.http_port, "/", host="gone.localhost").status == 404,
               message="the revoked token's tunnel is gone")
    wait_until(lambda: "refused" in revoked.stderr_text() or not revoked.alive(),
               message="the revoked client is refused when it reconnects")


def test_a_broken_file_is_refused_with_its_line_and_the_old_config_keeps_serving(
        group, tmp_path, backend):
    a = backend("a")
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN_A + "\n")
    config = tmp_path / "relay.toml"
    write_config(config, [a], tokens)
    relay = group.relay("--config", str(config), "--metrics-addr", "127.0.0.1:0", "--json")
    assert get(relay.http_port, "/app/1").status == 200
    good = config.read_text()
    config.write_text(good + "\n[[sites]]\nhosts = [\"other.test\"]\nbogus_key = 1\n")
    start = len(relay.proc.stderr_text())
    reload_and_wait(relay, "config reload refused", start)
    log = relay.proc.stderr_text()[start:]
    assert re.search(re.escape(str(config)) + r":\d+: .*bogus_key", log), log
    assert get(relay.http_port, "/app/2").status == 200
    # A change only a restart can make is refused as a whole, naming the key.
    config.write_text('lease_grace = 5\n' + good)
    start = len(relay.proc.stderr_text())
    reload_and_wait(relay, "config reload refused", start)
    assert "lease_grace changed: restart the relay" in relay.proc.stderr_text()[start:]
    assert get(relay.http_port, "/app/3").status == 200
    metrics = relay.proc.wait_event("listening")["metrics"]
    import urllib.request
    text = urllib.request.urlopen("http://%s/metrics" % metrics, timeout=5).read().decode()
    assert 'porthole_config_reloads_total{result="refused"} 2' in text, text


def test_a_reload_adds_and_removes_sites(group, tmp_path, backend):
    a, b = backend("a"), backend("b")
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN_A + "\n")
    config = tmp_path / "relay.toml"
    write_config(config, [a], tokens)
    relay = group.relay("--config", str(config))
    assert get(relay.http_port, "/app/1", host="new.test").status == 404
    config.write_text('tokens_file = "%s"\n' % tokens +
                      site(["new.test"], [to(b, path="/app")]))
    start = len(relay.proc.stderr_text())
    reload_and_wait(relay, "config reloaded", start)
    assert "sites 1 added, 1 removed, 0 kept" in relay.proc.stderr_text()[start:]
    answer = get(relay.http_port, "/app/1", host="new.test")
    assert answer.status == 200 and answer.backend == "b", answer
    assert get(relay.http_port, "/app/1").status == 404


def test_porthole_admin_reload_reports_the_outcome_and_a_refusal_exits_1(group, tmp_path, backend):
    a = backend("a")
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN_A + "\n")
    config = tmp_path / "relay.toml"
    write_config(config, [a], tokens)
    sock = tmp_path / "admin.sock"
    relay = group.relay("--config", str(config), "--admin-socket", str(sock))

    def admin_reload():
        return subprocess.run([BIN, "admin", "--socket", str(sock), "reload"], capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL)
    done = admin_reload()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reloaded (generation 2): sites 0 added"), done.stdout
    config.write_text("max_tunnels_per_client = -3\n" + config.read_text())
    refused = admin_reload()
    assert refused.returncode == 1, refused
    assert re.search(re.escape(str(config)) + r":\d+: 'max_tunnels_per_client' must be",
                     refused.stderr), refused.stderr
    assert get(relay.http_port, "/app/x").status == 200


def served_certificate(port, name):
    """The PEM certificate a TLS listener serves for SNI `name`."""
    import ssl
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))


def test_a_reload_reads_renewed_certificates_without_dropping_a_connection(group, tmp_path,
                                                                           origin):
    """A renewed certificate keeps its path (certbot's deploy hook runs systemctl reload): new
    handshakes get the new one, on the HTTPS port and the control port; connections made before
    carry on."""
    from helpers import free_port, make_cert
    import shutil
    import ssl
    import http.client
    web_dir, control_dir = tmp_path / "web", tmp_path / "control"
    web_dir.mkdir()
    control_dir.mkdir()
    old_web = make_cert(web_dir, "kept.localhost")
    old_control = make_cert(control_dir, "127.0.0.1")
    config = tmp_path / "relay.toml"
    https_port = free_port()
    config.write_text('https_addr = "127.0.0.1:%d"\ncontrol_tls = "on"\n'
                      'control_cert = "%s"\ncontrol_key = "%s"\n'
                      '[[tls_certificates]]\ncert = "%s"\nkey = "%s"\n'
                      % (https_port, old_control[0], old_control[1], old_web[0], old_web[1]))
    relay = group.relay("--config", str(config))
    group.agent(relay, "http", origin.server_port, "--subdomain", "kept", "--tls", "on", "--server-ca",
                str(old_control[0]))
    context = ssl.create_default_context(cafile=str(old_web[0]))
    context.check_hostname = False  # the certificate names kept.localhost, the test dials an IP
    before = http.client.HTTPSConnection("127.0.0.1", https_port, context=context, timeout=5)
    before.request("GET", "/", headers={"Host": "kept.localhost"})
    assert before.getresponse().read()
    first_web = served_certificate(https_port, "kept.localhost")
    first_control = served_certificate(relay.control_port, "127.0.0.1")
    assert first_web.strip() == old_web[0].read_text().strip()

    renewed = tmp_path / "renewed"
    renewed.mkdir()
    new_web, new_control = make_cert(renewed, "kept.localhost"), make_cert(renewed, "127.0.0.1")
    for src, dst in ((new_web, old_web), (new_control, old_control)):
        shutil.copy(src[0], dst[0])
        shutil.copy(src[1], dst[1])
    start = len(relay.proc.stderr_text())
    reload_and_wait(relay, "config reloaded", start)
    assert "certificates read again; control certificate now sha256:" in \
        relay.proc.stderr_text()[start:]
    assert served_certificate(https_port, "kept.localhost").strip() == \
        new_web[0].read_text().strip()
    assert served_certificate(relay.control_port, "127.0.0.1") != first_control
    # The connection made before the reload goes on with the certificate it began with.
    before.request("GET", "/", headers={"Host": "kept.localhost"})
    assert before.getresponse().status == 200
    # A broken key is refused, naming the file, and the renewed certificates keep serving.
    old_web[1].write_text("not a key\n")
    start = len(relay.proc.stderr_text())
    reload_and_wait(relay, "config reload refused", start)
    assert str(old_web[1]) in relay.proc.stderr_text()[start:]
    assert served_certificate(https_port, "kept.localhost").strip() == \
        new_web[0].read_text().strip()
