"""Queue messages as schedule takes them and as status and the list show
them (API.md v2: "More fields of POST /api/schedule", the status and list
changes), through real nginx, the FastCGI programs and SQLite.

The pull side (receive, ack, GET /api/queues) is tested in test_queues.py.
"""

import base64
import time

from harness import Stack
from test_api import assert_json_error, iso_to_ms

QUEUE_FIELDS = ["id", "state", "due", "created", "urls", "queue", "priority", "expires",
                "method", "headers", "recurring", "callback", "attempts", "max_attempts",
                "next_attempt", "payload_bytes"]


def schedule_into(stack, queue, **fields):
    fields["queue"] = queue
    r = stack.post_form("/api/schedule", fields)
    assert r.status == 201, r
    return r.json


def status(stack, id_):
    r = stack.get("/api/status", {"id": id_})
    assert r.status == 200, r
    return r.json


def test_status_shows_a_queue_message_with_queue_priority_and_expiry(stack):
    m = schedule_into(stack, "status.q1", payload="job 1", priority="-5", delay="10m",
                      ttl="1h", callback="http://127.0.0.1:9/cb")
    s = status(stack, m["id"])
    for key in QUEUE_FIELDS + ["payload", "history"]:
        assert key in s, key
    assert s["queue"] == "status.q1" and s["urls"] is None, s
    assert s["priority"] == -5
    assert s["due"] == m["due"]
    assert iso_to_ms(s["expires"]) == iso_to_ms(m["due"]) + 3600 * 1000, s
    assert s["method"] == "POST" and s["headers"] == [] and s["recurring"] is None
    # No max_attempts given: the queue's (a new queue has the configured default).
    assert s["max_attempts"] == 8, s
    assert s["timeout"] is None, s
    assert s["state"] == "pending" and s["attempts"] == 0


def test_status_of_a_pushed_message_shows_the_v2_fields(stack):
    m = stack.schedule(url="http://127.0.0.1:9/p", priority="7", expires="2031-01-01T00:00:00Z")
    s = status(stack, m["id"])
    assert s["urls"] == ["http://127.0.0.1:9/p"] and s["queue"] is None, s
    assert s["priority"] == 7 and s["expires"] == "2031-01-01T00:00:00.000Z", s
    assert s["method"] == "POST" and s["headers"] == [] and s["recurring"] is None
    assert s["timeout"] == 10
    m = stack.schedule(url="http://127.0.0.1:9/p")
    s = status(stack, m["id"])
    assert s["priority"] == 0 and s["expires"] is None, s


