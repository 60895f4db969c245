"""The client side of porthole's wire protocol, version 2 (docs/protocol.md), in plain Python.

Tests use it to behave as the real client never would: stall a handshake, flood a session, replay
a data connection, forge log lines. Stdlib only; every read has a deadline.
"""
import hashlib
import hmac
import os
import select
import socket
import struct
import time

PROTOCOL_VERSION = 2
HEADER_SIZE = 4
MAX_FRAME_BODY = 65536
MAX_HANDSHAKE_FRAME_BODY = 1024

HELLO = 1
CHALLENGE = 2
AUTH = 3
WELCOME = 4
ERROR = 5
OPEN_TUNNEL = 6
TUNNEL_OPENED = 7
TUNNEL_REFUSED = 8
POOL_WANT = 9
PING = 10
PONG = 11
GOAWAY = 12
DATA_HELLO = 20
STREAM_START = 21
STREAM_READY = 22
STREAM_FAILED = 23
DATA_CHALLENGE = 24
DATA_AUTH = 25

# Payload fields of each frame type, in wire order.
FIELDS = {
    HELLO: (("min_version", "u16"), ("max_version", "u16"), ("client_id", "id16"),
            ("agent", "str")),
    CHALLENGE: (("version", "u16"), ("nonce", "key32")),
    AUTH: (("proof", "key32"),),
    WELCOME: (("session_id", "id16"), ("heartbeat_ms", "u32"), ("pool_size", "u16"),
              ("open_data_key", "key32")),
    ERROR: (("code", "u16"), ("message", "str")),
    OPEN_TUNNEL: (("request_id", "u32"), ("kind", "u8"), ("name", "str"), ("port", "u16"),
                  ("target", "str"), ("host_header", "str")),
    TUNNEL_OPENED: (("request_id", "u32"), ("tunnel_id", "u32"), ("url", "str")),
    TUNNEL_REFUSED: (("request_id", "u32"), ("code", "u16"), ("message", "str")),
    POOL_WANT: (("count", "u16"),),
    PING: (("opaque", "u64"),),
    PONG: (("opaque", "u64"),),
    GOAWAY: (("reason", "str"),),
    DATA_HELLO: (("session_id", "id16"),),
    STREAM_START: (("tunnel_id", "u32"), ("visitor", "str")),
    STREAM_READY: (),
    STREAM_FAILED: (("message", "str"),),
    DATA_CHALLENGE: (("nonce", "key32"),),
    DATA_AUTH: (("proof", "key32"),),
}

NAMES = {type_: name for name, type_ in (
    ("HELLO", HELLO), ("CHALLENGE", CHALLENGE), ("AUTH", AUTH), ("WELCOME", WELCOME),
    ("ERROR", ERROR), ("OPEN_TUNNEL", OPEN_TUNNEL), ("TUNNEL_OPENED", TUNNEL_OPENED),
    ("TUNNEL_REFUSED", TUNNEL_REFUSED), ("POOL_WANT", POOL_WANT), ("PING", PING), ("PONG", PONG),
    ("GOAWAY", GOAWAY), ("DATA_HELLO", DATA_HELLO), ("STREAM_START", STREAM_START),
    ("STREAM_READY", STREAM_READY), ("STREAM_FAILED", STREAM_FAILED),
    ("DATA_CHALLENGE", DATA_CHALLENGE), ("DATA_AUTH", DATA_AUTH))}

# Error codes of ERROR and TUNNEL_REFUSED.
UNSUPPORTED_VERSION = 1
UNAUTHORIZED = 2
BAD_NAME = 3
NAME_TAKEN = 4
PORT_UNAVAILABLE = 5
LIMIT = 6
PROTOCOL = 7
SHUTTING_DOWN = 8

# OPEN_TUNNEL kinds.
KIND_HTTP = 1
KIND_TCP = 2
KIND_TLS = 3

_INTS = {"u8": ">B", "u16": ">H", "u32": ">I", "u64": ">Q"}
_FIXED = {"id16": 16, "key32": 32}


class ProtocolError(Exception):
    pass


class Closed(Exception):
    """The peer closed the connection (EOF or reset) while a frame was expected."""


# ---------------------------------------------------------------------------
# frames: pure encode / decode


