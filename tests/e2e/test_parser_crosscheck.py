"""porthole's request framing against an independent parser (h11), on the same bytes.

http_probe ($PORTHOLE_HTTP_PROBE, tests/tools/) runs exactly what the relay's HTTP edge runs on a
request and prints its verdict. Over every file of the fuzz corpora for requests and every case of
smuggling_grammar.py (each request of a pipeline in turn), the two must not disagree on anything
porthole lets through:

  * what porthole forwards, h11 reads as one complete request with the same method, target
    (origin-form), decoded body and length, and an absolute-form target names the Host;
  * a request porthole has started forwarding and still waits for, h11 also waits for;
  * what porthole writes toward the tunnel (the forwarded head and the body as framed) reads back
    in h11 as exactly that request, with no byte left over.

h11 accepting what porthole refuses is fine: porthole is the stricter of the two.
"""
import json
import os
import subprocess
from pathlib import Path

import h11
import pytest

import smuggling_grammar as grammar
from helpers import REPO

PROBE = os.environ.get("PORTHOLE_HTTP_PROBE") or str(REPO / "build" / "tests" / "tools" /
                                                       "http_probe")
CORPORA = [REPO / "tests" / "fuzz" / "corpus" / "http_request",
           REPO / "tests" / "fuzz" / "corpus" / "http_forward"]
SEED = os.environ.get("PORTHOLE_SMUGGLE_SEED", "21")
CASES = int(os.environ.get("PORTHOLE_SMUGGLE_CASES", "2000"))
HOST = "crosscheck.localhost:8080"
PIPELINE_ROUNDS = 8  # a case has at most four requests; corpus files may hold more
SHOWN = 25


class Reading:
    """What h11 makes of the first request in some bytes."""

    def __init__(self, kind, request=None, body=b"", consumed=0, error=None):
        self.kind = kind  # "accepted", "incomplete" or "rejected"
        self.request = request
        self.body = body
        self.consumed = consumed
        self.error = error

    @property
    def method(self):
        return self.request.method.decode("latin-1") if self.request else None

    @property
    def target(self):
        return self.request.target.decode("latin-1") if self.request else None

    @property
    def host(self):
        if not self.request:
            return None
        hosts = [v.decode("latin-1") for k, v in self.request.headers if k == b"host"]
        return hosts[0] if hosts else None

    def __repr__(self):
        if self.kind == "rejected":
            return "h11 rejects it (%s)" % self.error
        return "h11: %s %s %s, body %r, %d bytes" % (
            self.kind, self.method, self.target, self.body[:80], self.consumed)


def h11_reading(data):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return Reading("incomplete", request, body)
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return Reading("accepted", request, body,
                               len(data) - len(conn.trailing_data[0]))
            else:
                return Reading("rejected", error="unexpected %r" % event)
    except h11.ProtocolError as exc:
        return Reading("rejected", error=str(exc))


def probe(inputs, tmp_path, split=None):
    """http_probe's verdicts on `inputs` (bytes), in order; `split`: the relay reads that many
    bytes before the rest ("all": a verdict for every place a read could end)."""
    paths = []
    for i, data in enumerate(inputs):
        path = tmp_path / ("%d.http" % i)
        path.write_bytes(data)
        paths.append(str(path))
    options = ["--split", str(split)] if split is not None else []
    verdicts = []
    for start in range(0, len(paths), 500):  # keep the command line short
        out = subprocess.run([PROBE] + options + paths[start:start + 500], capture_output=True,
                             timeout=120, check=True).stdout
        verdicts += [json.loads(line) for line in out.splitlines()]
    assert split == "all" or len(verdicts) == len(inputs)
    return verdicts


def text(value):
    return value.encode("latin-1") if value is not None else None


