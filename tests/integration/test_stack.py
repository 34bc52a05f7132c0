"""The stack itself (bin/postdate-stack, `make run`, etc/nginx.conf): how it
stops on Ctrl-C, refuses a second instance on the same folder, replaces dead
FastCGI workers, answers overload and malformed requests as JSON, checks the
configuration before it starts, and timestamps the log file.

Everything talks to a real stack on loopback; processes are found through
/proc and only those of the test's own stack (its configuration path on
their command line) are signalled.
"""

import json
import os
import pty
import resource
import select
import selectors
import signal
import socket
import subprocess
import tempfile
import time

from harness import TOP, Stack, free_port
from sink import Sink

STACK = os.path.join(TOP, "bin", "postdate-stack")


# ---- helpers ----

def processes_of(s, program):
    """Pids of the live processes of stack s whose command line runs or
    names cgi-bin/PROGRAM (workers, and the stack's supervisor of them)."""
    path = os.path.realpath(os.path.join(TOP, "cgi-bin", program))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or s.conf not in argv:
            continue
        if any(os.path.realpath(a) == path for a in argv if a.startswith("/")):
            found.append(int(entry))
    return found


def workers_of(s, program):
    """Pids of the worker processes of PROGRAM in stack s (not supervisors)."""
    path = os.path.realpath(os.path.join(TOP, "cgi-bin", program))
    out = []
    for pid in processes_of(s, program):
        try:
            if os.path.realpath(f"/proc/{pid}/exe") == path:
                out.append(pid)
        except OSError:
            pass
    return out


