"""The files packaging/ installs, checked without installing them (test_package.py installs the
package, as root): the example relay.toml starts the real relay, and the units' command lines are
ones this binary accepts."""
import json
import re
import shlex
import signal
import subprocess
from pathlib import Path

from helpers import BIN, REPO

PACKAGING = REPO / "packaging"


def test_example_relay_toml_starts_a_relay_on_loopback(tmp_path):
    text = (PACKAGING / "relay.toml").read_text()
    settings = dict(re.findall(r'^(\w+) = "([^"]*)"$', text, re.M))
    assert settings["http_addr"].startswith("127.0.0.1:")
    assert settings["control_addr"].startswith("127.0.0.1:")
    assert settings["tokens_file"] == "/var/lib/porthole/tokens"
    # As installed but for the ports (another process may hold 8080 or 7835) and the tokens file
    # postinst makes empty.
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    edited = text.replace('"%s"' % settings["http_addr"], '"127.0.0.1:0"')
    edited = edited.replace('"%s"' % settings["control_addr"], '"127.0.0.1:0"')
    edited = edited.replace('"/var/lib/porthole/tokens"', '"%s"' % tokens)
    config = tmp_path / "relay.toml"
    config.write_text(edited)
    relay = subprocess.Popen([BIN, "server", "--config", config, "--json"], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = relay.stdout.readline()
        assert line, relay.stderr.read()
        event = json.loads(line)
        assert event["event"] == "listening" and event["http"].startswith("127.0.0.1:")
        assert event["domain"] == settings["domain"] and event["tls"] is False
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(15) == 0


def exec_start(unit):
    line = re.search(r"^ExecStart=(.*)$", (PACKAGING / unit).read_text(), re.M)[1]
    return shlex.split(line)


def test_unit_command_lines_are_accepted_by_this_binary(tmp_path):
    server = exec_start("porthole-server.service")
    assert server[:2] == ["/usr/bin/porthole", "server"]
    client = exec_start("porthole@.service")
    assert client[:2] == ["/usr/bin/porthole", "start"]
    # Every flag parses: each command stops at its config file, not at the command line (whose
    # errors point to --help).
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_key = 1\n")
    for argv, path in ((server, "/etc/porthole/relay.toml"), (client, "/etc/porthole/%i.toml")):
        args = [str(bad) if a == path else a for a in argv[1:]]
        assert str(bad) in args
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        assert p.returncode != 0 and "bad.toml:1" in p.stderr and "--help" not in p.stderr, (
            args, p.stderr)
