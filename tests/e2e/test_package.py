"""The Debian package, installed on this machine: scripts/package on the already-built tree
(lintian clean), dpkg -i, the binary and the libraries it links, the units as systemd-analyze reads
them, the relay started as porthole-server.service starts it, then remove and purge.

Needs root, dpkg, lintian and setpriv, and a machine without porthole installed or its directories:
it skips otherwise. Whatever it adds (the package, the user and group porthole, /run/porthole) is
gone when it ends. CI containers have no systemd as PID 1, so the test runs the unit's ExecStart as
systemd would: as the user porthole with the unit's capability, directories, umask, descriptor
limit and a NOTIFY_SOCKET of its own that must get READY=1.
"""
import os
import pwd
import grp
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIN, REPO, free_port

BUILD_DIR = Path(BIN).resolve().parent
UNITS = ["/lib/systemd/system/porthole-server.service", "/lib/systemd/system/porthole@.service"]
STATE_DIRS = ["/etc/porthole", "/var/lib/porthole", "/var/log/porthole", "/run/porthole"]


def why_skip():
    if os.geteuid() != 0:
        return "installs a package: needs root"
    if os.environ.get("PORTHOLE_SANITIZED"):
        return "the package is made from a Release build"
    for tool in ("dpkg", "lintian", "setpriv", "cpack", "fakeroot"):
        if not shutil.which(tool):
            return "%s is not installed (scripts/install-deps installs it)" % tool
    cache = BUILD_DIR / "CMakeCache.txt"
    if not cache.exists() or "CMAKE_BUILD_TYPE:STRING=Release" not in cache.read_text():
        return "%s is not a Release build directory" % BUILD_DIR
    if "PORTHOLE_SELF_CONTAINED:BOOL=ON" in cache.read_text():
        return "%s links libstdc++ statically; the package is made from a build that does not" % (
            BUILD_DIR)
    if subprocess.run(["dpkg-query", "-W", "porthole"], capture_output=True).returncode == 0:
        return "porthole is installed on this machine; the test would replace it"
    for d in STATE_DIRS:
        if os.path.exists(d):
            return "%s exists; the test's purge would remove it" % d
    return None


pytestmark = pytest.mark.skipif(why_skip() is not None, reason=str(why_skip()))


def run(*args, check=True, timeout=120, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    if check:
        assert p.returncode == 0, "%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, args)), p.returncode, p.stdout, p.stderr)
    return p


def exists(name, db):
    return subprocess.run(["getent", db, name], capture_output=True).returncode == 0


def unit_settings(path):
    """The [Service] keys of a unit file (the last value of a key given more than once)."""
    settings, section = {}, None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


@pytest.fixture(scope="module")
def deb():
    """scripts/package on the build under test; the .deb it made."""
    p = run(REPO / "scripts" / "package", BUILD_DIR, timeout=300, cwd=REPO)
    path = REPO / p.stdout.strip().splitlines()[-1]
    assert path.exists(), p.stdout
    return path


@pytest.fixture(scope="module")
def installed(deb):
    user_before = exists("porthole", "passwd")
    group_before = exists("porthole", "group")
    p = run("dpkg", "-i", deb, check=False)
    try:
        assert p.returncode == 0, ("dpkg -i failed (are its Depends installed? "
                                   "scripts/install-deps installs them)\n" + p.stdout + p.stderr)
        yield deb
    finally:
        run("dpkg", "-P", "porthole", check=False)
        shutil.rmtree("/run/porthole", ignore_errors=True)
        if not user_before and exists("porthole", "passwd"):
            run("userdel", "porthole", check=False)
        if not group_before and exists("porthole", "group"):
            run("groupdel", "porthole", check=False)


def test_package_is_lintian_clean_and_depends_on_what_it_links(deb):
    # scripts/package ran lintian --fail-on error,warning; the fixture asserted its success.
    depends = run("dpkg-deb", "-f", deb, "Depends").stdout
    for lib in ("libssl3", "libstdc++6", "libsystemd0", "adduser"):
        assert re.search(r"\b%s\b" % re.escape(lib), depends), depends
    contents = run("dpkg-deb", "-c", deb).stdout.splitlines()
    paths = {line.split()[5] for line in contents}
    assert all(line.split()[1] == "root/root" for line in contents), contents
    for path in ["./usr/bin/porthole", "./etc/porthole/relay.toml",
                 "./lib/systemd/system/porthole-server.service",
                 "./lib/systemd/system/porthole@.service", "./etc/logrotate.d/porthole",
                 "./usr/share/man/man1/porthole.1.gz", "./usr/share/man/man1/porthole-server.1.gz",
                 "./usr/share/bash-completion/completions/porthole",
                 "./usr/share/zsh/vendor-completions/_porthole",
                 "./usr/share/doc/porthole/copyright", "./usr/share/doc/porthole/changelog.gz"]:
        assert path in paths, path


def test_installed_binary_links_debians_shared_libraries(installed):
    assert run("/usr/bin/porthole", "--version").stdout.strip() == "porthole %s" % (
        re.search(r"porthole \(([^)]+)\)", (REPO / "packaging/debian/changelog").read_text())[1])
    ldd = run("ldd", "/usr/bin/porthole").stdout
    for lib in ("libssl.so.3", "libcrypto.so.3", "libstdc++.so.6", "libsystemd.so.0"):
        assert lib in ldd, ldd
    assert "not found" not in ldd, ldd
    user = pwd.getpwnam("porthole")
    assert user.pw_dir == "/var/lib/porthole" and user.pw_uid < 1000
    assert grp.getgrnam("porthole").gr_gid == user.pw_gid
    st = os.stat("/var/lib/porthole/tokens")
    assert st.st_size == 0 and st.st_mode & 0o777 == 0o600 and st.st_uid == user.pw_uid
    assert run("man", "-w", "porthole-server").stdout.strip().endswith("porthole-server.1.gz")


def test_units_pass_systemd_analyze(installed):
    p = run("systemd-analyze", "verify", *UNITS, check=False)
    assert p.returncode == 0 and not p.stderr.strip(), p.stdout + p.stderr
    # The score of the sandbox: 0 is fully locked down, 10 not at all.
    p = run("systemd-analyze", "security", "--offline=yes", "--no-pager", UNITS[0], check=False)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout + p.stderr)
    assert score, p.stdout + p.stderr
    assert float(score[1]) < 3.0, p.stdout