def raw_exchange(port, data, timeout=10):
    """Sends bytes on a fresh connection, reads until the server closes it;
    returns (status, headers dict with lower-case names, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(data)
        got = b""
        while True:
            try:
                chunk = c.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    return parse_response(got)


def parse_response(got):
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None, {}, got
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return int(parts[1]), headers, body


def assert_json_error_answer(status, headers, body, want):
    assert status == want, (status, headers, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:300])
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"] and "field" in doc, body


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout} s for {what}")


# ---- item 1: Ctrl-C ----

def test_sigint_to_the_process_group_finishes_in_flight_deliveries_once_and_exits_0():
    with Sink() as sink, Stack(dispatcher=True) as s:
        sink.behave("/slow", status=200, delay=2)
        ids = [s.schedule(url=sink.url("/slow"), payload=str(i))["id"] for i in range(5)]
        sink.wait_for(5, "/slow", timeout=20)
        # What a terminal does on Ctrl-C: SIGINT to the whole foreground group.
        rc = s.interrupt(timeout=30)
        assert rc == 0, f"postdate-stack exited {rc} on SIGINT:\n{s.log()}"
        # A second run delivers whatever the first gave back; nothing was.
        s.start()
        for i in ids:
            r = s.get("/api/status", {"id": i})
            assert r.status == 200 and r.json["state"] == "delivered", r
            assert len(r.json["history"]) == 1, r
        time.sleep(3)
        per_id = {}
        for got in sink.ids("/slow"):
            per_id[got] = per_id.get(got, 0) + 1
        assert per_id == {i: 1 for i in ids}, per_id


def test_a_second_ctrl_c_while_stopping_still_finishes_in_flight_deliveries_and_exits_0():
    with Sink() as sink, Stack(dispatcher=True) as s:
        sink.behave("/slow", status=200, delay=2)
        ids = [s.schedule(url=sink.url("/slow"), payload=str(i))["id"] for i in range(3)]
        sink.wait_for(3, "/slow", timeout=20)
        os.killpg(s.proc.pid, signal.SIGINT)
        time.sleep(0.5)
        # An impatient second Ctrl-C: the stack keeps stopping in order.
        rc = s.interrupt(timeout=30)
        assert rc == 0, f"postdate-stack exited {rc} on a second SIGINT:\n{s.log()}"
        s.start()
        for i in ids:
            r = s.get("/api/status", {"id": i})
            assert r.status == 200 and r.json["state"] == "delivered", r
        time.sleep(3)
        assert sorted(sink.ids("/slow")) == sorted(ids), sink.ids("/slow")


def test_ctrl_c_on_make_run_stops_cleanly_and_make_exits_0():
    d = tempfile.mkdtemp(prefix="postdate-make-run-")
    conf = os.path.join(d, "postdate.conf")
    with open(conf, "w") as f:
        f.write("database = postdate.db\ntoken = make-run-test-token\n")
    port = free_port()
    # make run under a pseudo-terminal, as a person runs it, then ^C on it.
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("make", ["make", "-s", "-C", TOP, "run", f"PORT={port}",
                           f"POSTDATE_CONF={conf}", f"DIR={d}"])
    out = b""

    def read_for(seconds, until=None):
        nonlocal out
        end = time.time() + seconds
        while time.time() < end:
            if until is not None and until in out:
                return
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return
    st = None
    try:
        read_for(60, until=b"Press Ctrl-C")
        assert b"Press Ctrl-C" in out, out.decode(errors="replace")
        os.write(fd, b"\x03")
        deadline = time.time() + 30
        while st is None and time.time() < deadline:
            read_for(0.2)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                st = status
    finally:
        if st is None:
            # make (the pty's session leader) and all it started, so that a
            # failure leaves nothing running.
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert st is not None, "make run did not exit within 30 s of Ctrl-C: " + text[-2000:]
    assert os.waitstatus_to_exitcode(st) == 0, (os.waitstatus_to_exitcode(st), text[-2000:])
    assert "make: ***" not in text, text[-2000:]
    assert not os.path.exists(os.path.join(d, "run", "nginx.pid")), "nginx left running"


# ---- item 10: a second stack on the same folder ----

def test_a_second_stack_on_the_same_folder_is_refused_and_the_first_keeps_serving():
    with Stack() as s:
        second = subprocess.Popen(
            [STACK, "--port", str(free_port()), "--dir", s.dir, "--conf", s.conf, "--quiet",
             "--no-dispatch"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        try:
            out, _ = second.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            second.send_signal(signal.SIGTERM)
            out, _ = second.communicate(timeout=15)
            raise AssertionError("the second postdate-stack started on the same folder: "
                                 + out.decode(errors="replace"))
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        text = out.decode(errors="replace")
        assert second.returncode == 1, (second.returncode, text)
        assert "already running" in text, text
        assert s.get("/api/health", token=None).status == 200
        assert s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/", "delay": "1h"}
                           ).status == 201


# ---- item 11: dead FastCGI workers ----

def test_schedule_workers_killed_with_sigkill_are_replaced():
    with Stack() as s:
        before = workers_of(s, "schedule")
        assert len(before) == 2, before
        for pid in before:
            os.kill(pid, signal.SIGKILL)

        def schedules():
            r = s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/", "delay": "1h"})
            return r.status == 201
        wait_until(schedules, 15, "schedule to answer 201 after its workers were killed")
        after = wait_until(lambda: len(workers_of(s, "schedule")) == 2 and
                           workers_of(s, "schedule"), 10, "two schedule workers again")
        assert not set(after) & set(before), (before, after)
        assert s.get("/api/health", token=None).status == 200


def test_health_answers_503_naming_a_fastcgi_program_it_cannot_reach():
    with Stack() as s:
        r = s.get("/api/health", token=None)
        assert r.status == 200 and r.json["ok"] is True, r
        # Everything serving cancel gone at once (its supervisor too), so
        # that nothing listens on cancel's socket any more.
        victims = processes_of(s, "cancel")
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGSTOP)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        r = wait_until(lambda: (lambda r: r.status == 503 and r)(s.get("/api/health", token=None)),
                       10, "health to see cancel down")
        assert r.json["ok"] is False and r.json["down"] == ["cancel"], r
        assert "cancel" in r.json["error"], r
        # And nginx answers the route itself with a JSON 503 to retry later.
        r = s.post_form("/api/cancel", {"id": "x"})
        assert r.status == 503 and r.json["error"], r
        assert (r.header("Retry-After") or "").isdigit(), r.headers


def test_health_answers_503_naming_a_fastcgi_program_that_does_not_answer():
    with Stack() as s:
        # A worker that hangs (stopped here) keeps its socket open but
        # serves nothing: health's probe times out on it.
        stopped = workers_of(s, "cancel")
        assert len(stopped) == 1, stopped
        os.kill(stopped[0], signal.SIGSTOP)
        try:
            r = s.get("/api/health", token=None)
            assert r.status == 503 and r.json["down"] == ["cancel"], r
        finally:
            os.kill(stopped[0], signal.SIGCONT)
        r = s.get("/api/health", token=None)
        assert r.status == 200 and r.json["ok"] is True, r


# ---- item 12: overload ----

def test_3000_concurrent_connections_each_get_an_http_answer():
    n = 3000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 500)), hard))
    with Stack() as s:
        # The list the page polls: a FastCGI program with two workers and
        # the database behind it.
        request = (b"GET /api/status?state=pending&limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Authorization: Bearer " + s.token.encode() + b"\r\n"
                   b"Connection: close\r\n\r\n")
        sel = selectors.DefaultSelector()
        conns = {}
        # Every connection opened first, and only then every request sent,
        # so that all 3000 are open at once.
        for i in range(n):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", s.port))
            conns[c] = b""
        deadline = time.time() + 25
        for c in conns:
            sel.register(c, selectors.EVENT_WRITE)
        pending_send = set(conns)
        while pending_send and time.time() < deadline:
            for key, _ in sel.select(timeout=0.5):
                c = key.fileobj
                err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sel.unregister(c)
                pending_send.discard(c)
                if err == 0:
                    try:
                        c.send(request)
                        sel.register(c, selectors.EVENT_READ)
                    except OSError:
                        pass
        open_reads = len(sel.get_map())
        while open_reads and time.time() < deadline:
            for key, _ in sel.select(timeout=0.5):
                c = key.fileobj
                try:
                    chunk = c.recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    conns[c] += chunk
                else:
                    sel.unregister(c)
                    open_reads -= 1
        answers = {}
        silent = 0
        for c, got in conns.items():
            c.close()
            status, headers, body = parse_response(got)
            if status is None:
                silent += 1
                continue
            answers[status] = answers.get(status, 0) + 1
            if status == 503:
                assert headers.get("retry-after", "").isdigit(), headers
                assert_json_error_answer(status, headers, body, 503)
            else:
                assert status == 200, (status, headers, body[:200])
        print(f"3000 connections: answers {answers}, silent {silent}")
        assert silent == 0, f"{silent} of {n} connections got no answer; answers {answers}"
        assert s.get("/api/health", token=None).status == 200


# ---- item 13: malformed requests ----

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100a5010000a10303" + "00" * 32 + "000020c02bc02fc02cc030cca9cca8c009c013c00a"
    "c014009c009d002f0035c012000a0100005800000018001600001365787065726965"
    "6e63652e6578616d706c65000500050100000000000a000a0008001d001700180019"
    "000b00020100000d0012001004010403050105030601060302010203ff0100010000"
    "12000000170000")

MALFORMED = {
    "a garbage request line": b"\x01\x02garbage \xff\r\n\r\n",
    "a TLS client hello": TLS_CLIENT_HELLO,
    "a raw NUL in the query": b"GET /api/status?id=a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "a path above the root": b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
}


def test_malformed_requests_get_a_json_400(stack):
    for what, data in MALFORMED.items():
        status, headers, body = raw_exchange(stack.port, data)
        try:
            assert_json_error_answer(status, headers, body, 400)
        except (AssertionError, ValueError) as e:
            raise AssertionError(f"{what}: {status} {headers} {body[:200]!r}") from e


# ---- smaller things ----

def test_a_configuration_error_is_printed_by_the_stack_and_it_exits_1():
    d = tempfile.mkdtemp(prefix="postdate-badconf-")
    conf = os.path.join(d, "bad.conf")
    with open(conf, "w") as f:
        f.write("database = postdate.db\ndefault_timeout = soon\n")
    p = subprocess.run([STACK, "--port", str(free_port()), "--dir", d, "--conf", conf,
                        "--quiet", "--no-dispatch"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert f"{conf}:2" in p.stderr and "default_timeout" in p.stderr, p.stderr


RFC3339_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "


def test_log_lines_written_to_a_file_start_with_an_rfc3339_utc_timestamp():
    import re
    d = tempfile.mkdtemp(prefix="postdate-log-")
    conf = os.path.join(d, "postdate.conf")
    # A database that cannot be opened: a line is logged at start-up, and
    # the program then answers its one plain-CGI request with a 503.
    with open(conf, "w") as f:
        f.write(f"database = {d}/no/such/folder/postdate.db\n")
    log = os.path.join(d, "postdate.log")
    env = dict(os.environ, REQUEST_METHOD="GET")
    health = os.path.join(TOP, "cgi-bin", "health")
    subprocess.run([health, "-c", conf, "-l", log], env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, timeout=10)
    with open(log) as f:
        lines = f.read().splitlines()
    assert lines and all(re.match(RFC3339_MS + "health: ", line) for line in lines), lines
    # On a pipe (a terminal, journald) no timestamp: they add their own.
    p = subprocess.run([health, "-c", conf], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=10)
    lines = p.stderr.splitlines()
    assert lines and all(line.startswith("health: ") for line in lines), lines
