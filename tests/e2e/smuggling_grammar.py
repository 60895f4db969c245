"""Visitor requests built from a grammar of tricky HTTP/1.1 framing (request smuggling).

case(seed, index, host) is a pure function: the same seed, index and Host give the same bytes, so a
failing case is reproduced from the numbers a test prints. A case is one to four requests written
on one connection: valid ones (odd but legal casing, chunk extensions, trailers, absolute-form
targets naming the Host, bodies that look like a request) and evil ones (Connection naming framing
fields, CL/TE mixes, TE and CL lists, signs and huge numbers, obs-fold, bare CR/LF, chunk sizes that
overflow, absolute-form naming another authority, ...).

Each request knows what a strict reading makes of it: method, the target an origin must see (origin
form), the decoded body, and `expect`: "accept" (legal, the relay must forward it), "reject" (the
relay must answer it itself) or None (either, as long as what reaches the origin is this request).
Every target carries its case number (/c<case>/<i>, or /smuggled/c<case>/<i> for a request hidden in
a body), so whatever reaches the origin can be traced back to the case that sent it.

Two legal forms are left out because h11 refuses them, so an origin built on it could not tell
whether the relay framed them right: transfer codings before chunked (`gzip, chunked`; h11 knows
only chunked) and whitespace before a chunk extension (`5 ;a=b`, RFC 9112's BWS).
"""
import random
import re

ACCEPT = "accept"
REJECT = "reject"


class Request:
    """One request as the visitor writes it, and what a strict reading makes of it."""

    def __init__(self, label, method, target, headers, body=b"", decoded=None, version="1.1",
                 expect=ACCEPT, origin_target=None, closes=None, head=None):
        self.label = label  # the grammar production, for failure messages
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # header lines without their CRLF
        self.body = body  # body bytes as sent
        self.decoded = body if decoded is None else decoded
        self.expect = expect
        self.origin_target = origin_form(target) if origin_target is None else origin_target
        # The connection ends after it: no later request is answered. Anything not surely accepted
        # may end it.
        self.closes = (version != "1.1" or expect != ACCEPT) if closes is None else closes
        self._head = head  # a raw head, when the line endings themselves are the trick

    @property
    def head(self):
        if self._head is not None:
            return self._head
        return "%s %s HTTP/%s\r\n%s\r\n" % (
            self.method, self.target, self.version, "".join(h + "\r\n" for h in self.headers))

    @property
    def data(self):
        return self.head.encode("latin-1") + self.body

    def expected_at_origin(self):
        return (self.method, self.origin_target, self.decoded)

    def __repr__(self):
        return "Request(%s, %r)" % (self.label, self.data[:200])


class Case:
    def __init__(self, seed, index, requests):
        self.seed = seed
        self.index = index
        self.requests = requests

    @property
    def data(self):
        return b"".join(r.data for r in self.requests)

    def describe(self):
        lines = ["case %d of seed %s (PORTHOLE_SMUGGLE_SEED=%s PORTHOLE_SMUGGLE_ONLY=%d):" % (
            self.index, self.seed, self.seed, self.index)]
        for i, r in enumerate(self.requests):
            lines.append("  [%d] %s, expect %s: %r" % (i, r.label, r.expect, r.data))
        return "\n".join(lines)


def origin_form(target):
    """The origin-form of an absolute-form http(s) target; other targets as they are."""
    m = re.match(r"(?i)https?://[^/?#]*", target)
    if not m:
        return target
    rest = target[m.end():]
    if not rest.startswith("/"):
        rest = "/" + rest
    return rest


def authority_matches(target, host):
    """Whether an absolute-form target names `host` (case-insensitive; port 80 may be implied)."""
    m = re.match(r"(?i)http://([^/?#]*)", target)
    return bool(m) and with_port(m.group(1)) == with_port(host)


def with_port(authority):
    authority = authority.lower()
    return authority if re.search(r":\d*$", authority) else authority + ":80"


# ---------------------------------------------------------------------------
# pieces


def casing(rng, name):
    """`name` as some visitor might spell it: HTTP field names are case-insensitive."""
    pick = rng.random()
    if pick < 0.5:
        return name
    if pick < 0.65:
        return name.lower()
    if pick < 0.8:
        return name.upper()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def smuggled(case, i, host, rng):
    """A request hidden in a body: it reaches the origin only if someone misframes the body."""
    target = "/smuggled/c%d/%d" % (case, i)
    tail = rng.choice(["", "X-Ignore: x", "Content-Length: 0"])
    inner_host = rng.choice([host, "internal.example"])
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
        target, inner_host, tail + "\r\n" if tail else "")).encode()


