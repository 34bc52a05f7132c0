"""postdate behind a real Apache 2.4 (Debian's apache2 with mod_proxy_fcgi),
serving etc/apache.conf as it is, its port, www and socket paths aside.

Apache passes a chunked request body to a FastCGI program as it comes, with
no CONTENT_LENGTH: the programs read such a body to its end, within
max_body. Apache's own error answers under /api/ are JSON, as nginx's are.
"""

import json
import os
import stat
import threading
import urllib.parse

from apache import Apache
from harness import TOKEN, TOP, Stack, free_port
from test_page_headers import assert_page_headers

AUTH = {"Authorization": f"Bearer {TOKEN}"}
FORM = dict(AUTH, **{"Content-Type": "application/x-www-form-urlencoded"})


def site_for(stack, port, text=None):
    """etc/apache.conf with the stack's sockets, this tree's www/ and a port of
    its own: the three things its header says to adjust."""
    if text is None:
        with open(os.path.join(TOP, "etc", "apache.conf")) as f:
            text = f.read()
    run = os.path.join(stack.dir, "run")
    return (text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
                .replace("/usr/local/share/postdate/www", os.path.join(TOP, "www"))
                .replace("/run/postdate/", run + "/"))


def open_sockets_to_apache(stack):
    """Apache's children run as www-data; the test stack's sockets belong to
    root with mode 0660 in a private temporary folder. A deployment gives
    the sockets www-data's group (cron/postdate-fcgi@.socket); here they are
    opened to everyone instead, on a folder only this test uses."""
    os.chmod(stack.dir, 0o711)
    run = os.path.join(stack.dir, "run")
    os.chmod(run, 0o711)
    for name in os.listdir(run):
        path = os.path.join(run, name)
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.chmod(path, 0o666)


def _apache(config=None):
    """A postdate stack (its nginx unused) and Apache in front of its programs."""
    s = Stack(config=config)
    try:
        open_sockets_to_apache(s)
        port = free_port()
        return s, Apache(site_for(s, port), port)
    except BaseException:
        s.close()
        raise


def schedule_body(payload_bytes):
    return urllib.parse.urlencode({"url": "http://127.0.0.1:9/hook",
                                   "payload": "x" * payload_bytes}).encode()


def test_apache_chunked_body_of_20_kib_is_read_whole():
    s, a = _apache()
    try:
        r = a.request("POST", "/api/schedule", schedule_body(20 * 1024), FORM, chunked=True)
        assert r.status == 201, r
        got = a.request("GET", "/api/status?id=" + r.json["id"], headers=AUTH)
        assert got.status == 200, got
        assert got.json["payload"] == "x" * (20 * 1024)
        # A chunked JSON body too, and a small one.
        body = json.dumps({"url": "http://127.0.0.1:9/hook", "payload": {"n": "y" * 30000}})
        r = a.request("POST", "/api/schedule", body.encode(),
                      dict(AUTH, **{"Content-Type": "application/json"}), chunked=True)
        assert r.status == 201, r
        r = a.request("POST", "/api/schedule", schedule_body(10), FORM, chunked=True)
        assert r.status == 201, r
    finally:
        a.close()
        s.close()


def test_apache_chunked_body_past_max_body_is_413():
    s, a = _apache()
    try:
        r = a.request("POST", "/api/schedule", schedule_body(2 * 1024 * 1024), FORM,
                      chunked=True)
        assert r.status == 413, r
        assert r.json is not None and "larger than 1048576" in r.json["error"], r
        assert r.header("Content-Type").startswith("application/json"), r.headers
        # Nothing was stored, and the programs keep serving.
        listed = a.request("GET", "/api/status?state=all", headers=AUTH)
        assert listed.status == 200 and listed.json["messages"] == [], listed
        r = a.request("POST", "/api/schedule", schedule_body(100), FORM, chunked=True)
        assert r.status == 201, r
    finally:
        a.close()
        s.close()


