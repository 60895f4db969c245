"""Request smuggling through the relay's HTTP edge (security issue 21).

One relay and one client publish a strict origin (strict_origin.py: h11, a parser independent of
porthole's) as http://smuggle.localhost:PORT. Thousands of cases from smuggling_grammar.py are
written to the relay over raw sockets, each on a connection of its own, and the invariant is
checked on what the origin saw:

  * every request the visitor got an origin response for reached the origin exactly once, with the
    same method, target (origin-form) and decoded body, in order;
  * nothing else reached the origin: no request the visitor did not send (/smuggled/...), no
    request the relay answered itself (Server: porthole), none after it, and never bytes h11
    cannot parse;
  * requests the grammar marks evil are refused by the relay, valid ones are forwarded.

PORTHOLE_SMUGGLE_CASES (default 2000), PORTHOLE_SMUGGLE_SEED (default 21) and
PORTHOLE_SMUGGLE_ONLY=N (just case N) choose the cases; a failure prints the seed, the case
numbers and their exact bytes. The regression tests at the end replay the findings of the issue.
"""
import os
import re
import socket
import time

import pytest

import smuggling_grammar as grammar
from strict_origin import StrictOrigin

NAME = "smuggle"
SEED = os.environ.get("PORTHOLE_SMUGGLE_SEED", "21")
CASES = int(os.environ.get("PORTHOLE_SMUGGLE_CASES", "2000"))
ONLY = os.environ.get("PORTHOLE_SMUGGLE_ONLY")
EXCHANGE_TIMEOUT = 10.0 if os.environ.get("PORTHOLE_SANITIZED") else 5.0
SHOWN_FAILURES = 12

TAG = re.compile(r"(/smuggled)?/c(\d+)/(\d+)")


# ---------------------------------------------------------------------------
# environment


class Edge:
    pass


@pytest.fixture(scope="module")
def strict_origin():
    origin = StrictOrigin()
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def edge(module_group, strict_origin):
    e = Edge()
    e.relay = module_group.relay()
    e.agent = module_group.agent(e.relay, "http", strict_origin.port, "--subdomain", NAME)
    e.host = "%s.localhost:%d" % (NAME, e.relay.http_port)
    assert e.agent.ready["url"] == "http://" + e.host
    e.origin = strict_origin
    return e


# ---------------------------------------------------------------------------
# the visitor


def visit(edge, data):
    """Writes `data` on a new connection, half-closes it and reads until the relay closes.
    Returns (bytes received, whether the relay failed to finish within EXCHANGE_TIMEOUT)."""
    received = []
    deadline = time.monotonic() + EXCHANGE_TIMEOUT
    with socket.create_connection(("127.0.0.1", edge.relay.http_port),
                                  timeout=EXCHANGE_TIMEOUT) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # the relay sees where the visitor's bytes end
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before everything was read
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(received), True
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return b"".join(received), True
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return b"".join(received), False
            received.append(chunk)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # {lower-case name: value}
        self.body = body

    @property
    def from_origin(self):
        return self.headers.get("x-origin") == "strict"

    @property
    def from_relay(self):
        return self.headers.get("server") == "porthole" and not self.from_origin

    def __repr__(self):
        return "%d %s %r" % (self.status, "origin" if self.from_origin else
                             "relay" if self.from_relay else "unknown", self.body[:100])


