"""Command line: help, version, flag and config validation."""
import os
import re
import socket
import subprocess

import pytest

from helpers import BIN, accepts, curl, free_port, free_port_range, wait_until


def run(*args, timeout=5, env=None):
    """Run porthole with args; a process still running after `timeout` fails the test."""
    try:
        return subprocess.run([BIN] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail("porthole %s did not exit within %ss (stdout=%r stderr=%r)"
                    % (" ".join(map(str, args)), timeout, e.stdout, e.stderr))


def loopback_addrs():
    return ["--http-addr", "127.0.0.1:%d" % free_port(), "--control-addr", "127.0.0.1:%d" % free_port()]


def test_version():
    p = run("version")
    assert p.returncode == 0, p.stderr
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), p.stdout


@pytest.mark.parametrize("args", [["help"], ["--help"], ["-h"]])
def test_top_level_help(args):
    p = run(*args)
    assert p.returncode == 0, p.stderr
    for word in ("server", "http", "tcp"):
        assert word in p.stdout, p.stdout


@pytest.mark.parametrize("cmd,flags", [
    ("server", ["--domain", "--http-addr", "--control-addr", "--tcp-ports", "--token", "--tokens-file",
                "--config", "--json"]),
    ("http", ["--server", "--token", "--token-file", "--subdomain", "--host-header", "--json"]),
    ("tcp", ["--server", "--token", "--token-file", "--remote-port", "--json"]),
    ("tls", ["--server", "--token", "--token-file", "--subdomain", "--json"]),
    ("start", ["--server", "--token", "--token-file", "--config", "--all"]),
])
def test_subcommand_help(cmd, flags):
    p = run(cmd, "--help")
    assert p.returncode == 0, p.stderr
    for flag in flags:
        assert flag in p.stdout, "%s missing from `porthole %s --help`:\n%s" % (flag, cmd, p.stdout)


def test_unknown_flag():
    p = run("server", "--nope", *loopback_addrs())
    assert p.returncode != 0
    assert "--nope" in p.stderr, p.stderr


def test_unknown_subcommand():
    p = run("frobnicate")
    assert p.returncode != 0
    assert p.stderr.strip(), "no error message"


def test_missing_target():
    p = run("tcp", "--server", "127.0.0.1:%d" % free_port())
    assert p.returncode != 0
    assert p.stderr.strip()


@pytest.mark.parametrize("args,flag", [
    (["--tcp-ports", "5-1"], "tcp-ports"),
    (["--tcp-ports", "banana"], "tcp-ports"),
    (["--http-addr", "nonsense"], "http-addr"),
    (["--control-addr", "127.0.0.1:99999"], "control-addr"),
])
def test_bad_server_values(args, flag):
    defaults = {"--http-addr": "127.0.0.1:%d" % free_port(), "--control-addr": "127.0.0.1:%d" % free_port(),
                "--tcp-ports": "%d-%d" % free_port_range()}
    for i in range(0, len(args), 2):
        defaults[args[i]] = args[i + 1]
    argv = [x for kv in defaults.items() for x in kv]
    p = run("server", *argv)
    assert p.returncode != 0
    assert flag in p.stderr, p.stderr


@pytest.mark.parametrize("cmd,args", [
    ("http", ["not a target"]),
    ("tcp", ["70000"]),
    ("tcp", ["5000", "--remote-port", "notaport"]),
])
def test_bad_agent_values(cmd, args):
    p = run(cmd, *args, "--server", "127.0.0.1:%d" % free_port())
    assert p.returncode != 0
    assert p.stderr.strip()


def test_port_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        p = run("server", "--http-addr", "127.0.0.1:%d" % port, "--control-addr", "127.0.0.1:%d" % free_port(),
                "--tcp-ports", "%d-%d" % free_port_range())
        assert p.returncode != 0
        assert "in use" in p.stderr.lower(), p.stderr
        assert str(port) in p.stderr, p.stderr


def test_config_bad_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('domain = "localhost"\nbogus_key = 1\n')
    p = run("server", "--config", cfg)
    assert p.returncode != 0
    assert "bad.toml:2" in p.stderr, p.stderr


