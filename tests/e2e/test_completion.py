"""Shell completion (`porthole completion bash|zsh`), `porthole help [TOPIC]` and `config names`.

bash: the generated script is sourced into a non-interactive bash, COMP_WORDS/COMP_CWORD are set
and _porthole is called; COMPREPLY is what bash would offer. zsh: a real interactive zsh runs on a
pseudo-terminal with compinit, a TAB is typed after the command line, and a compadd wrapper prints
every match the completion system adds.
"""
import fcntl
import os
import pty
import re
import select
import shlex
import shutil
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from helpers import BIN, REPO

SUBCOMMANDS = {"version", "help", "server", "proxy", "http", "tcp", "tls", "start", "config",
               "token", "completion", "manpage", "admin"}
TOPICS = ["config", "server-config", "admin", "inspector", "routing", "cache"]
LOG_LEVELS = {"trace", "debug", "info", "warn", "error", "off"}

# Options whose value is a file, per command, and the one whose value is a directory.
FILE_OPTIONS = [
    ("server", "--config"), ("server", "--tls-cert"), ("server", "--tls-key"),
    ("server", "--tokens-file"), ("server", "--control-cert"), ("server", "--control-key"),
    ("http", "--server-ca"), ("tcp", "--server-ca"), ("tls", "--server-ca"),
    ("start", "--server-ca"), ("start", "--config"), ("config check", "--config"),
    ("http", "--token-file"), ("tcp", "--token-file"), ("tls", "--token-file"),
    ("start", "--token-file"), ("server", "--admin-socket"), ("server", "--admin-token-file"),
    ("admin", "--socket"), ("admin", "--token-file"),
]

TUNNELS_TOML = """\
server = "127.0.0.1:7835"

[tunnels.web]
type = "http"
target = 3000

[tunnels.db]
type = "tcp"
target = "127.0.0.1:5432"

[tunnels.site]
type = "tls"
target = 8443
"""


def run(*args, timeout=10, env=None):
    try:
        return subprocess.run([BIN] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail("porthole %s did not exit within %ss (stdout=%r stderr=%r)"
                    % (" ".join(map(str, args)), timeout, e.stdout, e.stderr))


def help_flags(*command):
    """The long flags `porthole COMMAND --help` lists in its option column."""
    p = run(*command, "--help")
    assert p.returncode == 0, p.stderr
    return set(re.findall(r"^ {2}(?:-\w,)?(--[\w-]+)", p.stdout, re.M))


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    """A directory holding `porthole` (a link to the binary under test), to put first on PATH."""
    d = tmp_path_factory.mktemp("bin")
    (d / "porthole").symlink_to(os.path.abspath(BIN))
    return d


@pytest.fixture
def files(tmp_path):
    """A directory with a file and a subdirectory, for path completion."""
    d = tmp_path / "pick"
    d.mkdir()
    (d / "cert.pem").write_text("x")
    (d / "cadir").mkdir()
    return d


@pytest.fixture
def tunnels_file(tmp_path):
    path = tmp_path / "tunnels.toml"
    path.write_text(TUNNELS_TOML)
    return path


# ---------------------------------------------------------------------------------------------
# bash


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory):
    p = run("completion", "bash")
    assert p.returncode == 0, p.stderr
    path = tmp_path_factory.mktemp("bash") / "porthole.bash"
    path.write_text(p.stdout)
    return path


def bash_complete(script, bin_dir, *words, env=None, preload=None):
    """COMPREPLY for the command line `words`; the last word is the one being completed."""
    words = ["porthole"] + list(words)
    program = "\n".join([
        "source %s" % shlex.quote(preload) if preload else "",
        "source %s" % shlex.quote(str(script)),
        "COMP_WORDS=(%s)" % " ".join(shlex.quote(w) for w in words),
        "COMP_CWORD=%d" % (len(words) - 1),
        "COMP_LINE=%s" % shlex.quote(" ".join(words)),
        "COMP_POINT=${#COMP_LINE}",
        '_porthole porthole "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    full_env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ.get("PATH", "")))
    full_env.pop("XDG_CONFIG_HOME", None)
    full_env.update(env or {})
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20, env=full_env)
    assert p.returncode == 0 and not p.stderr, "bash failed: %r" % p.stderr
    return [line for line in p.stdout.split("\n") if line]


def test_bash_script_registers_the_function(bash_script):
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                        "source %s && complete -p porthole" % shlex.quote(str(bash_script))],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert "-F _porthole porthole" in p.stdout