def bind_notify_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    os.chmod(path, 0o666)
    s.settimeout(0.2)
    return s


def notifications(sock, until, timeout=10.0):
    """Every datagram up to and including the first with `until`, within `timeout` seconds."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            continue
        if until in got[-1].split("\n"):
            return got
    pytest.fail("no %s within %ss; got %r" % (until, timeout, got))


def as_the_unit(settings, argv, env):
    """argv started as systemd starts the unit's ExecStart: its user, ambient capability,
    directories, umask and descriptor limit."""
    caps = [c.strip().lower().removeprefix("cap_")
            for c in settings.get("AmbientCapabilities", "").split() if c]
    cap_arg = ",".join("+" + c for c in caps)
    prefix = ["setpriv", "--reuid=" + settings["User"], "--regid=" + settings["Group"],
              "--init-groups", "--no-new-privs"]
    if caps:
        prefix += ["--inh-caps=" + cap_arg, "--ambient-caps=" + cap_arg,
                   "--bounding-set=-all," + cap_arg]
    # A container without CAP_SYS_RESOURCE cannot raise the hard limit as systemd would.
    nofile = min(int(settings["LimitNOFILE"]), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    umask = int(settings["UMask"], 8)

    def limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        os.umask(umask)

    return subprocess.Popen(prefix + argv, env=env, preexec_fn=limits, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)


def made_directory(path, user):
    os.makedirs(path, mode=0o755, exist_ok=True)
    shutil.chown(path, user, user)
    return path


def test_relay_starts_as_the_unit_does_and_notifies_systemd(installed, tmp_path):
    settings = unit_settings(UNITS[0])
    assert settings["Type"] == "notify"
    argv = shlex.split(settings["ExecStart"])
    assert argv[:2] == ["/usr/bin/porthole", "server"]
    user = settings["User"]
    run_dir = made_directory("/run/" + settings["RuntimeDirectory"], user)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "RUNTIME_DIRECTORY": run_dir,
           "STATE_DIRECTORY": made_directory("/var/lib/" + settings["StateDirectory"], user),
           "LOGS_DIRECTORY": made_directory("/var/log/" + settings["LogsDirectory"], user)}

    # The installed relay.toml with free ports in place of 8080 and 7835, which another process on
    # this machine may hold; every other line as installed.
    config = argv[argv.index("--config") + 1]
    http_port, control_port = free_port(), free_port()
    text = Path(config).read_text()
    edited = re.sub(r'^http_addr = "127\.0\.0\.1:8080"$', 'http_addr = "127.0.0.1:%d"' % http_port,
                    text, flags=re.M)
    edited = re.sub(r'^control_addr = "127\.0\.0\.1:7835"$',
                    'control_addr = "127.0.0.1:%d"' % control_port, edited, flags=re.M)
    assert edited.count("\n") == text.count("\n") and edited != text
    test_config = Path(run_dir) / "relay.toml"
    test_config.write_text(edited)
    os.chmod(test_config, 0o644)
    argv[argv.index("--config") + 1] = str(test_config)

    manager = bind_notify_socket(Path(run_dir) / "notify")
    client_manager = bind_notify_socket(Path(run_dir) / "client-notify")
    relay = as_the_unit(settings, argv, dict(env, NOTIFY_SOCKET=str(Path(run_dir) / "notify")))
    client = None
    try:
        got = notifications(manager, "READY=1")
        assert "STATUS=serving http on 127.0.0.1:%d, clients on 127.0.0.1:%d" % (
            http_port, control_port) in "\n".join(got), got
        status = open("/proc/%d/status" % relay.pid).read()
        assert re.search(r"^Uid:\s+%d\b" % pwd.getpwnam(user).pw_uid, status, re.M)
        assert int(re.search(r"^CapAmb:\s+(\S+)", status, re.M)[1], 16) == 1 << 10  # bind_service

        # The unit's ExecReload line, as its user: the relay reloads and tells the manager.
        unit_user = {"User": user, "Group": user, "LimitNOFILE": "1024", "UMask": "0007"}
        reload = as_the_unit(unit_user, shlex.split(settings["ExecReload"]), env)
        assert reload.wait(20) == 0, reload.stdout.read()
        assert reload.stdout.read().startswith("reloaded (generation 2)")
        got = notifications(manager, "READY=1")
        assert "RELOADING=1" in "\n".join(got), got

        # The installed tokens file is empty: no client gets in until the operator adds a token.
        add = as_the_unit(unit_user, ["/usr/bin/porthole", "admin", "tokens", "add", "--label",
                                      "package test"], env)
        assert add.wait(20) == 0, add.stdout.read()
        token = add.stdout.read().splitlines()[0]
        assert len(token) >= 32, token
        assert "package test" in Path("/var/lib/porthole/tokens").read_text()

        # A client, as porthole@.service runs one, notifies once its tunnel is open.
        client = as_the_unit(
            unit_user,
            ["/usr/bin/porthole", "http", str(free_port()), "--server",
             "127.0.0.1:%d" % control_port, "--log-format", "text", "--inspect=false"],
            dict(env, NOTIFY_SOCKET=str(Path(run_dir) / "client-notify"), PORTHOLE_TOKEN=token))
        got = notifications(client_manager, "READY=1")
        assert "STATUS=1 tunnel(s) open through 127.0.0.1:%d" % control_port in "\n".join(got)
        client.send_signal(signal.SIGTERM)
        assert client.wait(10) == 0
        assert "STOPPING=1" in "\n".join(notifications(client_manager, "STOPPING=1"))

        relay.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in "\n".join(notifications(manager, "STOPPING=1"))
        assert relay.wait(15) == 0
    finally:
        for p in (client, relay):
            if p and p.poll() is None:
                p.kill()
                p.wait(5)
        manager.close()
        client_manager.close()
        out = relay.stdout.read()
        print(out)


def test_reinstalling_keeps_the_tokens_and_an_edited_config(installed):
    tokens = Path("/var/lib/porthole/tokens")
    tokens.write_text("verifier:%s\n" % ("ab" * 32))
    config = Path("/etc/porthole/relay.toml")
    config.write_text(config.read_text() + "# edited\n")
    run("dpkg", "-i", installed)  # postinst configure with the old version: the upgrade path
    assert tokens.read_text() == "verifier:%s\n" % ("ab" * 32)
    assert tokens.stat().st_mode & 0o777 == 0o600
    assert config.read_text().endswith("# edited\n")


def test_remove_keeps_the_config_and_purge_removes_it(installed):
    run("dpkg", "-r", "porthole")
    assert not os.path.exists("/usr/bin/porthole")
    assert os.path.exists("/etc/porthole/relay.toml")
    assert os.path.exists("/var/lib/porthole/tokens")
    run("dpkg", "-P", "porthole")
    for d in ("/etc/porthole", "/var/lib/porthole", "/var/log/porthole"):
        assert not os.path.exists(d), d
    assert exists("porthole", "passwd"), "purge keeps the user (files elsewhere may be its)"