def test_config_syntax_error(tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text('domain = "localhost"\n\nhttp_addr = \n')
    p = run("server", "--config", cfg)
    assert p.returncode != 0
    assert "broken.toml:3" in p.stderr, p.stderr


def test_config_missing_file(tmp_path):
    p = run("server", "--config", tmp_path / "nope.toml")
    assert p.returncode != 0
    assert "nope.toml" in p.stderr, p.stderr


def test_config_file_works(tmp_path, group, origin):
    http_port, control_port = free_port(), free_port()
    low, high = free_port_range()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(
        'domain = "localhost"\n'
        'http_addr = "127.0.0.1:%d"\n'
        'control_addr = "127.0.0.1:%d"\n'
        'tcp_ports = "%d-%d"\n'
        'tokens = ["from-config"]\n' % (http_port, control_port, low, high))
    relay = group.spawn("relay", [BIN, "server", "--config", cfg])
    try:
        wait_until(lambda: accepts(control_port) and accepts(http_port) or not relay.alive(), 10)
    except TimeoutError:
        pytest.fail("relay from config not listening\n" + relay.describe())
    assert relay.alive(), relay.describe()

    agent = group.agent("127.0.0.1:%d" % control_port, "http", origin.port, token="from-config")
    assert agent.ready["url"].endswith(".localhost:%d" % http_port)
    r = curl(agent.ready["url"] + "/")
    assert r.status == 200 and r.body == b"hello from origin\n", r

    tcp = group.agent("127.0.0.1:%d" % control_port, "tcp", origin.port, token="from-config")
    port = int(tcp.ready["url"].rsplit(":", 1)[1])
    assert low <= port <= high

    denied = group.agent("127.0.0.1:%d" % control_port, "http", origin.port, token="nope", wait_ready=False)
    assert denied.wait_exit(5) != 0


def test_flags_override_config(tmp_path, group):
    http_port, control_port = free_port(), free_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text('http_addr = "127.0.0.1:%d"\ncontrol_addr = "127.0.0.1:%d"\n' % (free_port(), control_port))
    relay = group.spawn("relay", [BIN, "server", "--config", cfg, "--http-addr", "127.0.0.1:%d" % http_port,
                                  "--tcp-ports", "%d-%d" % free_port_range()])
    try:
        wait_until(lambda: accepts(control_port) and accepts(http_port) or not relay.alive(), 10)
    except TimeoutError:
        pytest.fail("relay not listening on the flag's http address\n" + relay.describe())
    assert relay.alive(), relay.describe()


def test_public_control_addr_needs_token():
    p = run("server", "--http-addr", "127.0.0.1:%d" % free_port(), "--control-addr", "0.0.0.0:%d" % free_port(),
            "--tcp-ports", "%d-%d" % free_port_range())
    assert p.returncode != 0
    assert "token" in p.stderr.lower(), p.stderr


def test_server_json_listening_event(group):
    http_port, control_port = free_port(), free_port()
    low, high = free_port_range()
    relay = group.spawn("relay", [BIN, "server", "--json", "--http-addr", "127.0.0.1:%d" % http_port,
                                  "--control-addr", "127.0.0.1:%d" % control_port, "--tcp-ports", "%d-%d" % (low, high)])
    ev = relay.wait_event("listening")
    assert ev["http"] == "127.0.0.1:%d" % http_port
    assert ev["control"] == "127.0.0.1:%d" % control_port
    assert ev["domain"] == "localhost"
    assert ev["tcp_ports"] == "%d-%d" % (low, high)
    assert accepts(http_port) and accepts(control_port)


# -- tokens kept out of the process list ------------------------------------------------------

ARGV_WARNING = "--token is visible to every user of this machine"


def warnings_in(stderr):
    return [line for line in stderr.splitlines() if line.startswith("porthole: warning: ")]


def token_file(tmp_path, text, mode=0o600, name="token"):
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_token_file_is_read_and_given_to_the_relay(group, origin, tmp_path):
    relay = group.relay("--token", "s3cret")
    path = token_file(tmp_path, "# the relay's token\n\n   s3cret  \r\nsecond line is ignored\n")
    agent = group.agent(relay, "http", origin.port, "--token-file", path)
    assert curl(agent.ready["url"] + "/").status == 200
    assert not warnings_in(agent.stderr_text())
    # on loopback a --token on the command line is no secret worth a warning either
    agent = group.agent(relay, "tcp", origin.port, token="s3cret")
    assert not warnings_in(agent.stderr_text()), agent.stderr_text()
    assert not warnings_in(relay.proc.stderr_text()), relay.proc.stderr_text()


def test_token_precedence(group, origin, tmp_path):
    relay = group.relay("--token", "right")
    right, wrong = token_file(tmp_path, "right\n", name="right"), token_file(tmp_path, "wrong\n", name="wrong")
    # --token wins over --token-file, which wins over PORTHOLE_TOKEN
    group.agent(relay, "http", origin.port, "--token-file", wrong, token="right")
    group.agent(relay, "http", origin.port, "--token-file", right, env={"PORTHOLE_TOKEN": "wrong"})
    denied = group.agent(relay, "http", origin.port, "--token-file", wrong, env={"PORTHOLE_TOKEN": "right"},
                         wait_ready=False)
    assert denied.wait_exit(5) == 1


def test_start_reads_token_file_from_flag_and_config(group, origin, tmp_path):
    relay = group.relay("--token", "right")
    right, wrong = token_file(tmp_path, "right\n", name="right"), token_file(tmp_path, "wrong\n", name="wrong")
    config = tmp_path / "porthole.toml"
    config.write_text('server = "%s"\ntoken_file = "%s"\n[tunnels.web]\ntype = "http"\ntarget = %d\n'
                      % (relay.server, right, origin.port))
    start = [BIN, "start", "--all", "--config", config, "--json", "--inspect-addr", "127.0.0.1:0"]
    group.spawn("start-config", start).wait_event("ready")
    # PORTHOLE_TOKEN wins over the file's token_file, --token-file over PORTHOLE_TOKEN
    env = {"PORTHOLE_TOKEN": "wrong"}
    assert group.spawn("start-env", start, env=env).wait_exit(5) == 1
    group.spawn("start-flag", start + ["--token-file", right], env=env).wait_event("ready")
    config.write_text('server = "%s"\ntoken_file = "%s"\ntoken = "right"\n' % (relay.server, wrong))
    p = run("start", "--all", "--config", config)
    assert p.returncode == 2 and "porthole.toml:" in p.stderr and "token_file" in p.stderr, p.stderr


@pytest.mark.parametrize("kind", ["missing", "empty", "comments only", "a directory"])
def test_bad_token_file_is_an_error_naming_it(tmp_path, kind):
    path = tmp_path / "token"
    if kind == "empty":
        token_file(tmp_path, "")
    elif kind == "comments only":
        token_file(tmp_path, "# nothing yet\n\n   \n")
    elif kind == "a directory":
        path.mkdir()
    p = run("http", "3000", "--server", "127.0.0.1:%d" % free_port(), "--token-file", path)
    assert p.returncode == 2, p
    (line,) = p.stderr.splitlines()
    assert line.startswith("porthole: error: %s: " % path) and "token file" in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_token_file_is_an_error_naming_it(tmp_path):
    path = token_file(tmp_path, "s3cret\n", mode=0)
    p = run("http", "3000", "--server", "127.0.0.1:%d" % free_port(), "--token-file", path)
    assert p.returncode == 2 and "%s: cannot read the token file" % path in p.stderr, p.stderr


def test_token_file_others_can_read_draws_a_warning(group, origin, tmp_path):
    relay = group.relay("--token", "s3cret")
    path = token_file(tmp_path, "s3cret\n", mode=0o644)
    agent = group.agent(relay, "http", origin.port, "--token-file", path)
    warnings = warnings_in(agent.stderr_text())
    assert len(warnings) == 1 and str(path) in warnings[0] and "chmod 600" in warnings[0], warnings


def test_token_on_the_command_line_off_loopback_draws_a_warning():
    # 0.0.0.0 is not a loopback name, so the warning is due; Linux delivers a connection to it over
    # lo, where nothing listens on this port: the client fails to reach a relay and exits.
    p = run("http", "3000", "--server", "0.0.0.0:%d" % free_port(), "--tls", "off", "--token", "t",
            "--inspect=false", timeout=15)
    assert p.returncode == 1, p
    warnings = warnings_in(p.stderr)
    assert len(warnings) == 1 and ARGV_WARNING in warnings[0], p.stderr
    assert "--token-file" in warnings[0] and "PORTHOLE_TOKEN" in warnings[0], warnings
    # the same token from the environment or a file is not in the process list
    p = run("http", "3000", "--server", "0.0.0.0:%d" % free_port(), "--tls", "off", "--inspect=false",
            timeout=15, env=dict(os.environ, PORTHOLE_TOKEN="t"))
    assert p.returncode == 1 and not warnings_in(p.stderr), p.stderr


def test_relay_token_on_the_command_line_off_loopback_draws_a_warning():
    # The port is held on loopback, so the relay warns, then cannot bind 0.0.0.0 and exits: it
    # never listens off loopback.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        p = run("server", "--control-addr", "0.0.0.0:%d" % port, "--token", "t",
                "--http-addr", "127.0.0.1:%d" % free_port(), "--tcp-ports", "%d-%d" % free_port_range())
    assert p.returncode == 1 and "in use" in p.stderr, p.stderr
    warnings = warnings_in(p.stderr)
    assert len(warnings) == 1 and ARGV_WARNING in warnings[0] and "--tokens-file" in warnings[0], p.stderr