def disagreement(verdict, data):
    """Why porthole's verdict on `data` is unsafe by h11's reading of it, as (kind, details), or
    None."""
    if not verdict["accepted"] and verdict["incomplete"] != "body":
        return None  # refused, or waiting for the rest of a head: nothing went to the tunnel
    h = h11_reading(data)
    method, target = text(verdict["method"]), text(verdict["forwarded_target"])
    body = bytes.fromhex(verdict["body_hex"])
    seen = "porthole %s %s %s, body %r, %d bytes; %r" % (
        "forwards" if verdict["accepted"] else "streams (waits for more body)", verdict["method"],
        verdict["forwarded_target"], body[:80], verdict["consumed"], h)
    if h.kind == "rejected":
        return "h11 rejects what porthole forwards", seen
    if h.request is None or (h.kind == "incomplete") != (verdict["incomplete"] == "body"):
        return "they frame it differently", seen
    if h.method.encode("latin-1") != method:
        return "the method differs", seen
    if grammar.origin_form(h.target).encode("latin-1") != target:
        return "the forwarded target is not the origin-form of the request's", seen
    if h.target != grammar.origin_form(h.target) and not (
            h.host and grammar.authority_matches(h.target, h.host)):
        return "an absolute-form target naming another authority is forwarded", seen
    if verdict["accepted"] and (h.body != body or h.consumed != verdict["consumed"]):
        return "they frame the body differently", seen
    if verdict["accepted"]:
        forwarded = text(verdict["forwarded_head"]) + bytes.fromhex(verdict["framed_body_hex"])
        again = h11_reading(forwarded)
        if again.kind != "accepted" or again.consumed != len(forwarded) or \
                again.method != verdict["method"] or \
                again.target != verdict["forwarded_target"] or again.body != body:
            return ("what porthole sends toward the tunnel is another request",
                    "%r reads as %r" % (forwarded, again))
    return None


def corpus_files():
    named = []
    for corpus in CORPORA:
        for path in sorted(corpus.iterdir()):
            named.append(("%s/%s" % (corpus.name, path.name), path.read_bytes()))
    return named


def inputs_to_check():
    named = corpus_files()
    for case in grammar.cases(SEED, CASES, HOST):
        named.append(("case %d of seed %s" % (case.index, SEED), case.data))
    return named


def require_probe():
    assert os.access(PROBE, os.X_OK), \
        "http_probe not found at %s (build target http_probe or set PORTHOLE_HTTP_PROBE)" % PROBE


def test_porthole_forwards_nothing_h11_reads_differently(tmp_path):
    require_probe()
    pending = [(name, 0, data) for name, data in inputs_to_check()]
    found = []
    checked = 0
    for _ in range(PIPELINE_ROUNDS):
        if not pending:
            break
        verdicts = probe([data for _, _, data in pending], tmp_path)
        following = []
        for (name, n, data), verdict in zip(pending, verdicts):
            checked += 1
            why = disagreement(verdict, data)
            if why:
                found.append((why[0], "%s, request %d: %r\n    %s" % (name, n, data[:400],
                                                                       why[1])))
            elif verdict["accepted"] and verdict["consumed"] < len(data):
                following.append((name, n + 1, data[verdict["consumed"]:]))
        pending = following
    kinds = {}
    for kind, _ in found:
        kinds[kind] = kinds.get(kind, 0) + 1
    assert not found, "%d of %d requests: porthole lets through what h11 reads otherwise:\n%s\n%s" % (
        len(found), checked,
        "\n".join("  %4d %s" % (n, kind) for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])),
        "\n".join(detail for _, detail in found[:SHOWN]))


def sent(verdict):
    """What the relay sends toward the tunnel for a verdict, or None."""
    if not verdict["accepted"] and verdict["incomplete"] != "body":
        return None
    return (verdict["accepted"], verdict["consumed"], verdict["forwarded_head"],
            verdict["framed_body_hex"])


def test_what_reaches_the_tunnel_does_not_depend_on_where_reads_end(tmp_path):
    """The relay reads a request in pieces as they arrive: every check must see all of them."""
    require_probe()
    named = corpus_files()
    whole = probe([data for _, data in named], tmp_path)
    by_input = {v["input"]: n for n, v in enumerate(whole)}
    found = []
    for verdict in probe([data for _, data in named], tmp_path, "all"):
        n = by_input[verdict["input"]]
        if sent(verdict) != sent(whole[n]):
            name, data = named[n]
            found.append("%s read as %d bytes, then the rest: %s (whole: %s)\n    %r" % (
                name, verdict["split"], sent(verdict) or verdict.get("reason") or "nothing sent",
                sent(whole[n]) or whole[n].get("reason") or "nothing sent", data[:300]))
    assert not found, "%d places a read could end change what reaches the tunnel:\n%s" % (
        len(found), "\n".join(found[:SHOWN]))


@pytest.mark.parametrize("data, kind", [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET", "accepted"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel", "incomplete"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "rejected"),
])
def test_h11_reading(data, kind):
    reading = h11_reading(data)
    assert reading.kind == kind, reading
    if kind == "accepted":
        assert reading.consumed == len(data) - 3