def header(length):
    """A frame header announcing a body (type byte + payload) of `length` bytes."""
    return struct.pack(">I", length)


def frame(type_, payload=b""):
    """Whole frame from a type and an already encoded payload."""
    return header(len(payload) + 1) + bytes([type_]) + payload


def _as_bytes(value):
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def encode(type_, **fields):
    """Whole frame of `type_` with its payload fields by name; strings may be str or bytes."""
    spec = FIELDS[type_]
    unknown = set(fields) - {name for name, _ in spec}
    if unknown:
        raise TypeError("%s has no fields %s" % (NAMES[type_], sorted(unknown)))
    out = bytearray()
    for name, kind in spec:
        value = fields[name]
        if kind in _INTS:
            out += struct.pack(_INTS[kind], value)
        elif kind in _FIXED:
            value = bytes(value)
            if len(value) != _FIXED[kind]:
                raise ValueError("%s must be %d bytes" % (name, _FIXED[kind]))
            out += value
        else:
            value = _as_bytes(value)
            out += struct.pack(">H", len(value)) + value
    return frame(type_, bytes(out))


class Frame:
    """A decoded frame: .type, .name and one attribute per payload field."""

    def __init__(self, type_, **fields):
        self.type = type_
        self.name = NAMES.get(type_, "type %d" % type_)
        self.fields = fields
        self.__dict__.update(fields)

    def __repr__(self):
        return "%s(%s)" % (self.name, ", ".join("%s=%r" % kv for kv in self.fields.items()))


def decode_body(body):
    """Body (type + payload) -> Frame; raises ProtocolError on anything missing or left over."""
    if not body:
        raise ProtocolError("empty frame")
    type_ = body[0]
    if type_ not in FIELDS:
        raise ProtocolError("unknown frame type %d" % type_)
    pos, fields = 1, {}

    def take(n):
        nonlocal pos
        if pos + n > len(body):
            raise ProtocolError("%s is truncated" % NAMES[type_])
        chunk = body[pos:pos + n]
        pos += n
        return chunk

    for name, kind in FIELDS[type_]:
        if kind in _INTS:
            fmt = _INTS[kind]
            fields[name] = struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
        elif kind in _FIXED:
            fields[name] = take(_FIXED[kind])
        else:
            n = struct.unpack(">H", take(2))[0]
            fields[name] = take(n).decode("utf-8", "replace")
    if pos != len(body):
        raise ProtocolError("%s has trailing bytes" % NAMES[type_])
    return Frame(type_, **fields)


def decode(data):
    """One whole frame (header included) -> Frame."""
    (length,) = struct.unpack(">I", data[:HEADER_SIZE])
    if len(data) != HEADER_SIZE + length:
        raise ProtocolError("frame announces %d bytes, has %d" % (length, len(data) - HEADER_SIZE))
    return decode_body(data[HEADER_SIZE:])


def decode_all(data):
    """Whole frames back to back (e.g. what a connection sent) -> [Frame]."""
    frames = []
    while data:
        (length,) = struct.unpack(">I", data[:HEADER_SIZE])
        frames.append(decode(data[:HEADER_SIZE + length]))
        data = data[HEADER_SIZE + length:]
    return frames


# ---------------------------------------------------------------------------
# authentication (docs/protocol.md, "Authentication")


def token_key(token):
    """What a client holds of a token: its SHA-256. No token: 32 zero bytes."""
    return hashlib.sha256(_as_bytes(token)).digest() if token is not None else bytes(32)


def verifier(token):
    """What a relay holds of a token: SHA-256 of its key."""
    return hashlib.sha256(token_key(token)).digest()


def session_proof(token, nonce, client_id):
    """key XOR HMAC(verifier, label || nonce || client_id)."""
    mask = hmac.new(verifier(token), b"porthole-auth-v2" + nonce + client_id,
                    hashlib.sha256).digest()
    return bytes(k ^ m for k, m in zip(token_key(token), mask))


def derived_data_key(token, session_nonce, client_id):
    return hmac.new(token_key(token), b"porthole-data-key-v2" + session_nonce + client_id,
                    hashlib.sha256).digest()


def data_proof(data_key, session_id, conn_nonce):
    return hmac.new(data_key, b"porthole-data-v2" + session_id + conn_nonce,
                    hashlib.sha256).digest()


# ---------------------------------------------------------------------------
# connections


