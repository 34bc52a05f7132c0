"""A message's own HTTP headers and method (API.md v2, "More fields of POST
/api/schedule": header / headers, method), through real nginx, the FastCGI
programs, SQLite, bin/dispatch and a recording sink: what a target and a
queue worker receive, what is refused (a 400 naming the field, nothing
written), what status, the list and the logs show (header names, never a
value), and the idempotency fingerprint.
"""

import json
import os

from harness import Stack
from sink import Sink
from test_api import assert_json_error
from test_dispatch import FAST, new_secret, status, verify_signature, wait_state

# A value no log, status answer or list may ever contain.
SECRET = "Bearer s3cr3t-7f1d2c9a-never-shown"


def total_messages(s):
    """How many messages there are in every state, from the list's counts."""
    r = s.get("/api/status", {"state": "all", "limit": "1"})
    assert r.status == 200, r
    return sum(r.json["counts"].values())


def refused(s, fields, field="header", as_json=False):
    """Asserts that scheduling fields is a 400 naming field, writing nothing."""
    before = total_messages(s)
    if as_json:
        r = s.post_json("/api/schedule", fields)
    else:
        r = s.post_form("/api/schedule", fields)
    assert_json_error(r, 400, field)
    assert SECRET not in r.body, r
    assert total_messages(s) == before, (fields, r)
    return r


