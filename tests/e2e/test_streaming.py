"""Streaming through an HTTP tunnel: WebSocket upgrades full-duplex, server-sent events unbuffered."""
import asyncio
import socket
import threading
import time

import pytest
import websockets

from helpers import split_url

MESSAGES = 10_000


def test_websocket_echo_10000_messages_both_ways(group, relay, ws_origin):
    agent = group.agent(relay, "http", ws_origin)
    host, port = split_url(agent.ready["url"])[1:]

    async def run():
        # Connect to the relay's address but name the tunnel in Host, as a browser would.
        uri = "ws://%s:%d/echo" % (host, port)
        sock = socket.create_connection(("127.0.0.1", port))
        async with websockets.connect(uri, sock=sock, max_size=None) as ws:
            async def sender():
                for i in range(MESSAGES):
                    await ws.send("message-%d" % i if i % 2 else b"binary-%d" % i)

            async def receiver():
                for i in range(MESSAGES):
                    got = await asyncio.wait_for(ws.recv(), 20)
                    assert got == ("message-%d" % i if i % 2 else b"binary-%d" % i)

            await asyncio.gather(sender(), receiver())
            # A quiet connection stays open; a last round trip proves it.
            await asyncio.sleep(1)
            await ws.send("still there?")
            assert await asyncio.wait_for(ws.recv(), 5) == "still there?"

    asyncio.run(run())


def test_server_sent_events_arrive_one_by_one(group, relay, origin):
    agent = group.agent(relay, "http", origin.port)
    host, port = split_url(agent.ready["url"])[1:]
    events, gap = 5, 0.3
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /sse?n=%d&gap=%.1f HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n"
                  % (events, gap, host.encode(), port))
        start = time.monotonic()
        arrivals, data = [], b""
        while len(arrivals) < events:
            chunk = s.recv(65536)
            assert chunk, "stream closed after %d events" % len(arrivals)
            data += chunk
            while b"data: event-%d\n" % len(arrivals) in data:
                arrivals.append(time.monotonic() - start)
    # Each event must arrive when the app writes it, not when the response ends.
    assert arrivals[0] < gap * 2, arrivals
    spread = arrivals[-1] - arrivals[0]
    assert spread >= gap * (events - 1) * 0.8, arrivals


def test_idle_timeout_closes_keepalive_but_not_websockets(group, origin, ws_origin):
    relay = group.relay("--idle-timeout", "2")
    http_agent = group.agent(relay, "http", origin.port)
    ws_agent = group.agent(relay, "http", ws_origin)
    host = split_url(http_agent.ready["url"])[1]
    with socket.create_connection(("127.0.0.1", relay.http_port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), relay.http_port))
        response = b""
        while not response.endswith(b"hello from origin\n"):
            chunk = s.recv(4096)
            assert chunk, response
            response += chunk
        assert response.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(4096) == b""  # the relay closes the idle keep-alive connection
        assert 1.0 < time.monotonic() - started < 6.0

    ws_host, ws_port = split_url(ws_agent.ready["url"])[1:]

    async def quiet_websocket():
        sock = socket.create_connection(("127.0.0.1", ws_port))
        async with websockets.connect("ws://%s:%d/" % (ws_host, ws_port), sock=sock,
                                      ping_interval=None) as ws:
            await asyncio.sleep(4)  # twice the idle timeout, not a byte either way
            await ws.send("still open")
            assert await asyncio.wait_for(ws.recv(), 5) == "still open"

    asyncio.run(quiet_websocket())