def open_socket(host, port, source="127.0.0.1", timeout=5.0, rcvbuf=None, maxseg=None):
    """A TCP connection from `source` (any loopback address) to host:port. `rcvbuf` and `maxseg`
    shrink the receive buffer and the segment size the peer may send: with both small, the
    peer's kernel can buffer little for a reader that does not read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if maxseg is not None:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, maxseg)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.bind((source, 0))
        s.settimeout(timeout)
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    return s


def closed_by_peer(sock, timeout):
    """True when the peer closes `sock` (EOF or reset) within `timeout`; bytes before the close are
    discarded. False when it is still open at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (BlockingIOError, socket.timeout):
            continue


def abort(sock):
    """Close with a reset (SO_LINGER 0): the peer sees the connection die, no goodbye."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Connection:
    """A framed connection to the relay's control port. Remembers every byte it sent (`sent`), so
    a test can replay a connection exactly."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.sent = bytearray()

    @classmethod
    def connect(cls, host, port, source="127.0.0.1", timeout=5.0, rcvbuf=None, maxseg=None):
        return cls(open_socket(host, port, source, timeout, rcvbuf, maxseg))

    # -- writing -----------------------------------------------------------
    def send_raw(self, data):
        self.sent += data
        self.sock.sendall(data)

    def send(self, type_, **fields):
        self.send_raw(encode(type_, **fields))

    # -- reading -----------------------------------------------------------
    def _fill(self, need, deadline):
        while len(self.buffer) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete frame within the deadline")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no complete frame within the deadline")
            except (ConnectionResetError, BrokenPipeError) as e:
                raise Closed("connection reset: %s" % e)
            if not chunk:
                raise Closed("end of stream after %d of %d bytes" % (len(self.buffer), need))
            self.buffer += chunk

    def read_frame(self, timeout=5.0):
        """The next frame; raises Closed at EOF/reset and TimeoutError when none comes in time."""
        deadline = time.monotonic() + timeout
        self._fill(HEADER_SIZE, deadline)
        (length,) = struct.unpack(">I", self.buffer[:HEADER_SIZE])
        if length == 0 or length > MAX_FRAME_BODY:
            raise ProtocolError("frame length %d" % length)
        self._fill(HEADER_SIZE + length, deadline)
        body = self.buffer[HEADER_SIZE:HEADER_SIZE + length]
        self.buffer = self.buffer[HEADER_SIZE + length:]
        return decode_body(body)

    def expect(self, *types, timeout=5.0):
        """The next frame of one of `types`, answering the relay's PINGs and skipping POOL_WANT on
        the way; any other frame is an AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if f.type in types:
                return f
            if f.type == PING:
                self.send(PONG, opaque=f.opaque)
            elif f.type != POOL_WANT:
                raise AssertionError("expected %s, got %r" % ("/".join(NAMES[t] for t in types), f))

    def recv_raw(self, timeout=5.0):
        """Raw bytes (after STREAM_READY): what is buffered first, then one read; b"" at EOF."""
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def closed_by_peer(self, timeout):
        return closed_by_peer(self.sock, timeout)

    def close(self):
        self.sock.close()

    def abort(self):
        abort(self.sock)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Control(Connection):
    """A control connection: HELLO, CHALLENGE, AUTH, WELCOME, then tunnels and heartbeats."""

    def __init__(self, sock, token=None, client_id=None):
        super().__init__(sock)
        self.token = token
        self.client_id = client_id or os.urandom(16)
        self.nonce = None
        self.welcome = None
        self.next_request = 1

    @classmethod
    def connect(cls, host, port, source="127.0.0.1", token=None, client_id=None, timeout=5.0,
                rcvbuf=None, maxseg=None):
        return cls(open_socket(host, port, source, timeout, rcvbuf, maxseg), token, client_id)

    def hello(self, agent="porthole-tests/wire.py", min_version=PROTOCOL_VERSION,
              max_version=PROTOCOL_VERSION, timeout=5.0):
        """Sends HELLO; returns the relay's answer, CHALLENGE or ERROR."""
        self.send(HELLO, min_version=min_version, max_version=max_version,
                  client_id=self.client_id, agent=agent)
        reply = self.read_frame(timeout)
        if reply.type == CHALLENGE:
            self.nonce = reply.nonce
        return reply

    def authenticate(self, timeout=5.0):
        """Answers the CHALLENGE with the token's proof; returns WELCOME or ERROR. On a relay
        without tokens any proof passes; this one is computed from 32 zero bytes."""
        self.send(AUTH, proof=session_proof(self.token, self.nonce, self.client_id))
        reply = self.read_frame(timeout)
        if reply.type == WELCOME:
            self.welcome = reply
        return reply

    def login(self, agent="porthole-tests/wire.py", timeout=5.0):
        """HELLO through WELCOME; AssertionError with the relay's answer when it refuses."""
        reply = self.hello(agent, timeout=timeout)
        assert reply.type == CHALLENGE, reply
        reply = self.authenticate(timeout)
        assert reply.type == WELCOME, reply
        return reply

    @property
    def session_id(self):
        return self.welcome.session_id

    @property
    def log_id(self):
        """How the relay's log names this session: the first 8 hex digits of its id."""
        return self.welcome.session_id.hex()[:8]

    @property
    def data_key(self):
        """The session's data key: WELCOME's open_data_key from a relay without tokens, else
        derived from the token and the session's CHALLENGE."""
        if any(self.welcome.open_data_key):
            return self.welcome.open_data_key
        return derived_data_key(self.token, self.nonce, self.client_id)

    def open_tunnel_frame(self, kind=KIND_HTTP, name="", port=0, target="127.0.0.1:9",
                          host_header="preserve", request_id=None):
        """The bytes of an OPEN_TUNNEL (for floods: build once, send many)."""
        if request_id is None:
            request_id, self.next_request = self.next_request, self.next_request + 1
        return encode(OPEN_TUNNEL, request_id=request_id, kind=kind, name=name, port=port,
                      target=target, host_header=host_header)

    def open_tunnel(self, kind=KIND_HTTP, name="", port=0, target="127.0.0.1:9",
                    host_header="preserve", timeout=5.0):
        """Asks for a tunnel; returns TUNNEL_OPENED or TUNNEL_REFUSED."""
        data = self.open_tunnel_frame(kind, name, port, target, host_header)
        self.send_raw(data)
        return self.expect(TUNNEL_OPENED, TUNNEL_REFUSED, timeout=timeout)

    def ping(self, opaque=1, timeout=5.0):
        """PING and its PONG (which must echo `opaque`)."""
        self.send(PING, opaque=opaque)
        reply = self.expect(PONG, timeout=timeout)
        assert reply.opaque == opaque, reply
        return reply

    def goaway(self, reason="leaving"):
        self.send(GOAWAY, reason=reason)


