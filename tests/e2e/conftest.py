"""Fixtures for the porthole end-to-end tests.

The binary under test is $PORTHOLE_BIN (default <repo>/build/porthole).
Every process a test starts is owned by a Group and stopped by PID at teardown;
when a test fails, the stdout/stderr of the processes still open is attached
to the report.
"""
import asyncio
import os
import sys
import threading

import pytest
import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
import backends  # noqa: E402
import origin as origin_mod  # noqa: E402
from helpers import (  # noqa: E402,F401  (re-exported for convenience)
    BIN, Group, Relay, accepts, curl, free_port, free_port_range, vm_hwm_kib, wait_until)


def pytest_configure(config):
    if not os.access(BIN, os.X_OK):
        raise pytest.UsageError("porthole binary not found at %s (build it or set PORTHOLE_BIN)" % BIN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        text = helpers.describe_open_processes()
        if text:
            rep.sections.append(("porthole processes (%s)" % rep.when, text))


# -- process groups ------------------------------------------------------------

@pytest.fixture
def group(tmp_path):
    """Per-test process owner: group.spawn / group.relay / group.agent."""
    g = Group(tmp_path / "logs")
    yield g
    g.stop_all()


@pytest.fixture(scope="module")
def module_group(tmp_path_factory):
    g = Group(tmp_path_factory.mktemp("logs"))
    yield g
    g.stop_all()


# -- relay / agent factories ---------------------------------------------------

@pytest.fixture
def make_relay(group):
    """make_relay(*extra_args, http_port=, control_port=, tcp_ports=, wait=True) -> Relay"""
    return group.relay


@pytest.fixture
def relay(group):
    return group.relay()


@pytest.fixture
def make_agent(group):
    """make_agent(relay_or_server, "http"|"tcp", target, *extra, token=, env=, wait_ready=True) -> Proc

    The returned Proc has .ready (the ready event dict), .events, .wait_event(name, timeout).
    """
    return group.agent


# -- origin --------------------------------------------------------------------

@pytest.fixture
def origin():
    srv = origin_mod.start_origin()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def module_origin():
    srv = origin_mod.start_origin()
    yield srv
    srv.shutdown()
    srv.server_close()


# -- WebSocket echo origin ----------------------------------------------------------

@pytest.fixture
def ws_origin():
    """A WebSocket echo server on a free loopback port, in its own event-loop thread (it accepts
    permessage-deflate when the client offers it)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state = {}

    async def echo(ws, path=None):
        async for message in ws:
            await ws.send(message)

    async def main():
        server = await websockets.serve(echo, "127.0.0.1", 0, max_size=None)
        state["port"] = server.sockets[0].getsockname()[1]
        state["server"] = server
        started.set()
        await server.wait_closed()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert started.wait(10)
    yield state["port"]
    loop.call_soon_threadsafe(state["server"].close)
    thread.join(10)


@pytest.fixture
def backend():
    """backend(id, **state) -> an in-process backend, stopped at teardown."""
    started = []

    def make(backend_id, **kw):
        b = backends.start_backend(backend_id, **kw)
        started.append(b)
        return b

    yield make
    for b in started:
        backends.stop_backend(b)