def test_status_by_id_shows_the_payload_as_text_or_base64(stack):
    text = 'héllo <img src=x onerror="alert(1)"> & \u2603'
    m = schedule_into(stack, "status.q2", payload=text)
    s = status(stack, m["id"])
    assert s["payload"] == text and "payload_base64" not in s, s
    assert s["payload_bytes"] == len(text.encode())
    # Bytes that are not UTF-8 come as base64, never mangled.
    raw = b"\xff\xfe\x00binary\x80"
    r = stack.request("POST", "/api/schedule",
                      body=b"queue=status.q2&payload=%FF%FE%00binary%80",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 201, r
    s = status(stack, r.json["id"])
    assert "payload" not in s, s
    assert base64.b64decode(s["payload_base64"]) == raw, s
    # An empty payload is an empty text.
    m = stack.schedule(url="http://127.0.0.1:9/e")
    assert status(stack, m["id"])["payload"] == ""


def test_the_list_shows_v2_fields_but_no_payload(stack):
    m = schedule_into(stack, "status.q3", payload="secret-ish body", priority="3", delay="1h")
    r = stack.get("/api/status", {"queue": "status.q3"})
    assert r.status == 200, r
    [one] = [x for x in r.json["messages"] if x["id"] == m["id"]]
    for key in QUEUE_FIELDS:
        assert key in one, key
    assert one["queue"] == "status.q3" and one["priority"] == 3
    assert "payload" not in one and "payload_base64" not in one and "history" not in one
    assert "secret-ish" not in r.body


def test_the_list_of_one_queue_shows_only_its_messages_and_its_counts():
    with Stack() as s:
        a1 = schedule_into(s, "q.a", delay="1h")
        a2 = schedule_into(s, "q.a", delay="2h")
        a3 = schedule_into(s, "q.a", delay="3h")
        schedule_into(s, "q.b", delay="1h")
        s.schedule(delay="1h")
        assert s.post_form("/api/cancel", {"id": a3["id"]}).status == 200
        r = s.get("/api/status", {"queue": "q.a"})
        assert r.status == 200, r
        assert [m["id"] for m in r.json["messages"]] == [a1["id"], a2["id"]], r
        assert r.json["counts"]["pending"] == 2 and r.json["counts"]["cancelled"] == 1, r
        assert sum(r.json["counts"].values()) == 3, r
        r = s.get("/api/status", {"queue": "q.a", "state": "all"})
        assert [m["id"] for m in r.json["messages"]] == [a1["id"], a2["id"], a3["id"]], r
        # Paged within the queue.
        r = s.get("/api/status", {"queue": "q.a", "state": "all", "limit": 2})
        assert len(r.json["messages"]) == 2 and r.json["next_cursor"], r
        r = s.get("/api/status", {"queue": "q.a", "state": "all",
                                  "cursor": r.json["next_cursor"]})
        assert [m["id"] for m in r.json["messages"]] == [a3["id"]], r
        # A queue nobody has used lists nothing.
        r = s.get("/api/status", {"queue": "never.used", "state": "all"})
        assert r.status == 200 and r.json["messages"] == [], r
        assert sum(r.json["counts"].values()) == 0, r
        # Without queue the list has every message.
        r = s.get("/api/status", {"state": "all"})
        assert len(r.json["messages"]) == 5, r


def test_the_list_filters_expired_and_counts_it():
    with Stack() as s:
        m = schedule_into(s, "q.ttl", ttl="1s", payload="too late")
        keep = schedule_into(s, "q.ttl", delay="1h")
        time.sleep(1.2)
        # A receive that meets a message whose ttl ran out ends it expired
        # instead of handing it out.
        r = s.post_form("/api/receive", {"queue": "q.ttl"})
        assert r.status == 200 and r.json["messages"] == [], r
        assert status(s, m["id"])["state"] == "expired"
        r = s.get("/api/status", {"state": "expired"})
        assert r.status == 200, r
        assert [x["id"] for x in r.json["messages"]] == [m["id"]], r
        assert r.json["counts"]["expired"] == 1 and r.json["counts"]["pending"] == 1, r
        r = s.get("/api/status", {"state": "expired", "queue": "q.ttl"})
        assert [x["id"] for x in r.json["messages"]] == [m["id"]], r
        assert status(s, keep["id"])["state"] == "pending"


def test_schedule_v2_bad_fields_are_400_naming_them_and_write_nothing():
    with Stack() as s:
        cases = [
            ({"queue": "a b"}, "queue"),
            ({"queue": "x" * 65}, "queue"),
            ({"queue": "jobs", "url": "http://127.0.0.1:9/"}, "queue"),
            ({"topic": "a/b"}, "topic"),
            ({"queue": "jobs", "topic": "news"}, "queue"),
            ({"queue": "jobs", "priority": "1001"}, "priority"),
            ({"queue": "jobs", "priority": "+1"}, "priority"),
            ({"url": "http://127.0.0.1:9/", "priority": "-1001"}, "priority"),
            ({"queue": "jobs", "ttl": "0"}, "ttl"),
            ({"queue": "jobs", "ttl": "soon"}, "ttl"),
            ({"queue": "jobs", "ttl": "5m", "expires": "2031-01-01T00:00:00Z"}, "expires"),
            ({"queue": "jobs", "expires": "2001-01-01T00:00:00Z"}, "expires"),
            ({"queue": "jobs", "delay": "2h", "expires": "2001-01-01T00:00:00Z"}, "expires"),
            ({"queue": "jobs", "timeout": "5"}, "timeout"),
            ({}, "url"),
        ]
        for fields, field in cases:
            assert_json_error(s.post_form("/api/schedule", fields), 400, field)
        r = s.post_json("/api/schedule", {"queue": "jobs", "priority": 1.5})
        assert_json_error(r, 400, "priority")
        r = s.post_json("/api/schedule", {"queue": ["a", "b"]})
        assert_json_error(r, 400, "queue")
        assert s.count() == 0
        r = s.get("/api/status", {"state": "all"})
        assert r.json["messages"] == [], r


def test_schedule_json_takes_queue_priority_and_ttl():
    with Stack() as s:
        r = s.post_json("/api/schedule", {"queue": "json.q", "priority": -20, "ttl": 90,
                                          "payload": {"job": 1}})
        assert r.status == 201, r
        st = status(s, r.json["id"])
        assert st["queue"] == "json.q" and st["priority"] == -20
        assert iso_to_ms(st["expires"]) == iso_to_ms(st["due"]) + 90000
        assert st["payload"] == '{"job": 1}' or st["payload"] == '{"job":1}', st


def test_the_list_bad_queue_is_400_naming_it(stack):
    # A good name is a filter, not an unknown field.
    assert stack.get("/api/status", {"queue": "A-z_0.9"}).status == 200
    for q in ["", "a/b", "x" * 65, "<b>"]:
        assert_json_error(stack.get("/api/status", {"queue": q}), 400, "queue")
    assert_json_error(stack.get("/api/status", [("queue", "a"), ("queue", "b")]), 400, "queue")


def test_a_retried_schedule_with_ttl_and_the_same_idempotency_key_answers_200():
    # A client retrying the same request (ttl and delay name a window
    # relative to when it is asked) must get its message back, not a 409.
    with Stack() as s:
        for fields in [{"queue": "idem.q", "ttl": "10m"},
                       {"queue": "idem.q", "ttl": "10m", "delay": "30s"},
                       {"url": "http://127.0.0.1:9/i", "ttl": "1h", "delay": "5m"},
                       {"queue": "idem.q", "expires": "2031-01-01T00:00:00Z"},
                       {"queue": "idem.q", "priority": "5"}]:
            key = "k-" + "-".join(sorted(fields))
            first = s.post_form("/api/schedule", dict(fields, idempotency_key=key))
            assert first.status == 201, first
            time.sleep(0.02)
            again = s.post_form("/api/schedule", dict(fields, idempotency_key=key))
            assert again.status == 200 and again.json["id"] == first.json["id"], (fields, again)
        # Other contents under a used key are still a 409.
        r = s.post_form("/api/schedule", {"queue": "idem.q", "priority": "6",
                                          "idempotency_key": "k-priority-queue"})
        assert_json_error(r, 409, "idempotency_key")
        r = s.post_form("/api/schedule", {"queue": "other.q", "priority": "5",
                                          "idempotency_key": "k-priority-queue"})
        assert_json_error(r, 409, "idempotency_key")