def some_body(rng, case, i, host):
    return rng.choice([
        b"",
        b"hello",
        b"a=1&b=2",
        b"0\r\n\r\n",
        b"\r\n\r\n",
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))),
        smuggled(case, i, host, rng),
        b"x" * rng.randrange(1, 3000),
    ])


def chunk_size(rng, n):
    text = rng.choice(["%x", "%X"]) % n
    if rng.random() < 0.2:
        text = "0" * rng.randrange(1, 5) + text
    return text


def chunk_ext(rng):
    return rng.choice(["", "", "", ";a", ";a=b", ';name="quoted value"', ";a=1;b=2"])


def chunked(rng, data, trailers=None):
    """`data` in chunked framing: raw bytes as sent."""
    parts = []
    pos = 0
    while pos < len(data):
        n = rng.randrange(1, len(data) - pos + 1)
        parts.append(data[pos:pos + n])
        pos += n
    out = b"".join((chunk_size(rng, len(p)) + chunk_ext(rng) + "\r\n").encode() + p + b"\r\n"
                   for p in parts)
    last = rng.choice(["0", "0", "000"]) + chunk_ext(rng)
    if trailers is None:
        trailers = rng.choice([[], [], ["X-Trailer: done"], ["X-A: 1", "X-B: 2"]])
    return out + (last + "\r\n" + "".join(t + "\r\n" for t in trailers) + "\r\n").encode()


def te_chunked(rng):
    value = rng.choice(["chunked", "chunked", "Chunked", "CHUNKED", " chunked", "chunked ",
                        "\tchunked"])
    return casing(rng, "Transfer-Encoding") + ":" + rng.choice([" ", "", "  ", "\t"]) + value


def content_length(rng, n):
    return casing(rng, "Content-Length") + ":" + rng.choice([" ", "", "\t"]) + str(n)


def extra_headers(rng):
    pool = ["Accept: */*", "User-Agent: smuggle-test", "X-Request: 1", "Cookie: a=b",
            "Content_Length: 5", "Transfer_Encoding: chunked", "X-Content-Length: 7",
            "Expect: 100-continue", "Connection: keep-alive", "Connection: X-Hop",
            "Connection: te, trailer", "TE: trailers", "Keep-Alive: timeout=5",
            "Via: 1.1 upstream", "X-Forwarded-For: 203.0.113.9", "Accept-Encoding: gzip"]
    return rng.sample(pool, rng.randrange(0, 3))


def tag(case, i, rng):
    return "/c%d/%d%s" % (case, i, rng.choice(["", "", "?q=1", "/x/y", "?a=b&c=%20d", "/;p"]))


def host_line(rng, host):
    return casing(rng, "Host") + ":" + rng.choice([" ", "", "\t"]) + host


# ---------------------------------------------------------------------------
# productions: (case, i, host, rng) -> Request


def valid_get(case, i, host, rng):
    method = rng.choice(["GET", "GET", "DELETE", "OPTIONS", "HEAD"])
    headers = [host_line(rng, host)] + extra_headers(rng)
    rng.shuffle(headers)
    return Request("valid-" + method.lower(), method, tag(case, i, rng), headers)


def valid_content_length(case, i, host, rng):
    body = some_body(rng, case, i, host)
    headers = [host_line(rng, host), content_length(rng, len(body))] + extra_headers(rng)
    rng.shuffle(headers)
    return Request("valid-content-length", rng.choice(["POST", "PUT", "PATCH", "GET"]),
                   tag(case, i, rng), headers, body)


def valid_chunked(case, i, host, rng):
    data = some_body(rng, case, i, host)
    headers = [host_line(rng, host), te_chunked(rng)] + extra_headers(rng)
    rng.shuffle(headers)
    return Request("valid-chunked", rng.choice(["POST", "PUT"]), tag(case, i, rng), headers,
                   chunked(rng, data), data)


def valid_http10(case, i, host, rng):
    body = rng.choice([b"", b"hello", smuggled(case, i, host, rng)])
    with_host = rng.random() < 0.8
    headers = ([host_line(rng, host)] if with_host else []) + (
        [content_length(rng, len(body))] if body else [])
    if rng.random() < 0.3:
        headers.append("Connection: keep-alive")
    # Without Host there is no tunnel to route to: the relay answers 404 itself.
    return Request("valid-http10" if with_host else "http10-without-host",
                   "POST" if body else "GET", tag(case, i, rng), headers, body, version="1.0",
                   expect=ACCEPT if with_host else REJECT)