class DataConnection(Connection):
    """A data connection: DATA_HELLO, DATA_CHALLENGE, DATA_AUTH, then STREAM_START when a visitor
    comes, STREAM_READY and raw bytes."""

    def wait_stream(self, timeout=5.0):
        """The STREAM_START the relay sends when it hands this connection a visitor."""
        return self.expect(STREAM_START, timeout=timeout)

    def ready(self):
        self.send(STREAM_READY)

    def read_until(self, marker, timeout=5.0):
        """Raw bytes up to and including `marker` (e.g. the end of a request head)."""
        deadline = time.monotonic() + timeout
        data = b""
        while marker not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("%r did not arrive; got %r" % (marker, data[:300]))
            chunk = self.recv_raw(left)
            if not chunk:
                raise Closed("end of stream before %r; got %r" % (marker, data[:300]))
            data += chunk
        end = data.index(marker) + len(marker)
        self.buffer = data[end:] + self.buffer
        return data[:end]


def data_connection(control, host, port, source="127.0.0.1", timeout=5.0):
    """A data connection for `control`'s session, authenticated against its own DATA_CHALLENGE.
    Its `sent` holds exactly the bytes it wrote (DATA_HELLO + DATA_AUTH)."""
    conn = DataConnection(open_socket(host, port, source, timeout))
    try:
        conn.send(DATA_HELLO, session_id=control.session_id)
        challenge = conn.expect(DATA_CHALLENGE, timeout=timeout)
        conn.nonce = challenge.nonce
        conn.send(DATA_AUTH, proof=data_proof(control.data_key, control.session_id,
                                              challenge.nonce))
    except BaseException:
        conn.close()
        raise
    return conn
