"""`porthole manpage DIR`: a roff page for porthole and each visible subcommand, made from the same
command tree as --help, that groff and man render without a warning."""
import os
import re
import shutil
import subprocess

import pytest

from helpers import BIN


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    d = tmp_path_factory.mktemp("man") / "man1"  # made by the command
    p = run(BIN, "manpage", d)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    return d


def visible_commands():
    """Command paths from --help, recursively: ["server"], ["config", "check"], ..."""
    found = []

    def walk(path):
        out = run(BIN, *path, "--help").stdout
        section = re.search(r"^Subcommands:\n((?:  .*\n?)*)", out, re.M)
        for line in (section[1].splitlines() if section else []):
            name = line.split()[0]
            found.append(path + [name])
            walk(path + [name])

    walk([])
    return found


def test_a_page_for_porthole_and_each_command(pages):
    expected = {"porthole.1"} | {"porthole-%s.1" % "-".join(c) for c in visible_commands()}
    assert {"porthole-server.1", "porthole-config-check.1", "porthole-manpage.1"} <= expected
    assert set(os.listdir(pages)) == expected
    assert "porthole-config-names.1" not in expected  # hidden: for shell completion only


@pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
def test_groff_renders_every_page_without_a_warning(pages):
    for page in sorted(os.listdir(pages)):
        p = run("groff", "-man", "-Tutf8", "-ww", "-z", pages / page)
        assert p.returncode == 0 and p.stderr == "", "%s:\n%s" % (page, p.stderr)


@pytest.mark.skipif(not shutil.which("man"), reason="man-db is not installed")
def test_man_shows_each_flag_of_the_command(pages):
    env = dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0", LANG="C.UTF-8")
    for command in (["server"], ["http"], ["config", "check"], []):
        page = pages / ("-".join(["porthole"] + command) + ".1")
        p = run("man", "--warnings", "-l", page, env=env)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        text = re.sub(r".\x08", "", p.stdout)
        flags = set(re.findall(r"^ {2}(?:-\w,)?(--[\w-]+)", run(BIN, *command, "--help").stdout,
                               re.M))
        assert flags, command
        for flag in flags:
            assert re.search(r"(^|\s|,)%s\b" % re.escape(flag), text), (command, flag)
    root = re.sub(r".\x08", "", run("man", "-l", pages / "porthole.1", env=env).stdout)
    assert "porthole - expose a local service through a relay you host yourself" in root
    assert "porthole server" in root and "porthole-server(1)" in root


@pytest.mark.skipif(not shutil.which("man"), reason="man-db is not installed")
def test_reference_pages_are_in_the_man_pages(pages):
    """`porthole help TOPIC` in full: the relay's keys where the relay is, porthole.toml's where
    porthole start is, the rest in porthole(1); its lines as printed."""
    env = dict(os.environ, MANWIDTH="120", LANG="C.UTF-8")

    def page(name):
        return re.sub(r".\x08", "", run("man", "-l", pages / name, env=env).stdout)

    server = page("porthole-server.1")
    assert "CONFIGURATION FILE" in server
    for line in run(BIN, "help", "server-config").stdout.splitlines():
        if line.startswith("  ") and line.strip():
            assert line.strip() in server, line
    assert "tokens_file" in server and "max_connections_per_ip" in server
    assert "CONFIGURATION FILE" in page("porthole-start.1")
    assert "inspect_addr" in page("porthole-start.1")
    root = page("porthole.1")
    for section in ("ROUTING", "INSPECTOR", "POLICIES"):
        assert re.search(r"^%s$" % section, root, re.M), section
