"""Every input has a bound: over it, a clear 4xx JSON error, nothing
written, and the programs keep serving. (Body size, bad fields and bad JSON
are in test_api.py; these are the remaining bounds of API.md's "Common
rules", and what nginx itself refuses.)"""

import json
import os
import socket

from harness import TOKEN, Stack
from test_api import assert_json_error

OK = "http://127.0.0.1:9/x"


def still_serving(stack):
    r = stack.post_form("/api/schedule", {"url": OK, "delay": "1h"})
    assert r.status == 201, r


def test_more_than_64_fields_is_400_and_writes_nothing(stack):
    before = stack.count()
    fields = [("url", OK)] + [("payload", "x")] + [(f"f{i}", "1") for i in range(64)]
    r = stack.post_form("/api/schedule", fields)
    assert r.status == 400 and "field" in r.json["error"].lower(), r
    # 17 URLs is over the pool's bound of 16, 16 is not.
    r = stack.post_form("/api/schedule", [("url", OK)] * 16 + [("delay", "1h")])
    assert r.status == 201, r
    assert stack.count() == before + 1
    still_serving(stack)


def test_a_field_name_over_64_bytes_is_400(stack):
    before = stack.count()
    r = stack.post_form("/api/schedule", {"url": OK, "n" * 65: "1"})
    assert r.status == 400, r
    assert r.json["error"], r
    assert stack.count() == before


def test_a_url_over_2048_bytes_is_400_naming_it(stack):
    before = stack.count()
    long_url = "http://127.0.0.1:9/" + "a" * (2049 - len("http://127.0.0.1:9/"))
    assert len(long_url) == 2049
    assert_json_error(stack.post_form("/api/schedule", {"url": long_url}), 400, "url")
    assert_json_error(stack.post_form("/api/schedule", {"url": OK, "callback": long_url}),
                      400, "callback")
    r = stack.post_form("/api/schedule", {"url": long_url[:2048], "delay": "1h"})
    assert r.status == 201, r
    assert stack.count() == before + 1


def test_json_nesting_over_32_levels_is_400_and_32_is_accepted(stack):
    before = stack.count()
    deep = {"url": OK, "delay": "1h", "payload": {}}
    inner = deep["payload"]
    for _ in range(30):              # the request object, payload, and 30 more: 32
        inner["a"] = {}
        inner = inner["a"]
    r = stack.post_json("/api/schedule", deep)
    assert r.status == 201, r
    inner["a"] = {}                  # 33
    r = stack.post_json("/api/schedule", deep)
    assert r.status == 400 and r.json["error"], r
    assert stack.count() == before + 1


def test_time_texts_over_64_bytes_are_400_naming_the_field(stack):
    before = stack.count()
    assert_json_error(stack.post_form("/api/schedule", {"url": OK, "delay": "1" * 65 + "s"}),
                      400, "delay")
    assert_json_error(stack.post_form("/api/schedule", {"url": OK, "tz": "A" * 65,
                                                        "at": "2030-01-01 10:00"}), 400, "tz")
    assert stack.count() == before


def raw_request(stack, data):
    """Sends bytes as they are and returns (status, headers text, body)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as c:
        c.sendall(data)
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body


def test_oversized_headers_and_query_get_a_json_4xx_from_nginx(stack):
    # A header line over nginx's 8 KiB buffers.
    status, head, body = raw_request(stack, (
        "GET /api/status?state=pending HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {TOKEN}\r\nX-Big: {'b' * 20000}\r\n\r\n").encode())
    assert status in (400, 431), head
    assert "application/json" in head, head
    assert json.loads(body)["error"], body
    # A request line (query string) over the same.
    status, head, body = raw_request(stack, (
        f"GET /api/status?id={'i' * 20000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {TOKEN}\r\n\r\n").encode())
    assert status in (400, 414), head
    assert "application/json" in head, head
    assert json.loads(body)["error"], body
    still_serving(stack)


def test_a_long_query_within_nginx_bounds_is_a_400_from_status(stack):
    r = stack.get("/api/status", {"id": "x" * 4000})
    assert r.status in (400, 404), r
    assert r.json["error"], r
    r = stack.get("/api/status", [("state", "pending")] * 70)
    assert r.status == 400 and r.json["error"], r


def test_the_token_never_appears_in_the_logs(stack):
    wrong = "wrong-token-" + "z" * 20
    r = stack.get("/api/status", {"state": "pending"}, token=wrong)
    assert r.status == 401, r
    r = stack.post_form("/api/schedule", {"url": OK, "delay": "1h"})
    assert r.status == 201, r
    log = stack.log()
    assert "scheduled" in log, "the log should say what happened"
    assert TOKEN not in log and wrong not in log


def test_nginx_refuses_a_body_over_max_body_before_it_reaches_the_token_check():
    with Stack({"max_body": "4096"}) as s:
        big = "url=http%3A%2F%2F127.0.0.1%3A9%2F&payload=" + "x" * 200000
        # Without the token: before, nginx spooled up to 64 MiB and postdate
        # then answered 401; now nginx stops at max_body.
        r = s.request("POST", "/api/schedule", body=big, token=None,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 413, r
        assert r.json is not None and "too large" in r.json["error"], r
        # A body of exactly max_body still reaches postdate.
        edge = "url=http%3A%2F%2F127.0.0.1%3A9%2F&delay=1h&payload="
        edge += "x" * (4096 - len(edge))
        assert len(edge) == 4096
        r = s.request("POST", "/api/schedule", body=edge,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 201, r
        with open(os.path.join(s.dir, "run", "nginx.conf")) as f:
            assert "client_max_body_size 4096;" in f.read()


def test_connections_to_a_programs_socket_that_stop_sending_stall_none_of_its_requests(stack):
    """Regression: a request thread read its connection's FastCGI parameters
    while holding the lock that every other thread of its process needed to
    accept, so a connection to the socket that sent one byte and then
    nothing stalled the whole process (libfcgi drops a connection that
    sends nothing at all within 2 s, not one that has begun), and two (one
    per process) stalled the queue and schedule programs. Now each such
    connection holds one thread."""
    import threading

    for name, ask, want in (
            ("queue", lambda: stack.get("/api/queues"), 200),
            ("schedule", lambda: stack.post_form("/api/schedule",
                                                 {"url": OK, "delay": "1h"}), 201)):
        silent = []
        try:
            for _ in range(4):
                s = socket.socket(socket.AF_UNIX)
                s.connect(os.path.join(stack.dir, "run", f"{name}.sock"))
                s.sendall(b"\x01")        # the first byte of a record header
                silent.append(s)
            answers = []
            t = threading.Thread(target=lambda: answers.append(ask()), daemon=True)
            t.start()
            t.join(5)
            assert answers, f"{name}: no answer within 5 s while 4 connections had stopped sending"
            assert answers[0].status == want, answers[0]
        finally:
            for s in silent:
                s.close()
    still_serving(stack)
