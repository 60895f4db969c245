"""The relay's HTTP edge in front of an origin it does not trust either: a response that would
change the visitor's framing is refused, absolute-form targets reach the origin in origin form,
and the relay's own error pages say which tunnel failed without naming where its service lives."""
import socket

import pytest

from helpers import RawOrigin, curl, split_url
from recording_app import RecordingApp

IO_TIMEOUT = 5.0


def raw_exchange(port, request):
    """Sends `request` to the relay's HTTP port; returns everything read until the relay closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data


def answering(response):
    """An origin that reads one request head and answers `response` as raw bytes, then closes."""
    def handler(conn):
        conn.settimeout(IO_TIMEOUT)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = conn.recv(65536)
            if not chunk:
                return
            got += chunk
        conn.sendall(response)
    return RawOrigin(handler)


# The relay frames a tunnel's response itself and passes its bytes on as they came; a response
# whose Connection names its framing field (or whose framing is ambiguous) would be framed one way
# by the relay and another by whatever reads it next (a CDN, a browser, a proxy), so it is a 502.
BAD_RESPONSES = [
    ("connection-names-content-length",
     b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello"),
    ("connection-names-transfer-encoding",
     b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n"),
    ("content-length-list", b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("chunked-twice",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("inspect", ["--inspect=false", "--inspect=true"])
@pytest.mark.parametrize("response", [pytest.param(r, id=name) for name, r in BAD_RESPONSES])
def test_a_response_that_would_change_framing_is_a_502(group, relay, response, inspect):
    origin = answering(response)
    try:
        agent = group.agent(relay, "http", origin.port, "--subdomain", "resp", inspect)
        host = "resp.localhost:%d" % relay.http_port
        data = raw_exchange(relay.http_port, b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        head = data.split(b"\r\n\r\n", 1)[0]
        assert head.startswith(b"HTTP/1.1 502 "), data
        assert b"\r\nServer: porthole\r\n" in head, data
        # with the inspector on, the client's own framer refuses it first and closes the stream
        assert b"'resp'" in data, data
        assert b"malformed response" in data or b"without a response" in data, data
        assert b"hello" not in data, "bytes of the refused response reached the visitor: %r" % data
        agent.stop()
    finally:
        origin.close()


def test_the_same_responses_framed_plainly_pass(group, relay):
    origin = answering(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello")
    try:
        agent = group.agent(relay, "http", origin.port, "--subdomain", "fine")
        r = curl(agent.ready["url"] + "/")
        assert r.status == 200 and r.body == b"hello", r
    finally:
        origin.close()


def test_absolute_form_reaches_the_origin_in_origin_form(group, relay):
    app = RecordingApp("app")
    try:
        agent = group.agent(relay, "http", app.port, "--subdomain", "abs")
        _, host, port = split_url(agent.ready["url"])
        authority = "%s:%d" % (host, port)
        data = raw_exchange(port, b"GET http://%s/x?y=1 HTTP/1.1\r\nHost: %s\r\nConnection: close"
                            b"\r\n\r\n" % (authority.upper().encode(), authority.encode()))
        assert data.startswith(b"HTTP/1.1 200 "), data
        assert [r[1] for r in app.seen()] == ["/x?y=1"], app.seen()
        # another authority than the Host is refused and never reaches the origin
        data = raw_exchange(port, b"GET http://internal.local/admin HTTP/1.1\r\nHost: %s\r\n\r\n"
                            % authority.encode())
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert [r[1] for r in app.seen()] == ["/x?y=1"], app.seen()
    finally:
        app.close()


def test_the_smuggling_request_never_reaches_the_origin(group, relay):
    """The request from the report: Connection names Content-Length and the body is a request."""
    app = RecordingApp("app")
    try:
        agent = group.agent(relay, "http", app.port, "--subdomain", "smuggle")
        _, host, port = split_url(agent.ready["url"])
        inner = b"GET /admin HTTP/1.1\r\nHost: internal.example\r\n\r\n"
        request = (b"POST / HTTP/1.1\r\nHost: %s:%d\r\nConnection: content-length\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (host.encode(), port, len(inner), inner))
        data = raw_exchange(port, request)
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert b"Connection must not name" in data, data
        assert app.seen() == [], "the origin received %r" % app.seen()
        # the tunnel itself still works
        r = curl(agent.ready["url"] + "/after")
        assert r.status == 200 and [x[1] for x in app.seen()] == ["/after"], (r, app.seen())
    finally:
        app.close()
