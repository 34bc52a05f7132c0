"""Input handling through the real stack (nginx + FastCGI): text fields that
are not UTF-8, times past the year 9999, payloads that are not ours to
parse, and credentials in target URLs. Results are checked through the
HTTP API (the answer, status, the list and its counts), and every answer
is read as raw bytes and decoded strictly, so a byte that would make the
JSON invalid cannot hide behind a lenient decoder."""

import base64
import datetime
import http.client
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

from harness import TOKEN, TOP, Stack
from sink import Sink

OK = "http://127.0.0.1:9/x"


def raw(stack, method, path, body=None, content_type="application/x-www-form-urlencoded"):
    """Sends body (bytes, as they are) and returns (status, strict JSON or None, raw bytes).
    The JSON is None when the body is not valid UTF-8 JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if body is not None:
        headers["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(data.decode("utf-8", "strict"))
    except ValueError:
        parsed = None
    return r.status, parsed, data


def pending(stack):
    """How many messages the list counts as pending."""
    status, body, data = raw(stack, "GET", "/api/status?state=all&limit=1000")
    assert status == 200 and body is not None, data[:300]
    return body["counts"]["pending"]


def assert_refused(stack, body, field, content_type="application/x-www-form-urlencoded"):
    before = pending(stack)
    status, answer, data = raw(stack, "POST", "/api/schedule", body, content_type)
    assert status == 400, (status, data)
    assert answer is not None, f"the error is not valid UTF-8 JSON: {data!r}"
    assert answer["error"] and answer["field"] == field, answer
    assert pending(stack) == before, "a refused request wrote a message"
    return answer


# ---- item 14: text that is not UTF-8 ----

def test_non_utf8_idempotency_key_is_400_naming_it(stack):
    assert_refused(stack, b"url=" + OK.encode() + b"&idempotency_key=%FF%FEkey",
                   "idempotency_key")


def test_non_utf8_content_type_is_400_naming_it(stack):
    assert_refused(stack, b"url=" + OK.encode() + b"&content_type=text/plain%3B%20x%3D%FF",
                   "content_type")


def test_content_type_with_a_c1_control_character_is_400(stack):
    # U+0085 (NEXT LINE) is valid UTF-8 but a control character in a header.
    assert_refused(stack, b"url=" + OK.encode() + b"&content_type=text/plain%C2%85x",
                   "content_type")


def test_non_utf8_in_other_text_fields_is_400_naming_each(stack):
    for name, value in ((b"at", b"2030-01-01%FF"), (b"delay", b"5m%FF"), (b"tz", b"Europe/%FF"),
                        (b"max_attempts", b"3%FF"), (b"timeout", b"%FF")):
        fields = b"url=" + OK.encode() + b"&" + name + b"=" + value
        if name == b"tz":
            fields += b"&at=2030-01-01+10:00"
        assert_refused(stack, fields, name.decode())


def test_a_field_name_that_is_not_utf8_is_escaped_in_the_error(stack):
    answer = assert_refused(stack, b"url=" + OK.encode() + b"&x%FF%FEy=1", "x%FF%FEy")
    assert "UTF-8" in answer["error"], answer


def test_unknown_field_name_with_non_utf8_bytes_in_json_is_refused(stack):
    # The JSON decoder refuses invalid UTF-8 anywhere, naming no field.
    before = pending(stack)
    status, answer, data = raw(stack, "POST", "/api/schedule",
                               b'{"url": "' + OK.encode() + b'", "x\xff": 1}', "application/json")
    assert status == 400 and answer is not None, data
    assert pending(stack) == before


def test_a_binary_payload_is_still_accepted_and_counted(stack):
    status, answer, data = raw(stack, "POST", "/api/schedule",
                               b"url=" + OK.encode() + b"&delay=1h&payload=%FF%FE%00%01")
    assert status == 201 and answer is not None, data
    status, msg, data = raw(stack, "GET", "/api/status?id=" + answer["id"])
    assert status == 200 and msg is not None, data
    assert msg["payload_bytes"] == 4, msg


def test_the_list_stays_valid_json_after_hostile_fields(stack):
    for body in (b"url=" + OK.encode() + b"&idempotency_key=%FF%FEkey",
                 b"url=" + OK.encode() + b"&content_type=a%FF"):
        raw(stack, "POST", "/api/schedule", body)
    status, listing, data = raw(stack, "GET", "/api/status?state=all&limit=1000")
    assert status == 200 and listing is not None, data[:500]


# ---- item 15: years past 9999 ----

def test_unix_seconds_past_the_year_9999_are_400_naming_at(stack):
    answer = assert_refused(stack, b"url=" + OK.encode() + b"&at=999999999999", "at")
    assert "9999" in answer["error"], answer
    assert_refused(stack, b"url=" + OK.encode() + b"&at=9999-12-31T23:59:59-01:00", "at")
    status, answer, data = raw(stack, "POST", "/api/schedule",
                               b"url=" + OK.encode() + b"&at=253402300799")
    assert status == 201 and answer["due"] == "9999-12-31T23:59:59.000Z", data


# ---- item 16: a payload is not our number to parse ----

def test_json_payload_with_huge_numbers_is_delivered_byte_for_byte():
    payload = b'{"big": 12345678901234567890123, "neg": -99999999999999999999999, "e": 1e400}'
    with Sink() as sink, Stack() as s:
        status, answer, data = raw(s, "POST", "/api/schedule",
                                   b'{"url": "' + sink.url("/big").encode() + b'", "payload": ' +
                                   payload + b"}", "application/json")
        assert status == 201, data
        assert s.dispatch("--once")[0] == 0
        got = sink.wait_for(1, "/big")[0]
        assert got.body == payload, got.body
        assert got.headers["Content-Type"] == "application/json"


# ---- the list's default state, said where users look ----

def test_status_help_says_the_list_shows_only_pending_without_state():
    out = subprocess.run([os.path.join(TOP, "cgi-bin", "status"), "--help"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out
    text = " ".join(out.stdout.split())
    assert "without state it lists only pending messages" in text, out.stdout
    with open(os.path.join(TOP, "README.md")) as f:
        readme = " ".join(f.read().split())
    assert "without `state` lists only `pending` messages" in readme


# ---- item 19: credentials in URLs are masked wherever they are shown ----

PASSWORD = "pa55w0rdXYZ"


def test_url_passwords_are_masked_in_status_list_report_and_log_but_sent_as_basic_auth():
    with Sink() as sink, Stack() as s:
        target = sink.url("/creds").replace("http://", f"http://alice:{PASSWORD}@")
        callback = sink.url("/cb").replace("http://", f"http://bob:{PASSWORD}@")
        # A first URL that refuses the connection, so history has a failed
        # attempt to a masked URL too.
        dead = f"http://carol:{PASSWORD}@127.0.0.1:9/dead"
        status, m, data = raw(s, "POST", "/api/schedule", json.dumps(
            {"url": [dead, target], "callback": callback, "payload": "x"}).encode(),
            "application/json")
        assert status == 201, data

        # Before delivery: status and the list.
        for path in ("/api/status?id=" + m["id"], "/api/status?state=all"):
            status, body, data = raw(s, "GET", path)
            assert status == 200 and body is not None, data
            assert PASSWORD.encode() not in data, data
            assert b"alice:***@127.0.0.1" in data and b"bob:***@127.0.0.1" in data, data

        # Delivery uses the real credentials (as Basic auth); nothing shows them.
        rc, log = s.dispatch("--once", "-v")
        assert rc == 0, log
        got = sink.wait_for(1, "/creds")[0]
        assert got.headers["Authorization"] == "Basic " + base64.b64encode(
            f"alice:{PASSWORD}".encode()).decode(), dict(got.headers)
        report = sink.wait_for(1, "/cb", timeout=15)[0]
        assert report.headers["Authorization"] == "Basic " + base64.b64encode(
            f"bob:{PASSWORD}".encode()).decode()
        assert PASSWORD.encode() not in report.body, report.body
        assert json.loads(report.body)["url"].startswith("http://alice:***@"), report.body

        status, body, data = raw(s, "GET", "/api/status?id=" + m["id"])
        assert status == 200 and body["state"] == "delivered", data
        assert PASSWORD.encode() not in data, data
        assert body["delivered_to"].startswith("http://alice:***@"), body
        assert [h["url"].split("@")[0] for h in body["history"]] == \
            ["http://carol:***", "http://alice:***"] or \
            [h["url"].split("@")[0] for h in body["history"]] == ["http://alice:***"], body

        # Every log line: the dispatcher's (verbose, so every attempt) and the programs'.
        assert "alice:***@" in log, log
        assert PASSWORD not in log, log
        assert PASSWORD not in s.log(), s.log()


# ---- item 18: local times in zones, through the stack's request threads ----

def expected_due(local, zone):
    """The first instant reading as local in zone, by Python's zoneinfo."""
    naive = datetime.datetime.fromisoformat(local)
    first = naive.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(datetime.timezone.utc)
    return first.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_local_times_convert_in_their_zone_with_gap_refused_and_overlap_first(stack):
    r = stack.post_form("/api/schedule", {"url": OK, "at": "2030-07-01 12:00", "tz": "Europe/Berlin"})
    assert r.status == 201 and r.json["due"] == "2030-07-01T10:00:00.000Z", r
    # 2030-10-27 02:30 happens twice in Berlin: the first is 00:30Z (CEST).
    r = stack.post_form("/api/schedule", {"url": OK, "at": "2030-10-27 02:30", "tz": "Europe/Berlin"})
    assert r.status == 201 and r.json["due"] == "2030-10-27T00:30:00.000Z", r
    # 2030-03-31 02:30 does not exist there.
    answer = assert_refused(stack, b"url=" + OK.encode() + b"&at=2030-03-31+02:30&tz=Europe/Berlin",
                            "at")
    assert "does not exist" in answer["error"], answer


def test_concurrent_local_times_in_many_zones_all_convert_correctly(stack):
    cases = [(f"20{y}-{m:02d}-1{d} 0{h}:30", zone)
             for y in (30, 41, 77) for m in (1, 4, 7, 10) for d in (1, 5) for h in (1, 3)
             for zone in ("Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata")]

    def one(case):
        local, zone = case
        r = stack.post_form("/api/schedule", {"url": OK, "at": local, "tz": zone})
        return case, r

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, cases))
    wrong = [(case, r) for case, r in results
             if r.status != 201 or r.json["due"] != expected_due(*case)]
    assert not wrong, wrong[:5]