def test_apache_own_400_and_414_answers_are_json():
    s, a = _apache()
    try:
        # A request line longer than Apache's LimitRequestLine (8190 bytes).
        r = a.request("GET", "/api/status?id=" + "a" * 9000, headers=AUTH)
        assert r.status == 414, r
        assert r.json is not None and r.json["field"] is None and r.json["error"], r
        assert r.header("Content-Type").startswith("application/json"), r.headers
        # A header line longer than LimitRequestFieldSize: Apache's 400.
        r = a.request("GET", "/api/status", headers=dict(AUTH, **{"X-Big": "b" * 9000}))
        assert r.status == 400, r
        assert r.json is not None and r.json["field"] is None and r.json["error"], r
        assert r.header("Content-Type").startswith("application/json"), r.headers
        # A garbage request line: 400 as JSON, on any path.
        out = a.raw(b"GARBAGE\x01 / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), out[:300]
        assert json.loads(body)["field"] is None, out[:300]
        # postdate's own 400s pass through unchanged, field and all.
        r = a.request("POST", "/api/schedule", b"payload=hi", FORM)
        assert r.status == 400 and r.json["field"] == "url", r
    finally:
        a.close()
        s.close()


def test_apache_serves_every_route_and_the_page():
    s, a = _apache()
    try:
        r = a.request("GET", "/")
        assert r.status == 200 and b"<html" in r.body.lower(), r
        assert_page_headers(r)
        assert_page_headers(a.request("GET", "/app.js"))
        r = a.request("GET", "/api/health")
        assert r.status == 200 and r.json["ok"] is True, r
        assert r.header("X-Content-Type-Options") == "nosniff", r.headers
        r = a.request("POST", "/api/schedule", b"queue=jobs&payload=one", FORM)
        assert r.status == 201, r
        r = a.request("POST", "/api/receive", b"queue=jobs", FORM)
        assert r.status == 200 and r.json["messages"][0]["payload"] == "one", r
        got = r.json["messages"][0]
        r = a.request("POST", "/api/ack",
                      urllib.parse.urlencode({"id": got["id"], "receipt": got["receipt"]})
                      .encode(), FORM)
        assert r.status == 200, r
        r = a.request("POST", "/api/schedule", schedule_body(3) + b"&delay=1h", FORM)
        assert r.status == 201, r
        r = a.request("POST", "/api/cancel", f"id={r.json['id']}".encode(), FORM)
        assert r.status == 200 and r.json["state"] == "cancelled", r
        # The Authorization header reaches the programs (CGIPassAuth).
        r = a.request("GET", "/api/status?state=all")
        assert r.status == 401, r
        r = a.request("GET", "/api/nothing-here", headers=AUTH)
        assert r.status == 404 and r.json["error"] == "no such route", r
    finally:
        a.close()
        s.close()


def test_apache_answers_a_program_that_is_down_with_json_503_and_retry_after():
    s, a = _apache()
    try:
        sock = os.path.join(s.dir, "run", "cancel.sock")
        os.rename(sock, sock + ".away")
        try:
            r = a.request("POST", "/api/cancel", b"id=x", FORM)
        finally:
            os.rename(sock + ".away", sock)
        assert r.status == 503, r
        assert r.json == {"error": "the service is unavailable", "field": None}, r
        assert r.header("Content-Type").startswith("application/json"), r.headers
        assert r.header("Retry-After") == "1", r.headers
    finally:
        a.close()
        s.close()


def test_apache_passes_a_programs_own_503_with_its_one_retry_after():
    s, a = _apache(config={"receive_waiters": 1})
    try:
        r = a.request("POST", "/api/queues", b"name=jobs", FORM)
        assert r.status in (200, 201), r
        answers = []

        def waiter():
            answers.append(a.request("POST", "/api/receive", b"queue=jobs&wait=3", FORM))
        # Two queue processes of one waiter each: the others cannot wait.
        threads = [threading.Thread(target=waiter) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        busy = [r for r in answers if r.status == 503]
        assert len(answers) == 5 and busy, answers
        for r in busy:
            assert [v for k, v in r.headers if k.lower() == "retry-after"] == ["1"], r.headers
            assert r.json["error"], r
    finally:
        a.close()
        s.close()