def valid_connection_close(case, i, host, rng):
    body = some_body(rng, case, i, host)
    headers = [host_line(rng, host), content_length(rng, len(body)),
               "Connection: " + rng.choice(["close", "Close", "keep-alive, close"])]
    return Request("valid-connection-close", "POST", tag(case, i, rng), headers, body,
                   closes=True)


def absolute_form(case, i, host, rng):
    """An absolute-form target: forwarded in origin-form when it names the Host, else refused."""
    name, _, port = host.partition(":")
    path = tag(case, i, rng)
    pick = rng.randrange(8)
    if pick == 0:
        authority, host_value, expect = host, host, ACCEPT
    elif pick == 1:
        authority, host_value, expect = host.upper(), host, ACCEPT
    elif pick == 2:
        authority, host_value, expect = name + ":80", name, ACCEPT
    elif pick == 3:
        authority, host_value, expect = name, name + ":80", ACCEPT
    elif pick == 4:
        authority, host_value, expect = "internal.example", host, REJECT
    elif pick == 5:
        authority, host_value, expect = "other." + name.partition(".")[2] + ":" + port, host, REJECT
    elif pick == 6:
        authority, host_value, expect = "user@" + host, host, REJECT
    else:
        authority, host_value, expect = name + ":1", host, REJECT
    target = "http://%s%s" % (authority, path)
    if rng.random() < 0.1:  # the scheme is case-insensitive; a fix may not know that
        target = "HTTP" + target[4:]
        expect = expect if expect == REJECT else None
    if rng.random() < 0.1:  # no path at all: origin-form "/"
        target = target[:target.index(authority) + len(authority)]
        expect = expect if expect == REJECT else None
    body = rng.choice([b"", b"hello"])
    headers = [host_line(rng, host_value)] + ([content_length(rng, len(body))] if body else [])
    return Request("absolute-form", "POST" if body else "GET", target, headers, body,
                   expect=expect)


def connection_names_framing(case, i, host, rng):
    """Connection naming Content-Length, Transfer-Encoding or Host: a proxy that drops what
    Connection names would strip the framing the body depends on."""
    named = rng.choice(["content-length", "transfer-encoding", "host"])
    listed = casing(rng, named)
    value = rng.choice([listed, "keep-alive, " + listed, listed + ", keep-alive",
                        "close, " + listed])
    inner = smuggled(case, i, host, rng)
    headers = [host_line(rng, host), "Connection: " + value]
    if named == "transfer-encoding":
        headers.append(te_chunked(rng))
        body = chunked(rng, inner)
    else:
        headers.append(content_length(rng, len(inner)))
        body = inner
    rng.shuffle(headers)
    return Request("connection-names-" + named, "POST", tag(case, i, rng), headers, body, inner,
                   expect=REJECT)


def cl_and_te(case, i, host, rng):
    inner = smuggled(case, i, host, rng)
    if rng.random() < 0.5:  # CL.TE: CL covers the hidden request, chunked ends before it
        body = b"0\r\n\r\n" + inner
        decoded = b""
    else:  # TE.CL: chunked covers the hidden request, CL ends before it
        body = chunked(rng, inner, trailers=[])
        decoded = inner
    headers = [host_line(rng, host), content_length(rng, len(body) if decoded == b"" else 4),
               te_chunked(rng)]
    rng.shuffle(headers)
    return Request("cl-and-te", "POST", tag(case, i, rng), headers, body, decoded, expect=REJECT)


def te_list(case, i, host, rng):
    inner = smuggled(case, i, host, rng)
    value = rng.choice(["chunked, chunked", "chunked,chunked", "Chunked, CHUNKED",
                        "chunked, identity", "identity", "gzip", "chunked, gzip", "xchunked",
                        "chunked;q=1", "chunked x", "chunk", '"chunked"', ""])
    headers = [host_line(rng, host), casing(rng, "Transfer-Encoding") + ": " + value]
    body = chunked(rng, inner, trailers=[])
    return Request("te-" + (value or "empty"), "POST", tag(case, i, rng), headers, body, inner,
                   expect=REJECT)


def te_twice(case, i, host, rng):
    inner = smuggled(case, i, host, rng)
    first, second = rng.choice([("chunked", "chunked"), ("chunked", "identity"),
                                ("identity", "chunked"), ("gzip", "chunked")])
    headers = [host_line(rng, host), "Transfer-Encoding: " + first,
               casing(rng, "Transfer-Encoding") + ": " + second]
    return Request("te-twice", "POST", tag(case, i, rng), headers,
                   chunked(rng, inner, trailers=[]), inner, expect=REJECT)


