"""Tunnel groups: several clients hold one name when they ask with the same token and group key,
and the relay balances visitors over them; one that dies (even by SIGKILL) stops getting
visitors while the others keep serving; another key, or no key, cannot take the name."""
import http.client
import threading
import time

import pytest

import backends
from helpers import wait_until

NAME = "shop"


def get(relay, path):
    conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "%s.localhost:%d" % (NAME, relay.http_port)})
        r = conn.getresponse()
        return r.status, r.getheader("X-Backend"), r.read()
    finally:
        conn.close()


@pytest.fixture
def services():
    started = [backends.start_backend("svc-%d" % i) for i in range(3)]
    yield started
    for b in started:
        backends.stop_backend(b)


def join(group, relay, svc, key="group-key-1", *extra):
    return group.agent(relay, "http", svc.port, "--subdomain", NAME, "--group", key, *extra)


def test_visitors_are_balanced_over_the_group(group, services):
    relay = group.relay()
    for s in services:
        join(group, relay, s)
    seen = {}
    for i in range(60):
        status, backend, _ = get(relay, "/spread/%d" % i)
        assert status == 200, (status, backend)
        seen[backend] = seen.get(backend, 0) + 1
    # Each new visitor connection goes to the next client in turn.
    assert seen == {"svc-0": 20, "svc-1": 20, "svc-2": 20}, seen


def test_a_member_killed_under_load_costs_no_request(group, services):
    relay = group.relay()
    agents = [join(group, relay, s) for s in services]
    failures, answers = [], []
    stop = threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, backend, _ = get(relay, "/load/%d" % i)
            except OSError as e:
                failures.append(repr(e))
                continue
            (answers if status == 200 else failures).append((status, backend))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(answers) >= 200, 20)
        agents[1].signal(9)
        agents[1].wait_exit(5)
        killed_at = len(answers)
        wait_until(lambda: len(answers) >= killed_at + 300, 30)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not failures, failures[:5]
    after = {b for _, b in answers[killed_at + 50:]}
    assert after == {"svc-0", "svc-2"}, after
    assert services[1].requests() > 0


def test_another_key_or_no_key_cannot_take_the_name(group, services):
    relay = group.relay()
    join(group, relay, services[0])
    intruder = group.agent(relay, "http", services[1].port, "--subdomain", NAME, "--group",
                           "another-key", wait_ready=False)
    refused = intruder.wait_event("error")
    assert "in use by another client or group" in refused["message"], refused
    loner = group.agent(relay, "http", services[2].port, "--subdomain", NAME, wait_ready=False)
    refused = loner.wait_event("error")
    assert "in use by another client" in refused["message"], refused
    # the group's own member still serves, alone
    assert {get(relay, "/own/%d" % i)[1] for i in range(6)} == {"svc-0"}


def test_the_key_never_reaches_the_relay_log(group, services):
    relay = group.relay()
    join(group, relay, services[0], "a-very-secret-group-key")
    assert get(relay, "/x")[0] == 200
    relay.stop()
    assert "a-very-secret-group-key" not in relay.proc.stderr_text() + relay.proc.stdout_text()


def test_a_group_needs_a_name_and_a_token_off_loopback(group, services):
    nameless = group.agent("127.0.0.1:1", "http", services[0].port, "--group", "k",
                           wait_ready=False)
    nameless.wait_exit(10)
    assert "--subdomain" in nameless.stderr_text(), nameless.describe()
    # 0.0.0.0 is not a loopback name, yet should the check fail, nothing leaves the machine
    public = group.agent("0.0.0.0:1", "http", services[0].port, "--subdomain", NAME,
                         "--group", "k", wait_ready=False)
    public.wait_exit(10)
    assert "without a token" in public.stderr_text(), public.describe()
