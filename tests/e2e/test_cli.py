"""Command line: help, version, flag and config validation."""
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
    ("http", ["--server", "--token", "--subdomain", "--host-header", "--json"]),
    ("tcp", ["--server", "--token", "--remote-port", "--json"]),
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