def te_on_http10(case, i, host, rng):
    inner = smuggled(case, i, host, rng)
    headers = [host_line(rng, host), te_chunked(rng)]
    return Request("te-on-http10", "POST", tag(case, i, rng), headers,
                   chunked(rng, inner, trailers=[]), inner, version="1.0", expect=REJECT)


def bad_content_length(case, i, host, rng):
    inner = smuggled(case, i, host, rng)
    n = len(inner)
    value, expect = rng.choice([
        ("+%d" % n, REJECT), ("-%d" % n, REJECT), ("%d, %d" % (n, n), REJECT),
        ("%d,%d" % (n, n), REJECT), ("0%d, %d" % (n, n), REJECT), ("%d, 0" % n, REJECT),
        ("%d %d" % (n, n), REJECT), ("0x%x" % n, REJECT), ("%d.0" % n, REJECT), ("", REJECT),
        ("%022d" % n, REJECT),  # 22 digits, a small value
        ("1" + "0" * 21, REJECT), ("99999999999999999999", REJECT), ("18446744073709551616", REJECT),
        ("00%d" % n, None),  # leading zeros are digits too
    ])
    headers = [host_line(rng, host), casing(rng, "Content-Length") + ": " + value]
    return Request("content-length-" + re.sub(r"\d", "9", value), "POST", tag(case, i, rng),
                   headers, inner, expect=expect)


def content_length_twice(case, i, host, rng):
    body = b"hello"
    # RFC 9110 8.6 lets a recipient take identical copies as one; the relay refuses any copy.
    second, expect = rng.choice([("6", REJECT), ("0", REJECT), ("5", REJECT), ("05", REJECT)])
    headers = [host_line(rng, host), "Content-Length: 5",
               casing(rng, "Content-Length") + ": " + second]
    return Request("content-length-twice-" + second, "POST", tag(case, i, rng), headers,
                   body + (b"!" if second == "6" else b""), body, expect=expect)


def obs_fold(case, i, host, rng):
    inner = smuggled(case, i, host, rng)
    line = rng.choice([
        "X-Folded: one\r\n two",
        "X-Folded: one\r\n\ttwo",
        "Transfer-Encoding:\r\n chunked",
        "Content-Length: %d\r\n %d" % (len(inner), len(inner)),
        "X-Folded: x\r\n Transfer-Encoding: chunked",
    ])
    headers = [host_line(rng, host), line, "Content-Length: %d" % len(inner)]
    if "Content-Length" in line:
        headers.pop()
    return Request("obs-fold", "POST", tag(case, i, rng), headers, inner, expect=REJECT)


def bare_line_ending(case, i, host, rng):
    target = tag(case, i, rng)
    head = rng.choice([
        "GET %s HTTP/1.1\nHost: %s\r\n\r\n",
        "GET %s HTTP/1.1\r\nHost: %s\nX-A: 1\r\n\r\n",
        "GET %s HTTP/1.1\r\nHost: %s\r\nX-A: 1\rX-B: 2\r\n\r\n",
        "GET %s HTTP/1.1\r\nHost: %s\r\n\n",
        "GET %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\n\r\n",
    ]) % (target, host)
    return Request("bare-cr-lf", "GET", target, [], expect=REJECT, head=head)


def bad_field_syntax(case, i, host, rng):
    inner = smuggled(case, i, host, rng)
    line = rng.choice([
        "Content-Length : %d", "Content-Length\t: %d", " Content-Length: %d",
        "Content Length: %d", "Content-Length: %d\x00", "Content-Length:: %d",
    ])
    if "%d" in line:
        line = line % len(inner)
    headers = [host_line(rng, host), line]
    return Request("bad-field-syntax", "POST", tag(case, i, rng), headers, inner, expect=REJECT)


def bad_host(case, i, host, rng):
    name, _, port = host.partition(":")
    headers, expect, label = rng.choice([
        ([], REJECT, "host-missing"),
        (["Host: " + host, "Host: " + host], REJECT, "host-twice"),
        (["Host: " + host, "Host: internal.example"], REJECT, "host-twice-different"),
        (["Host: " + host + "@internal.example"], REJECT, "host-userinfo"),
        (["Host: " + name + " .localhost"], REJECT, "host-space"),
        (["Host: nosuchtunnel.localhost:" + port], REJECT, "host-unknown-tunnel"),
        (["Host: internal.example"], REJECT, "host-outside-domain"),
        (["Host: " + host.upper()], ACCEPT, "host-upper-case"),
        (["Host: " + name], ACCEPT, "host-without-port"),
    ])
    return Request(label, "GET", tag(case, i, rng), headers, expect=expect)


