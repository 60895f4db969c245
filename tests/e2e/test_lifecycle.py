"""Reconnects, authentication, start-up failures and signals."""
import re
import signal
import subprocess
import time

from helpers import BIN, curl, free_port, wait_until


def get_ok(url):
    r = curl(url + "/", timeout=5)
    return r.status == 200 and r.body == b"hello from origin\n"


def test_relay_restart_agent_reconnects_same_url(make_relay, make_agent, origin):
    relay = make_relay()
    agent = make_agent(relay, "http", origin.port)
    url = agent.ready["url"]
    assert get_ok(url)

    mark = agent.event_index()
    relay.stop()
    rec = agent.wait_event("reconnecting", timeout=10, start=mark)
    assert isinstance(rec.get("attempt"), int) and rec["attempt"] >= 1, rec
    assert isinstance(rec.get("delay_ms"), int) and rec["delay_ms"] >= 0, rec
    assert agent.alive()

    mark = agent.event_index()
    relay.start()  # same http/control/tcp ports
    ready = agent.wait_event("ready", timeout=15, start=mark)
    assert ready["url"] == url
    wait_until(lambda: get_ok(url), timeout=15, step=0.1,
               message="GET through %s did not work again after the relay restarted" % url)


def test_tcp_agent_reconnects_same_url(make_relay, make_agent, origin):
    relay = make_relay()
    agent = make_agent(relay, "tcp", origin.port)
    url = agent.ready["url"]
    mark = agent.event_index()
    relay.stop()
    agent.wait_event("reconnecting", timeout=10, start=mark)
    mark = agent.event_index()
    relay.start()
    ready = agent.wait_event("ready", timeout=15, start=mark)
    assert ready["url"] == url


def mentions_auth(text):
    return re.search(r"token|auth", text, re.IGNORECASE) is not None


def test_wrong_token_rejected(make_relay, make_agent):
    relay = make_relay("--token", "secret")
    agent = make_agent(relay, "http", free_port(), token="wrong", wait_ready=False)
    rc = agent.wait_exit(5)
    assert rc != 0
    assert not any(ev.get("event") == "ready" for ev in agent.events), agent.events
    errors = " ".join(ev.get("message", "") for ev in agent.events if ev.get("event") == "error")
    assert mentions_auth(agent.stderr_text()) or mentions_auth(errors), agent.describe()


def test_missing_token_rejected(make_relay, make_agent):
    relay = make_relay("--token", "secret")
    agent = make_agent(relay, "http", free_port(), wait_ready=False)
    rc = agent.wait_exit(5)
    assert rc != 0
    assert mentions_auth(agent.stderr_text() + agent.stdout_text()), agent.describe()


def test_right_token_works(make_relay, make_agent, origin):
    relay = make_relay("--token", "secret", "--token", "other")
    agent = make_agent(relay, "http", origin.port, token="secret")
    assert get_ok(agent.ready["url"])
    agent2 = make_agent(relay, "http", origin.port, token="other")
    assert get_ok(agent2.ready["url"])


def test_token_from_env(make_relay, make_agent, origin):
    relay = make_relay("--token", "secret")
    agent = make_agent(relay, "http", origin.port, env={"PORTHOLE_TOKEN": "secret"})
    assert get_ok(agent.ready["url"])


def test_server_from_env(make_relay, make_agent, origin):
    relay = make_relay()
    agent = make_agent(None, "http", origin.port, env={"PORTHOLE_SERVER": relay.server})
    assert get_ok(agent.ready["url"])


def test_tokens_file(make_relay, make_agent, origin, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("alpha\nbeta\n")
    relay = make_relay("--tokens-file", tokens)
    agent = make_agent(relay, "http", origin.port, token="beta")
    assert get_ok(agent.ready["url"])


def test_a_tokens_file_of_verifiers_lets_clients_in_but_not_its_readers(make_relay, make_agent,
                                                                         origin, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("# the client's token\ngamma-token\n")
    secret.chmod(0o600)
    p = subprocess.run([BIN, "token", "verifier", "--token-file", str(secret)], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert re.fullmatch(r"verifier:[0-9a-f]{64}", line), line
    same = subprocess.run([BIN, "token", "verifier"], input="gamma-token\n", capture_output=True,
                          text=True, timeout=10)
    assert same.stdout.strip() == line, same
    assert "gamma-token" not in line
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(line + "\n")
    relay = make_relay("--tokens-file", tokens)
    agent = make_agent(relay, "http", origin.port, "--token-file", secret)
    assert get_ok(agent.ready["url"])
    # Whoever reads the relay's file holds the verifier, not the token: used as a token, it fails.
    thief = make_agent(relay, "http", origin.port, token=line.split(":", 1)[1], wait_ready=False)
    assert thief.wait_exit(10) != 0
    assert "did not accept this token" in thief.stderr_text(), thief.describe()


def test_relay_unreachable_at_start(make_agent):
    start = time.monotonic()
    agent = make_agent("127.0.0.1:%d" % free_port(), "http", free_port(), wait_ready=False)
    rc = agent.wait_exit(10)
    assert rc != 0
    assert time.monotonic() - start < 10
    err_lines = [l for l in agent.stderr_text().splitlines() if l.startswith("porthole: error:")]
    assert len(err_lines) == 1, agent.describe()
    # stdout is read by a thread of the test's: wait for the event rather than race it
    assert agent.wait_event("error", timeout=5).get("message"), agent.describe()


def test_sigterm_relay_exits_zero(make_relay, make_agent, origin):
    relay = make_relay()
    make_agent(relay, "http", origin.port)
    relay.proc.signal(signal.SIGTERM)
    assert relay.proc.wait_exit(5) == 0, relay.proc.describe()


def test_sigint_relay_exits_zero(make_relay):
    relay = make_relay()
    relay.proc.signal(signal.SIGINT)
    assert relay.proc.wait_exit(5) == 0, relay.proc.describe()


def test_sigint_agent_exits_zero(make_relay, make_agent, origin):
    relay = make_relay()
    agent = make_agent(relay, "http", origin.port)
    agent.signal(signal.SIGINT)
    assert agent.wait_exit(5) == 0, agent.describe()
    # the relay notices and stops routing the name
    url = agent.ready["url"]
    wait_until(lambda: curl(url + "/", timeout=5).status == 404, timeout=5,
               message="tunnel still routed after the agent exited")


def test_sigterm_agent_exits_zero(make_relay, make_agent, origin):
    relay = make_relay()
    agent = make_agent(relay, "tcp", origin.port)
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(5) == 0, agent.describe()
