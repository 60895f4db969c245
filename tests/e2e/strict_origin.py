"""A local HTTP/1.1 service that parses with h11, a strict parser independent of porthole's.

Every request it reads is recorded (method, target, decoded body, the connection it came on) and
answered with a small fixed response marked `X-Origin: strict`. Bytes h11 cannot parse as HTTP/1.1
are recorded as a "garbage" event and the connection is closed: behind a relay that frames
requests right, neither ever happens. A request cut short by the end of the connection is recorded
with complete=False.

`current` is a label the test sets before each visitor request; every record carries the label
that was current when it was parsed, so records that cannot be traced by target still
point at a suspect.
"""
import socket
import threading
import time

import h11

IDLE_TIMEOUT = 30.0


class Seen:
    def __init__(self, connection, order, current):
        self.connection = connection
        self.order = order  # arrival order over all connections
        self.current = current
        self.method = None
        self.target = None
        self.version = None
        self.headers = []
        self.body = b""
        self.complete = False
        self.garbage = None  # (h11's complaint, the bytes of the connection so far)

    def view(self):
        return (self.method, self.target, self.body)

    def __repr__(self):
        if self.garbage:
            return "Garbage(conn %d, %s, after %r)" % (self.connection, self.garbage[0],
                                                       self.garbage[1][-300:])
        return "Seen(conn %d, %s %s HTTP/%s, body %r%s)" % (
            self.connection, self.method, self.target, self.version, self.body[:120],
            "" if self.complete else ", incomplete")


class StrictOrigin:
    def __init__(self):
        self.lock = threading.Lock()
        self.records = []
        self.current = None
        self.open_connections = 0
        self._connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="strict-origin", daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self._connections += 1
                self.open_connections += 1
                number = self._connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _record(self, connection):
        with self.lock:
            r = Seen(connection, len(self.records), self.current)
            self.records.append(r)
            return r

    def _serve(self, sock, number):
        sock.settimeout(IDLE_TIMEOUT)
        parser = h11.Connection(h11.SERVER)
        received = bytearray()
        record = None
        try:
            while True:
                try:
                    event = parser.next_event()
                except h11.RemoteProtocolError as exc:
                    if record is not None and not record.complete and parser.trailing_data[1]:
                        return  # the body was cut short by the end of the connection
                    garbage = self._record(number)
                    garbage.garbage = (str(exc), bytes(received))
                    return
                if event is h11.NEED_DATA:
                    try:
                        data = sock.recv(65536)
                    except (socket.timeout, ConnectionResetError):
                        data = b""
                    received += data
                    parser.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    record = self._record(number)
                    record.method = event.method.decode("latin-1")
                    record.target = event.target.decode("latin-1")
                    record.version = event.http_version.decode("latin-1")
                    record.headers = [(k.decode("latin-1"), v.decode("latin-1"))
                                      for k, v in event.headers]
                elif isinstance(event, h11.Data):
                    record.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    record.complete = True
                    self._respond(sock, parser, record)
                    if parser.our_state is h11.MUST_CLOSE:
                        return
                    parser.start_next_cycle()
                    record = None
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
        except OSError:
            return
        finally:
            try:
                sock.close()
            finally:
                with self.lock:
                    self.open_connections -= 1

    def _respond(self, sock, parser, record):
        body = b"ok\n"
        response = h11.Response(status_code=200, headers=[
            ("Content-Length", str(len(body))), ("X-Origin", "strict"),
            ("X-Seen-Target", record.target)])
        out = parser.send(response)
        if record.method != "HEAD":
            out += parser.send(h11.Data(data=body))
        out += parser.send(h11.EndOfMessage())
        sock.sendall(out)

    # -- for the tests ------------------------------------------------------------------------
    def snapshot(self):
        with self.lock:
            return list(self.records)

    def count(self):
        with self.lock:
            return len(self.records)

    def settle(self, timeout=5.0):
        """Wait until no connection is open: whatever the relay and client were still carrying
        has arrived. Returns False if connections stayed open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.open_connections == 0:
                    return True
            time.sleep(0.01)
        return False

    def close(self):
        self._listener.close()