def bad_chunks(case, i, host, rng):
    size, rest, label = rng.choice([
        ("ffffffffffffffff", b"abc", "chunk-size-2^64-1"),
        ("FFFFFFFFFFFFFFFF", b"abc", "chunk-size-2^64-1"),
        ("1ffffffffffffffff", b"abc", "chunk-size-over-2^64"),
        ("10000000000000000", b"abc", "chunk-size-2^64"),
        ("0000000000000000000000005", b"hello\r\n0\r\n\r\n", "chunk-size-25-digits"),
        ("0x5", b"hello\r\n0\r\n\r\n", "chunk-size-0x"),
        ("-5", b"hello\r\n0\r\n\r\n", "chunk-size-negative"),
        ("+5", b"hello\r\n0\r\n\r\n", "chunk-size-plus"),
        ("5 5", b"hello\r\n0\r\n\r\n", "chunk-size-two-numbers"),
        ("", b"hello\r\n0\r\n\r\n", "chunk-size-empty"),
        ("3", b"hello\r\n0\r\n\r\n", "chunk-longer-than-size"),
        ("5", b"hello0\r\n\r\n", "chunk-without-crlf"),
        ("5", b"hello\n0\r\n\r\n", "chunk-bare-lf"),
        ("5;a=\x01", b"hello\r\n0\r\n\r\n", "chunk-ext-control"),
    ])
    inner = smuggled(case, i, host, rng)
    body = (size + "\r\n").encode("latin-1") + rest + inner
    headers = [host_line(rng, host), "Transfer-Encoding: chunked"]
    return Request(label, "POST", tag(case, i, rng), headers, body, rest, expect=REJECT)


def bad_request_line(case, i, host, rng):
    target = tag(case, i, rng)
    line, expect, label = rng.choice([
        ("GET  %s HTTP/1.1", REJECT, "double-space"),
        ("GET %s  HTTP/1.1", REJECT, "double-space"),
        ("GET %s HTTP/1.1 ", REJECT, "trailing-space"),
        ("GET\t%s HTTP/1.1", REJECT, "tab"),
        ("GET %s http/1.1", REJECT, "lower-case-version"),
        ("GET %s HTTP/1.1x", REJECT, "version-suffix"),
        ("GET %s HTTP/11", REJECT, "version-no-dot"),
        ("G\x00T %s HTTP/1.1", REJECT, "nul-in-method"),
        ("GET %s\x00 HTTP/1.1", REJECT, "nul-in-target"),
        ("CONNECT %s HTTP/1.1", REJECT, "connect"),
        ("GET %s HTTP/1.2", None, "version-1.2"),
        ("GET %s HTTP/2.0", None, "version-2.0"),
        ("GET %s HTTP/0.9", None, "version-0.9"),
        ("\r\nGET %s HTTP/1.1", None, "leading-empty-line"),
        ("get %s HTTP/1.1", ACCEPT, "lower-case-method"),
    ])
    head = (line % target) + "\r\nHost: %s\r\n\r\n" % host
    method = line.split(" ")[0].strip()
    return Request("request-line-" + label, method, target, [], expect=expect, head=head)


VALID = [(valid_get, 4), (valid_content_length, 4), (valid_chunked, 4), (valid_http10, 1),
         (valid_connection_close, 1), (absolute_form, 2)]
EVIL = [(connection_names_framing, 4), (cl_and_te, 3), (te_list, 3), (te_twice, 1),
        (te_on_http10, 1), (bad_content_length, 3), (content_length_twice, 2), (obs_fold, 2),
        (bare_line_ending, 2), (bad_field_syntax, 2), (bad_host, 2), (bad_chunks, 3),
        (bad_request_line, 2), (absolute_form, 2)]


def pick(rng, productions):
    total = sum(w for _, w in productions)
    x = rng.uniform(0, total)
    for production, weight in productions:
        x -= weight
        if x <= 0:
            return production
    return productions[-1][0]


def case(seed, index, host):
    """Case `index` of `seed`, for a relay reached as `host` (NAME.localhost:PORT)."""
    rng = random.Random("%s:%d" % (seed, index))
    count = rng.choices([1, 2, 3, 4], weights=[40, 30, 20, 10])[0]
    requests = []
    for i in range(count):
        production = pick(rng, EVIL if rng.random() < 0.4 else VALID)
        requests.append(production(index, i, host, rng))
    return Case(seed, index, requests)


def cases(seed, count, host):
    return [case(seed, i, host) for i in range(count)]
