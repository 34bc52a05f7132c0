"""A real HTTP target for the dispatcher tests.

    with Sink() as sink:
        sink.behave("/flaky", [dict(status=503, headers={"Retry-After": "2"}),
                               dict(status=200)])
        s.schedule(url=sink.url("/flaky"))
        first, second = sink.wait_for(2, "/flaky")

Sink() listens on 127.0.0.1 at a random port and answers in a background
thread per connection (HTTP/1.1 keep-alive, Content-Length always sent).
Every request is recorded when its headers have been read, before any
configured delay, so a test can see requests that are still in flight.
Paths nobody configured answer 200 with an empty body.

Sink(host="127.0.0.2") listens on another loopback address: to the
dispatcher, another host. Sink(host=hosts.gateway, delay=0.04) listens
where the simulated hosts (hosts.py) reach it and answers every path
nobody configured after 40 ms, as a real target would; it takes as many
connections at once as come (a thread each). Each Request records the
source address (`client`) and its arrival time (`t`), so that a test
counts deliveries, and who made them, without trusting postdate's logs:
deliveries() gives (webhook-id, source address, time) for every POST.
"""

import http.server
import socket
import threading
import time

__all__ = ["Sink", "Headers", "Request"]


class Headers(dict):
    """Request headers, looked up case-insensitively. Repeated headers are
    joined with ", " as RFC 9110 allows."""

    def __init__(self, pairs=()):
        super().__init__()
        for k, v in pairs:
            k = k.lower()
            super().__setitem__(k, v if k not in self else self[k] + ", " + v)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


class Request:
    """One request as the sink saw it."""

    def __init__(self, t, method, target, headers, body, client=None):
        self.t = t                          # time.time() when the headers were read
        self.client = client                # the source address, a str
        self.method = method
        self.target = target                # as sent, query string included
        self.path = target.split("?", 1)[0]
        self.headers = headers              # a Headers
        self.body = body                    # bytes

    def __repr__(self):
        return (f"<{self.method} {self.target} at {self.t:.3f} "
                f"id={self.headers.get('webhook-id')} {self.body[:60]!r}>")


class Answer:
    def __init__(self, status=200, headers=None, body=b"", delay=0,
                 content_type="text/plain", action=None):
        self.action = action                # called with the Request before answering
        self.status = int(status)
        self.headers = dict(headers or {})
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.delay = float(delay)
        self.content_type = content_type


def _normal(path):
    path = path.split("?", 1)[0]
    return path if path.startswith("/") else "/" + path


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when a dispatcher opens
    # dozens of connections at once; Linux then drops the handshake's last
    # ACK and the client waits for SYN-ACK retransmits (1 s, 3 s, ...).
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # A target that hangs up in the middle (a dispatcher's time-out, a
        # kill -9) is part of what the tests do; say nothing on stderr.
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sink"
    sys_version = ""

    def setup(self):
        super().setup()
        self.server.sink._opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.sink._closed(self.connection)

    def log_message(self, *args):
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            # The client went away mid-body (a kill -9): no request arrived.
            raise ConnectionResetError("the request body was cut short")
        return body

    def _any(self):
        t = time.time()
        sink = self.server.sink
        if (self.headers.get("Expect") or "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        body = self._read_body()
        request = Request(t, self.command, self.path, Headers(self.headers.items()), body,
                          self.client_address[0])
        answer = sink._record(request)
        if answer.action is not None:
            answer.action(request)
        if answer.delay > 0:
            time.sleep(answer.delay)
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for k, v in answer.headers.items():
                self.send_header(k, str(v))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:
            # The client gave up (a time-out): nothing to answer to.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any


class Sink:
    """A recording HTTP server on 127.0.0.1; see the module text."""

    def __init__(self, host="127.0.0.1", delay=0):
        self.host = host
        self.delay = float(delay)   # before answering a path nobody configured
        self._lock = threading.Lock()
        self._requests = []
        self._answers = {}          # path -> [Answer, ...]
        self._served = {}           # path -> how many of its answers were used
        self._connections = set()
        self._server = _Server((host, 0), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"sink:{self.port}", daemon=True)
        self._thread.start()
        self._closed_flag = False

    # ---- configuring ----

    def url(self, path="/"):
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.port}{path}"

    def behave(self, path, status=200, headers=None, body=b"", delay=0,
               content_type="text/plain", action=None):
        """How to answer requests for path. `status` may instead be a list of
        answers (dicts of these same keyword arguments, or plain status
        numbers), used in order, the last one repeating. `action`, when
        given, is called with each Request once it is recorded, before the
        delay and the answer (e.g. to kill the dispatcher that sent it)."""
        if isinstance(status, (list, tuple)):
            answers = []
            for a in status:
                if isinstance(a, int):
                    a = {"status": a}
                answers.append(Answer(**a))
            if not answers:
                raise ValueError("behave: an empty list of answers")
        else:
            answers = [Answer(status, headers, body, delay, content_type, action)]
        with self._lock:
            self._answers[_normal(path)] = answers
            self._served[_normal(path)] = 0

    # ---- what arrived ----

    def requests(self, path=None):
        """The requests so far (for path only, when given), in arrival order."""
        with self._lock:
            if path is None:
                return list(self._requests)
            path = _normal(path)
            return [r for r in self._requests if r.path == path]

    def wait_for(self, n, path=None, timeout=10.0):
        """Polls until at least n requests (for path) arrived; returns them
        all. Raises AssertionError naming what did arrive on time-out."""
        deadline = time.time() + timeout
        while True:
            got = self.requests(path)
            if len(got) >= n:
                return got
            if time.time() >= deadline:
                where = f" for {path}" if path else ""
                raise AssertionError(
                    f"sink {self.port}: waited {timeout:g} s for {n} requests{where}, "
                    f"got {len(got)}: {got[:5]}{' ...' if len(got) > 5 else ''}")
            time.sleep(0.01)

    def ids(self, path=None):
        """The webhook-id of every request so far (for path), in order."""
        return [r.headers.get("webhook-id") for r in self.requests(path)]

    def deliveries(self, path=None):
        """(webhook-id, source address, arrival time) of every POST so far
        (for path), in arrival order."""
        return [(r.headers.get("webhook-id"), r.client, r.t)
                for r in self.requests(path) if r.method == "POST"]

    def clear(self):
        with self._lock:
            self._requests.clear()

    # ---- internals used by the handler ----

    def _record(self, request):
        with self._lock:
            self._requests.append(request)
            answers = self._answers.get(request.path)
            if answers is None:
                return Answer(delay=self.delay)
            i = self._served[request.path]
            self._served[request.path] = i + 1
            return answers[min(i, len(answers) - 1)]

    def _opened(self, conn):
        with self._lock:
            self._connections.add(conn)

    def _closed(self, conn):
        with self._lock:
            self._connections.discard(conn)

    # ---- stopping ----

    def close(self):
        if self._closed_flag:
            return
        self._closed_flag = True
        self._server.shutdown()
        self._server.server_close()
        # Idle keep-alive connections would otherwise keep their threads
        # waiting for a next request that never comes.
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