def test_bash_subcommands(bash_script, bin_dir):
    assert set(bash_complete(bash_script, bin_dir, "")) == SUBCOMMANDS
    assert bash_complete(bash_script, bin_dir, "st") == ["start"]
    assert bash_complete(bash_script, bin_dir, "config", "") == ["check"]  # `names` is hidden
    # a root flag's value is not taken for a subcommand
    assert set(bash_complete(bash_script, bin_dir, "--log-level", "debug", "")) == SUBCOMMANDS


@pytest.mark.parametrize("command", ["", "server", "http", "tcp", "tls", "start", "config check",
                                     "token verifier", "completion", "help", "version"])
def test_bash_flags_are_those_of_help(bash_script, bin_dir, command):
    words = command.split()
    offered = set(bash_complete(bash_script, bin_dir, *words, "--"))
    assert offered == help_flags(*words), "porthole %s --" % command


def test_bash_flag_prefix(bash_script, bin_dir):
    assert set(bash_complete(bash_script, bin_dir, "http", "--se")) == {
        "--server", "--server-ca", "--server-fingerprint"}
    assert "--remote-port" in bash_complete(bash_script, bin_dir, "tcp", "--")
    assert "--remote-port" not in bash_complete(bash_script, bin_dir, "http", "--")


def test_bash_fixed_values(bash_script, bin_dir):
    assert set(bash_complete(bash_script, bin_dir, "--log-level", "")) == LOG_LEVELS
    assert bash_complete(bash_script, bin_dir, "--log-level", "w") == ["warn"]
    # --flag=value as one word, and as bash splits it at '=' (COMP_WORDBREAKS)
    assert bash_complete(bash_script, bin_dir, "--log-level=d") == ["--log-level=debug"]
    assert set(bash_complete(bash_script, bin_dir, "--log-level", "=")) == LOG_LEVELS
    assert bash_complete(bash_script, bin_dir, "--log-level", "=", "e") == ["error"]
    for command in ("http", "tcp", "tls", "start"):
        offered = bash_complete(bash_script, bin_dir, command, "--tls", "")
        assert set(offered) == {"auto", "on", "off"}
    assert set(bash_complete(bash_script, bin_dir, "server", "--control-tls", "")) == {
        "auto", "on", "off"}
    assert set(bash_complete(bash_script, bin_dir, "http", "--host-header", "")) == {
        "preserve", "rewrite"}
    assert set(bash_complete(bash_script, bin_dir, "completion", "")) == {"bash", "zsh"}


def test_bash_free_values_offer_nothing(bash_script, bin_dir):
    assert bash_complete(bash_script, bin_dir, "http", "--server", "") == []
    assert bash_complete(bash_script, bin_dir, "http", "") == []  # TARGET
    # after a flag's value, flags again
    assert "--json" in bash_complete(bash_script, bin_dir, "http", "--token", "t", "--j")


@pytest.mark.parametrize("command,option", FILE_OPTIONS)
def test_bash_file_options(bash_script, bin_dir, files, command, option):
    offered = bash_complete(bash_script, bin_dir, *command.split(), option, str(files) + "/")
    assert set(offered) == {str(files / "cert.pem"), str(files / "cadir")}


def test_bash_directory_option(bash_script, bin_dir, files):
    offered = bash_complete(bash_script, bin_dir, "server", "--tls-self-signed", str(files) + "/")
    assert offered == [str(files / "cadir")]