def parse_responses(data, methods):
    """The responses in `data`, the n-th read as the answer to methods[n]; and the bytes left
    that are not a whole response."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            break
        status = int(m.group(1))
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            data = rest
            continue
        method = methods[len(responses)] if len(responses) < len(methods) else "GET"
        # The relay's own answers carry their text whatever the method.
        bodiless = status in (204, 304) or (method == "HEAD" and "x-origin" in headers)
        length = 0 if bodiless else int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        responses.append(Response(status, headers, rest[:length]))
        data = rest[length:]
    return responses, data


# ---------------------------------------------------------------------------
# the invariant


def case_of(record):
    """The case a record at the origin belongs to: by the tag in its target, else the case that
    was being sent when it arrived."""
    m = TAG.search(record.target or "")
    return int(m.group(2)) if m else record.current


def problems(case, received, timed_out, seen):
    """What is wrong with one case: a list of (request index, complaint), and the responses."""
    requests = case.requests
    responses, rest = parse_responses(received, [r.method for r in requests])
    answered = 0
    while answered < len(responses) and responses[answered].from_origin:
        answered += 1
    last = min(answered, len(requests) - 1)  # where a complaint not about one request points
    found = []
    if timed_out:
        found.append((last, "the relay did not finish the exchange within %.0f s" %
                      EXCHANGE_TIMEOUT))
    if rest:
        found.append((last, "bytes after the last whole response: %r" % rest[:300]))
    if answered < len(responses) and not responses[answered].from_relay:
        found.append((last, "a response from neither the origin nor the relay: %r" %
                      responses[answered]))
    if len(responses) > answered + 1:
        found.append((last, "responses after the relay's own: %r" % responses[answered + 1:]))
    if answered > len(requests):
        found.append((last, "%d origin responses to %d requests" % (answered, len(requests))))
    for k, r in enumerate(requests[:answered]):
        if r.expect == grammar.REJECT:
            found.append((k, "request %d (%s) was forwarded; the relay must refuse it" % (
                k, r.label)))
    if answered < len(requests):
        r = requests[answered]
        reached = answered == 0 or not requests[answered - 1].closes
        if r.expect == grammar.ACCEPT and reached:
            found.append((answered, "request %d (%s) is valid but was not forwarded (%s)" % (
                answered, r.label, responses[answered] if answered < len(responses)
                else "no response")))
    expected = [r.expected_at_origin() for r in requests[:answered]]
    parsed = [s for s in seen if s.garbage is None]
    got = [s.view() for s in parsed]
    if got != expected:
        k = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b),
                 min(len(got), len(expected)))
        found.append((min(k, len(requests) - 1),
                      "the origin saw %r, but the visitor got origin responses for %r" % (
                          parsed, expected)))
    for s in seen:
        if s.garbage is not None:
            found.append((last, "the origin could not parse what it got: %r" % s))
    return found, responses


def test_smuggling_invariant(edge, strict_origin):
    indices = [int(ONLY)] if ONLY else range(CASES)
    sent = []
    started = time.monotonic()
    earlier = strict_origin.count()  # records of other tests
    for i in indices:
        case = grammar.case(SEED, i, edge.host)
        strict_origin.current = i
        received, timed_out = visit(edge, case.data)
        sent.append((case, received, timed_out))
    strict_origin.current = None
    settled = strict_origin.settle()
    elapsed = time.monotonic() - started

    by_case = {}
    for record in strict_origin.snapshot()[earlier:]:
        by_case.setdefault(case_of(record), []).append(record)
    failures = []
    for case, received, timed_out in sent:
        found, responses = problems(case, received, timed_out, by_case.pop(case.index, []))
        if found:
            failures.append((case, found, responses))
    strays = [r for records in by_case.values() for r in records]

    report = []
    if failures:
        culprits = {}
        for case, found, _ in failures:
            label = case.requests[min(k for k, _ in found)].label
            culprits[label] = culprits.get(label, 0) + 1
        report.append("%d of %d cases of seed %s break the invariant (%.1f s); the first request "
                      "involved, by production: %s" % (
                          len(failures), len(sent), SEED, elapsed, ", ".join(
                              "%s %d" % kv for kv in sorted(culprits.items(),
                                                            key=lambda kv: -kv[1]))))
        for case, found, responses in failures[:SHOWN_FAILURES]:
            report.append(case.describe())
            report.extend("    - [%d] %s" % p for p in found)
            report.append("    responses: %r" % responses)
    if strays:
        report.append("the origin saw requests no case sent: %r" % strays[:20])
    if not settled:
        report.append("origin connections still open %.0f s after the last case" % 5.0)
    if not edge.relay.proc.alive():
        report.append("the relay exited: %s" % edge.relay.proc.describe())
    assert not report, "\n".join(report)


# ---------------------------------------------------------------------------
# the findings of issue 21, byte for byte


SMUGGLED_64 = "GET /admin HTTP/1.1\r\nHost: internal.example\r\nX-Pad: 00000000\r\n\r\n"
assert len(SMUGGLED_64) == 64


def send_one(edge, raw):
    """Sends `raw` (with {host} filled in); returns (responses, what reached the origin)."""
    before = edge.origin.count()
    edge.origin.current = "regression"
    received, timed_out = visit(edge, raw.format(host=edge.host).encode("latin-1"))
    edge.origin.current = None
    assert edge.origin.settle(), "origin connections stayed open"
    responses, _ = parse_responses(received, ["GET"])
    return responses, timed_out, edge.origin.snapshot()[before:]


def assert_refused(edge, raw, status=400):
    responses, timed_out, seen = send_one(edge, raw)
    problems = []
    if not responses or responses[0].status != status or not responses[0].from_relay:
        problems.append("expected %d from the relay, got %r%s" % (
            status, responses, " (timed out)" if timed_out else ""))
    if seen:
        problems.append("the origin saw %r" % seen)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("raw", [
    pytest.param("POST / HTTP/1.1\r\nHost: {host}\r\nConnection: content-length\r\n"
                 "Content-Length: 64\r\n\r\n" + SMUGGLED_64, id="content-length"),
    pytest.param("POST / HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive, Content-Length\r\n"
                 "Content-Length: 64\r\n\r\n" + SMUGGLED_64, id="listed-content-length"),
    pytest.param("POST / HTTP/1.1\r\nHost: {host}\r\nConnection: transfer-encoding\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n40\r\n" + SMUGGLED_64 + "\r\n0\r\n\r\n",
                 id="transfer-encoding"),
    pytest.param("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: host\r\n\r\n", id="host"),
])
def test_connection_naming_framing_fields_refused(edge, raw):
    assert_refused(edge, raw)


@pytest.mark.parametrize("target, host, seen_target", [
    pytest.param("http://{host}/abs?x=1", "{host}", "/abs?x=1", id="same-authority"),
    pytest.param("http://SMUGGLE.LOCALHOST:{port}/abs", "{host}", "/abs", id="upper-case"),
    pytest.param("http://smuggle.localhost:80/abs", "smuggle.localhost", "/abs",
                 id="default-port-in-target"),
    pytest.param("http://smuggle.localhost/abs", "smuggle.localhost:80", "/abs",
                 id="default-port-in-host"),
])
def test_absolute_form_naming_the_host_forwarded_in_origin_form(edge, target, host, seen_target):
    port = str(edge.relay.http_port)
    raw = "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.replace("{port}", port), host)
    responses, timed_out, seen = send_one(edge, raw)
    assert responses and responses[0].from_origin, (responses, timed_out)
    assert [(s.method, s.target, s.complete) for s in seen] == [("GET", seen_target, True)], seen


@pytest.mark.parametrize("raw", [
    pytest.param("GET http://internal.example/admin HTTP/1.1\r\nHost: {host}\r\n\r\n",
                 id="other-host"),
    pytest.param("GET http://smuggle.localhost:1/admin HTTP/1.1\r\nHost: {host}\r\n\r\n",
                 id="other-port"),
])
def test_absolute_form_naming_another_authority_refused(edge, raw):
    assert_refused(edge, raw)


def test_transfer_encoding_chunked_twice_refused(edge):
    assert_refused(edge, "POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked, chunked"
                   "\r\n\r\n40\r\n" + SMUGGLED_64 + "\r\n0\r\n\r\n")


def test_content_length_list_refused(edge):
    assert_refused(edge, "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3, 3\r\n\r\nabc")


@pytest.mark.parametrize("value", ["0000000000000000000003", "1000000000000000000000"],
                         ids=["small-value", "huge-value"])
def test_content_length_of_22_digits_refused(edge, value):
    assert len(value) == 22
    assert_refused(edge, "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: " + value +
                   "\r\n\r\nabc")


def test_chunk_size_overflow_refused(edge):
    assert_refused(edge, "POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "ffffffffffffffff\r\n" + SMUGGLED_64 + "\r\n0\r\n\r\n")