def stack_files_text(s):
    """Everything the stack folder holds but the database: the stack's,
    nginx's, the programs' and the dispatchers' logs, whole."""
    text = ""
    for folder, _, names in os.walk(s.dir):
        for name in names:
            if ".db" in name:
                continue
            try:
                with open(os.path.join(folder, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
    return text


# ---- what a target receives ----

def test_target_receives_the_headers_and_method_on_every_attempt_retry_included():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        sink.behave("/put", [503, 200])
        r = s.post_form("/api/schedule", [
            ("url", sink.url("/put")), ("payload", "p1"), ("method", "PUT"),
            ("header", f"Authorization: {SECRET}"), ("header", "X-Trace:  abc def  "),
            ("header", "X-Empty:")])
        assert r.status == 201, r
        first, second = sink.wait_for(2, "/put", timeout=20)
        for req in (first, second):
            assert req.method == "PUT", req
            assert req.body == b"p1", req
            assert req.headers.get("authorization") == SECRET, dict(req.headers)
            # Leading and trailing blanks of a value are not part of it (RFC 9110).
            assert req.headers.get("x-trace") == "abc def", dict(req.headers)
            assert req.headers.get("x-empty") == "", dict(req.headers)
            assert req.headers.get("webhook-id") == r.json["id"], dict(req.headers)
            assert req.headers.get("content-type") == "text/plain; charset=utf-8"
        wait_state(s, r.json["id"], "delivered")

        # JSON: headers as an object of strings, and each method as given.
        for method in ("POST", "PATCH", "DELETE"):
            path = "/" + method.lower()
            r = s.post_json("/api/schedule", {
                "url": sink.url(path), "payload": {"m": method}, "method": method,
                "headers": {"X-Job": "resize", "Authorization": SECRET}})
            assert r.status == 201, r
            req = sink.wait_for(1, path)[0]
            assert req.method == method, req
            assert json.loads(req.body) == {"m": method}, req
            assert req.headers.get("x-job") == "resize", dict(req.headers)
            assert req.headers.get("authorization") == SECRET, dict(req.headers)
        # No method: POST, and no headers but postdate's own.
        m = s.schedule(url=sink.url("/plain"), payload="x")
        req = sink.wait_for(1, "/plain")[0]
        assert req.method == "POST" and "authorization" not in req.headers, req
        assert status(s, m["id"])["method"] == "POST"


def test_get_carries_no_body_and_is_signed_over_the_empty_body():
    secret = new_secret()
    with Sink() as sink, Stack(config=dict(FAST, signing_secret=secret), dispatcher=True) as s:
        m = s.schedule(url=sink.url("/get?x=1"), method="GET", header="Accept: text/html")
        req = sink.wait_for(1, "/get")[0]
        assert req.method == "GET" and req.target == "/get?x=1", req
        assert req.body == b"", req
        assert "content-type" not in req.headers, dict(req.headers)
        assert req.headers.get("content-length") in (None, "0"), dict(req.headers)
        assert req.headers.get("accept") == "text/html", dict(req.headers)
        assert verify_signature(secret, req), dict(req.headers)
        assert wait_state(s, m["id"], "delivered")["method"] == "GET"
        # A GET cannot carry a payload or its content type.
        refused(s, {"url": sink.url("/get"), "method": "GET", "payload": "body"}, "payload")
        refused(s, {"url": sink.url("/get"), "method": "GET", "content_type": "text/plain"},
                "content_type")


def test_callback_report_carries_none_of_the_messages_headers_and_is_a_post():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        m = s.schedule(url=sink.url("/t"), payload="p", method="PATCH", callback=sink.url("/cb"),
                       header=f"Authorization: {SECRET}")
        assert sink.wait_for(1, "/t")[0].method == "PATCH"
        report = sink.wait_for(1, "/cb", timeout=15)[0]
        assert report.method == "POST", report
        assert "authorization" not in report.headers, dict(report.headers)
        assert SECRET.encode() not in report.body, report.body
        assert json.loads(report.body)["id"] == m["id"]


# ---- what is refused ----

REFUSED_NAMES = ["Host", "content-length", "Content-Type", "Transfer-Encoding", "Connection",
                 "Upgrade", "TE", "Trailer", "Keep-Alive", "Proxy-Authorization",
                 "proxy-connection", "User-Agent", "webhook-id", "Webhook-Signature",
                 "WEBHOOK-TIMESTAMP", "Expect"]


def test_refused_header_names_are_a_400_naming_header_with_nothing_written(stack):
    url = "http://127.0.0.1:9/h"
    for name in REFUSED_NAMES:
        refused(stack, {"url": url, "header": f"{name}: {SECRET}"})
        refused(stack, {"url": url, "headers": {name: SECRET}}, as_json=True)
    # Names that merely begin like a refused one are fine.
    for name in ("Hostname", "X-Webhook-Id", "Proxyish", "Authorization", "Accept"):
        r = stack.post_form("/api/schedule", {"url": url, "header": f"{name}: v"})
        assert r.status == 201, (name, r)


def test_too_many_or_too_large_headers_are_a_400_naming_header(stack):
    url = "http://127.0.0.1:9/h"
    many = [("header", f"X-H{i}: {i}") for i in range(32)]
    r = stack.post_form("/api/schedule", [("url", url)] + many)
    assert r.status == 201, r
    assert len(status(stack, r.json["id"])["headers"]) == 32
    refused(stack, [("url", url)] + many + [("header", "X-H32: 32")])
    refused(stack, {"url": url, "headers": {f"X-H{i}": "v" for i in range(33)}}, as_json=True)
    # 8 KiB in all, counted as the lines go out: "Name: value" and CRLF.
    line = len("X-Big: ") + 2
    r = stack.post_form("/api/schedule", {"url": url, "header": "X-Big: " + "a" * (8192 - line)})
    assert r.status == 201, r
    refused(stack, {"url": url, "header": "X-Big: " + "a" * (8193 - line)})
    refused(stack, {"url": url, "headers": {"X-A": "a" * 5000, "X-B": "b" * 5000}}, as_json=True)


def test_bad_header_names_and_values_are_a_400_naming_header(stack):
    url = "http://127.0.0.1:9/h"
    for header in ["Bad Name: x", "X(y): z", ": x", "NoColon", "X-A : space before colon",
                   "X-\u00e9: non-ASCII name", "X-A: a\r\nX-Injected: 1", "X-A: a\nb",
                   "X-A: a\rb", "X-A: a\x00b", "X-A: bell\x07", "X-A: del\x7f"]:
        refused(stack, {"url": url, "header": header})
    for headers in [{"X\r\nY": "a"}, {"X-A": "a\r\nHost: evil"}, {"X-A": "a\u0000b"},
                    {"X-A": 1}, {"X-A": None}, {"X-A": ["a"]}, {"": "a"}, "X-A: a", ["X-A: a"]]:
        refused(stack, {"url": url, "headers": headers}, as_json=True)
    # The same name twice (in any case) is refused: combine the values.
    refused(stack, [("url", url), ("header", "X-A: 1"), ("header", "x-a: 2")])
    refused(stack, '{"url": "%s", "headers": {"X-A": "1", "X-A": "2"}}' % url, as_json=True)
    refused(stack, {"url": url, "headers": {"X-A": "1", "x-A": "2"}}, as_json=True)
    # header and headers together.
    refused(stack, {"url": url, "header": ["X-A: 1"], "headers": {"X-B": "2"}}, as_json=True)
    # A value may hold a tab, colons and UTF-8.
    r = stack.post_json("/api/schedule", {"url": url, "headers": {"X-A": "a\tb: c \u00e9"}})
    assert r.status == 201, r


def test_bad_method_is_a_400_naming_method(stack):
    url = "http://127.0.0.1:9/h"
    for method in ["HEAD", "OPTIONS", "CONNECT", "TRACE", "FOO", "", "put", "POST ", "P\u00d6ST"]:
        refused(stack, {"url": url, "method": method}, "method")
    refused(stack, {"url": url, "method": "PUT", "headers": {"X-A": "1"}, "x": 1}, "x",
            as_json=True)
    refused(stack, [("url", url), ("method", "PUT"), ("method", "PUT")], "method")
    # A queue's worker takes the message; there is no HTTP request to make.
    refused(stack, {"queue": "hdr.q0", "method": "PUT"}, "method")


# ---- queue workers, status, the list, the page's data, the logs ----

def test_queue_worker_receives_the_header_values(stack):
    r = stack.post_form("/api/schedule", [("queue", "hdr.q1"), ("payload", "job"),
                                          ("header", f"Authorization: {SECRET}"),
                                          ("header", "X-Job: resize")])
    assert r.status == 201, r
    got = stack.post_form("/api/receive", {"queue": "hdr.q1"})
    assert got.status == 200, got
    (msg,) = got.json["messages"]
    assert msg["id"] == r.json["id"]
    assert msg["headers"] == {"Authorization": SECRET, "X-Job": "resize"}, msg
    # Status of the same message still shows names only.
    st = status(stack, r.json["id"])
    assert st["headers"] == ["Authorization", "X-Job"], st
    assert SECRET not in json.dumps(st)


def test_status_and_the_list_show_method_and_header_names_never_values(stack):
    r = stack.post_json("/api/schedule", {
        "url": "http://127.0.0.1:9/h", "delay": "1h", "method": "DELETE",
        "headers": {"Authorization": SECRET, "X-Trace": "t-1"}})
    assert r.status == 201, r
    st = stack.get("/api/status", {"id": r.json["id"]})
    assert st.status == 200, st
    assert st.json["method"] == "DELETE", st
    assert st.json["headers"] == ["Authorization", "X-Trace"], st
    assert SECRET not in st.body and "t-1" not in st.body, st
    page = stack.get("/api/status", {"state": "pending", "limit": "1000"})
    assert page.status == 200, page
    (listed,) = [m for m in page.json["messages"] if m["id"] == r.json["id"]]
    assert listed["method"] == "DELETE" and listed["headers"] == ["Authorization", "X-Trace"]
    assert SECRET not in page.body, "the list shows a header value"


def test_logs_never_contain_a_header_value():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        sink.behave("/flaky", [500, 200])
        m = s.schedule(url=sink.url("/flaky"), payload="p", callback=sink.url("/cb"),
                       header=f"Authorization: {SECRET}", method="PUT")
        q = s.post_form("/api/schedule", {"queue": "hdr.logs", "header": f"X-Key: {SECRET}"})
        assert q.status == 201, q
        assert s.post_form("/api/receive", {"queue": "hdr.logs"}).status == 200
        refused(s, {"url": sink.url("/x"), "header": f"Host: {SECRET}"})
        refused(s, {"url": sink.url("/x"), "header": f"X-A: {SECRET}\r\nX-B: 1"})
        sink.wait_for(2, "/flaky", timeout=20)
        wait_state(s, m["id"], "delivered")
        sink.wait_for(1, "/cb", timeout=15)
        # The dispatcher's rounds were logged, so the logs are the ones written.
        logs = stack_files_text(s)
        assert m["id"] in logs, logs[-2000:]
        assert SECRET not in logs and "s3cr3t" not in logs, "a header value was logged"


def test_verbose_dispatch_logs_every_attempt_but_no_header_value():
    with Sink() as sink, Stack(config=FAST) as s:
        m = s.schedule(url=sink.url("/v"), payload="p", header=f"Authorization: {SECRET}")
        rc, err = s.dispatch("--once", "-v")
        assert rc == 0, err
        assert sink.wait_for(1, "/v")[0].headers.get("authorization") == SECRET
        assert m["id"] in err and sink.url("/v") in err, err
        assert SECRET not in err and "s3cr3t" not in err, err


# ---- idempotency ----

def test_idempotency_fingerprint_covers_headers_and_method(stack):
    base = [("url", "http://127.0.0.1:9/h"), ("idempotency_key", "hdr-fp-1"), ("delay", "1h")]
    first = stack.post_form("/api/schedule", base + [("header", "X-A: 1"), ("method", "PUT")])
    assert first.status == 201, first
    again = stack.post_form("/api/schedule", base + [("header", "X-A: 1"), ("method", "PUT")])
    assert again.status == 200 and again.json["id"] == first.json["id"], again
    for other in ([("header", "X-A: 2"), ("method", "PUT")],
                  [("header", "X-B: 1"), ("method", "PUT")],
                  [("header", "X-A: 1"), ("method", "PATCH")],
                  [("header", "X-A: 1")],
                  [("method", "PUT")]):
        r = stack.post_form("/api/schedule", base + other)
        assert_json_error(r, 409, "idempotency_key")
    # Regression: the method and headers were hashed after the payload, so
    # a payload ending in what looked like them (any bytes are allowed)
    # made a POST hash as a PUT with headers, and the PUT got its 200.
    first = stack.request("POST", "/api/schedule", headers={
        "Content-Type": "application/x-www-form-urlencoded"},
        body="url=http%3A%2F%2F127.0.0.1%3A9%2Fh&idempotency_key=hdr-fp-3&payload="
             "abc%00envelope%00PUT%00X-A%3A%201%00")
    assert first.status == 201, first
    r = stack.post_form("/api/schedule", [("url", "http://127.0.0.1:9/h"),
                                          ("idempotency_key", "hdr-fp-3"), ("payload", "abc"),
                                          ("method", "PUT"), ("header", "X-A: 1")])
    assert_json_error(r, 409, "idempotency_key")
    # Without headers and method, a key answers as it always did.
    plain = [("url", "http://127.0.0.1:9/h"), ("idempotency_key", "hdr-fp-2")]
    one = stack.post_form("/api/schedule", plain)
    assert one.status == 201, one
    assert stack.post_form("/api/schedule", plain + [("method", "POST")]).status == 200