def test_bash_help_topics(bash_script, bin_dir):
    offered = bash_complete(bash_script, bin_dir, "help", "")
    assert set(TOPICS) <= set(offered) and SUBCOMMANDS <= set(offered)
    assert len(offered) == len(set(offered))
    assert bash_complete(bash_script, bin_dir, "help", "ro") == ["routing"]


def test_bash_tunnel_names(bash_script, bin_dir, tunnels_file, tmp_path):
    config = str(tunnels_file)
    assert set(bash_complete(bash_script, bin_dir, "start", "--config", config, "")) == {
        "db", "site", "web"}
    assert bash_complete(bash_script, bin_dir, "start", "--config", config, "w") == ["web"]
    assert bash_complete(bash_script, bin_dir, "start", "--config=" + config, "s") == ["site"]
    assert set(bash_complete(bash_script, bin_dir, "start", "--config", config, "db", "")) == {
        "db", "site", "web"}
    # the default file, under XDG_CONFIG_HOME
    xdg = tmp_path / "xdg"
    (xdg / "porthole").mkdir(parents=True)
    (xdg / "porthole" / "porthole.toml").write_text(TUNNELS_TOML)
    offered = bash_complete(bash_script, bin_dir, "start", "", env={"XDG_CONFIG_HOME": str(xdg)})
    assert set(offered) == {"db", "site", "web"}
    # no file: nothing, and no error on the terminal
    missing = str(tmp_path / "none.toml")
    assert bash_complete(bash_script, bin_dir, "start", "--config", missing, "") == []


@pytest.mark.skipif(not os.path.exists("/usr/share/bash-completion/bash_completion"),
                    reason="bash-completion is not installed")
def test_bash_next_to_bash_completion(bash_script, bin_dir):
    offered = bash_complete(bash_script, bin_dir, "http", "--tls", "",
                            preload="/usr/share/bash-completion/bash_completion")
    assert set(offered) == {"auto", "on", "off"}


# ---------------------------------------------------------------------------------------------
# zsh

needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")

ZSH_SETUP = r"""
PROMPT='' RPROMPT='' PS2=''
LISTMAX=100000
zstyle ':completion:*' list-prompt ''
bindkey '^I' complete-word
%(load)s
# Print every match the completion system adds, then leave.
compadd() {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return
    fi
    local -a __porthole_hits
    builtin compadd -A __porthole_hits "$@"
    local __porthole_hit
    for __porthole_hit in $__porthole_hits; do print -r -- "<<match:$__porthole_hit>>"; done
    builtin compadd "$@"
}
_porthole_test_done() { print -r -- '<<done>>'; exit 0 }
comppostfuncs=(_porthole_test_done)
"""


@pytest.fixture(scope="module")
def zsh_script(tmp_path_factory):
    p = run("completion", "zsh")
    assert p.returncode == 0, p.stderr
    d = tmp_path_factory.mktemp("zsh-functions")
    (d / "_porthole").write_text(p.stdout)
    return d / "_porthole"


def zsh_complete(script, bin_dir, home, line, how="fpath", cwd=None):
    """The matches zsh offers when TAB is pressed after `line`."""
    if how == "fpath":
        load = "fpath=(%s $fpath)\nautoload -Uz compinit && compinit -u -D" % shlex.quote(
            str(script.parent))
    else:
        load = "autoload -Uz compinit && compinit -u -D\nsource %s" % shlex.quote(str(script))
    setup = Path(home) / "setup.zsh"
    setup.write_text(ZSH_SETUP % {"load": load})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 100, 400, 0, 0))
    env = dict(os.environ, TERM="dumb", HOME=str(home), ZDOTDIR=str(home),
               PATH="%s:%s" % (bin_dir, os.environ.get("PATH", "")))
    env.pop("XDG_CONFIG_HOME", None)
    proc = subprocess.Popen(["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=cwd or home, start_new_session=True)
    os.close(slave)
    out = b""
    try:
        os.write(master, b"source %s\n" % shlex.quote(str(setup)).encode())
        os.write(master, line.encode() + b"\t")
        deadline = time.monotonic() + 20
        while b"<<done>>" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the shell exited
                break
            if not data:
                break
            out += data
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)
    text = out.decode("utf-8", "replace")
    assert "<<done>>" in text, "zsh did not complete %r:\n%s" % (line, text[-3000:])
    return set(re.findall(r"<<match:(.*?)>>", text))


@needs_zsh
def test_zsh_script_parses(zsh_script):
    p = subprocess.run(["zsh", "-n", str(zsh_script)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert zsh_script.read_text().startswith("#compdef porthole\n")


@needs_zsh
@pytest.mark.parametrize("how", ["fpath", "source"])
def test_zsh_subcommands(zsh_script, bin_dir, tmp_path, how):
    assert zsh_complete(zsh_script, bin_dir, tmp_path, "porthole ", how) == SUBCOMMANDS


@needs_zsh
@pytest.mark.parametrize("command", ["http", "server", "start"])
def test_zsh_flags_are_those_of_help(zsh_script, bin_dir, tmp_path, command):
    offered = zsh_complete(zsh_script, bin_dir, tmp_path, "porthole %s --" % command)
    assert offered == help_flags(command)


@needs_zsh
def test_zsh_values(zsh_script, bin_dir, tmp_path):
    assert zsh_complete(zsh_script, bin_dir, tmp_path, "porthole --log-level ") == LOG_LEVELS
    assert zsh_complete(zsh_script, bin_dir, tmp_path, "porthole config ") == {"check"}
    assert zsh_complete(zsh_script, bin_dir, tmp_path, "porthole http --tls=") == {
        "auto", "on", "off"}
    assert zsh_complete(zsh_script, bin_dir, tmp_path, "porthole completion ") == {"bash", "zsh"}
    assert set(TOPICS) <= zsh_complete(zsh_script, bin_dir, tmp_path, "porthole help ")


@needs_zsh
def test_zsh_paths(zsh_script, bin_dir, tmp_path, files):
    assert zsh_complete(zsh_script, bin_dir, tmp_path, "porthole server --tls-cert ",
                        cwd=files) == {"cert.pem", "cadir"}
    assert zsh_complete(zsh_script, bin_dir, tmp_path, "porthole server --tls-self-signed ",
                        cwd=files) == {"cadir"}


@needs_zsh
def test_zsh_tunnel_names(zsh_script, bin_dir, tmp_path, tunnels_file):
    line = "porthole start --config %s " % tunnels_file
    assert zsh_complete(zsh_script, bin_dir, tmp_path, line) == {"db", "site", "web"}


# ---------------------------------------------------------------------------------------------
# porthole completion, porthole config names


def test_completion_needs_a_known_shell():
    p = run("completion", "fish")
    assert p.returncode == 2
    assert "fish" in p.stderr
    assert run("completion").returncode == 2


def test_config_names(tunnels_file, tmp_path):
    p = run("config", "names", "--config", tunnels_file)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "db\nsite\nweb\n"
    assert "names" not in run("config", "--help").stdout
    p = run("config", "names", "--config", tmp_path / "none.toml")
    assert p.returncode == 2 and p.stdout == ""


# ---------------------------------------------------------------------------------------------
# porthole help


def test_help_prints_main_help_and_topics():
    p = run("help")
    assert p.returncode == 0, p.stderr
    main = run("--help").stdout.rstrip("\n")
    assert p.stdout.startswith(main), p.stdout
    rest = p.stdout[len(main):]
    for topic in TOPICS:
        assert re.search(r"^  %s\s" % re.escape(topic), rest, re.M), rest


# (`porthole help config` is the topic: a topic wins over the command of the same name)
@pytest.mark.parametrize("command", ["http", "tcp", "tls", "server", "start", "config check",
                                     "completion", "version", "help"])
def test_help_command_is_its_dash_help(command):
    words = command.split()
    p = run("help", *words)
    assert p.returncode == 0, p.stderr
    assert p.stdout == run(*words, "--help").stdout


def test_help_unknown_topic():
    p = run("help", "nonsense")
    assert p.returncode == 2
    assert p.stdout == ""
    assert "nonsense" in p.stderr
    for topic in TOPICS:
        assert topic in p.stderr, p.stderr
    p = run("help", "config", "nonsense")
    assert p.returncode == 2 and "check" in p.stderr, p.stderr


@pytest.mark.parametrize("topic", TOPICS)
def test_help_topics_fit_100_columns(topic):
    p = run("help", topic)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout) > 500
    wide = [line for line in p.stdout.splitlines() if len(line) > 100]
    assert not wide, wide


def documented(key, text):
    """`key = ...` appears in a topic page, as a line of its own or inside an inline table."""
    return re.search(r"(?<![\w.-])%s = " % re.escape(key), text) is not None


def test_help_config_names_every_client_key():
    source = (REPO / "src" / "config" / "client_config.cpp").read_text()
    keys = set(re.findall(r'key == "(\w+)"', source))
    keys |= {"server", "token", "inspect", "inspect_addr", "inspect_body_limit", "inspect_memory",
             "type", "target", "subdomain", "host_header", "remote_port", "routes", "path"}
    text = run("help", "config").stdout
    assert "[tunnels." in text
    missing = sorted(k for k in keys - {"tunnels", "policies"} if not documented(k, text))
    assert not missing, "not in `porthole help config`: %s" % missing
    assert "[[tunnels.NAME.policies]]" in text
    for phrase in ("PORTHOLE_SERVER", "PORTHOLE_TOKEN", "XDG_CONFIG_HOME",
                   "~/.config/porthole/porthole.toml", "127.0.0.1:4040", "64 KiB", "32 MiB"):
        assert phrase in text, phrase


def test_help_server_config_names_every_relay_key():
    source = (REPO / "src" / "config" / "server_config.cpp").read_text()
    keys = (set(re.findall(r'key == "(\w+)"', source)) | set(re.findall(r'\["(\w+)"\]', source)) |
            set(re.findall(r'\{"(\w+)", &server_config::', source)))
    assert {"domain", "tokens", "max_header_bytes", "max_unauthenticated", "cert", "key"} <= keys
    text = run("help", "server-config").stdout
    tables = {"tls_certificates", "sites", "tcp_sites"}
    missing = sorted(k for k in keys - tables - {"tunnel_policy", "policies", "acme"}
                     if not documented(k, text))
    assert not missing, "not in `porthole help server-config`: %s" % missing
    assert "[tunnel_policy]" in text and "[[tunnel_policy.policies]]" in text
    assert "[acme]" in text
    acme_source = (REPO / "src" / "config" / "acme_config.cpp").read_text()
    acme_keys = set(re.findall(r'key == "(\w+)"', acme_source))
    assert {"email", "ca", "challenges", "renew_after"} <= acme_keys
    missing = sorted(k for k in acme_keys if not documented(k, text))
    assert not missing, "[acme] keys not in `porthole help server-config`: %s" % missing
    for table in tables | {"sites.routes"}:
        assert "[[%s]]" % table in text, table
    cache_source = (REPO / "src" / "config" / "cache_config.cpp").read_text()
    cache_keys = set(re.findall(r'key == "(\w+)"', cache_source)) - {"disk"}
    assert {"memory", "max_object", "default_ttl", "stale_when_offline"} <= cache_keys
    for page in (text, run("help", "cache").stdout):
        missing = sorted(k for k in cache_keys if not documented(k, page))
        assert not missing, "cache keys not documented: %s" % missing


def test_help_inspector_and_routing():
    text = run("help", "inspector").stdout
    for phrase in ("127.0.0.1:4040", "/api/tunnels", "/api/requests/http", "/api/events",
                   "--inspect-addr", "--inspect-body-limit", "--inspect-memory"):
        assert phrase in text, phrase
    text = run("help", "routing").stdout
    for phrase in ("NAME.DOMAIN", "--tcp-ports", "SNI", "routes", "--route", "whole segments"):
        assert phrase in text, phrase
