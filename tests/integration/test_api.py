"""The HTTP contract of API.md for schedule, status, cancel and health,
through real nginx, the FastCGI programs and SQLite."""

import json
import os
import re
import sqlite3
import tempfile
import threading
import time

from harness import Stack, TOKEN, TOP, sqlite_only
from test_dispatch import FAST, counts, status, wait_state

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ID_RE = re.compile(r"^[a-z2-7]{26}$")


def iso_to_ms(text):
    import datetime
    d = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return round(d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def assert_json_error(r, status, field):
    assert r.status == status, r
    assert r.header("Content-Type") == "application/json", r.headers
    assert isinstance(r.json, dict) and isinstance(r.json.get("error"), str) and r.json["error"], r
    assert r.json.get("field") == field, r


# ---- POST /api/schedule ----

def test_schedule_form_answers_201_with_location_and_body(stack):
    before = time.time() * 1000
    r = stack.post_form("/api/schedule", {"url": "http://127.0.0.1:9/hook", "payload": "hi"})
    assert r.status == 201, r
    body = r.json
    assert ID_RE.match(body["id"]), body
    assert body["state"] == "pending"
    assert TIME_RE.match(body["due"]) and TIME_RE.match(body["created"]), body
    assert body["status_url"] == f"/api/status?id={body['id']}"
    assert r.header("Location") == body["status_url"]
    assert abs(iso_to_ms(body["due"]) - before) < 5000
    # A 201 is sent after the commit: the row is there for any reader.
    assert stack.payload_of(body["id"]) == b"hi"
    assert stack.state_in_db(body["id"]) == "pending"


def test_schedule_json_pool_and_object_payload(stack):
    r = stack.post_json("/api/schedule", {
        "url": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"],
        "payload": {"card": "renewal", "n": [1, 2]},
        "delay": "15m", "max_attempts": 3, "timeout": 20})
    assert r.status == 201, r
    s = stack.get("/api/status", {"id": r.json["id"]}).json
    assert s["urls"] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    assert s["content_type"] == "application/json"
    assert s["max_attempts"] == 3 and s["timeout"] == 20
    payload = stack.payload_of(r.json["id"])
    assert json.loads(payload) == {"card": "renewal", "n": [1, 2]}
    assert s["payload_bytes"] == len(payload)
    assert iso_to_ms(s["due"]) - iso_to_ms(s["created"]) == 15 * 60 * 1000


def test_schedule_json_string_payload_is_sent_as_is(stack):
    r = stack.post_json("/api/schedule", {"url": "http://127.0.0.1:9/a",
                                          "payload": "{not json} \u00e9"})
    assert r.status == 201, r
    row = stack.query(f"SELECT p.payload, m.content_type FROM {stack.FROM} WHERE m.id = ?",
                      r.json["id"])
    assert row == [("{not json} \u00e9".encode(), "text/plain; charset=utf-8")]


def test_schedule_form_decodes_plus_and_percent_once(stack):
    body = "url=http%3A%2F%2F127.0.0.1%3A9%2Fx&payload=a+b%2Bc%2541"
    r = stack.request("POST", "/api/schedule", body=body,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 201, r
    assert stack.query(f"SELECT p.payload, m.urls FROM {stack.FROM} WHERE m.id = ?",
                       r.json["id"]) == \
        [(b"a b+c%41", "http://127.0.0.1:9/x")]


def test_schedule_form_repeated_url_is_a_pool_in_order(stack):
    urls = [f"http://127.0.0.1:9/{i}" for i in range(5)]
    r = stack.post_form("/api/schedule", [("url", u) for u in urls])
    assert r.status == 201, r
    assert stack.get("/api/status", {"id": r.json["id"]}).json["urls"] == urls


def test_schedule_time_forms(stack):
    cases = [
        ({"at": "2030-11-22T13:30:00Z"}, "2030-11-22T13:30:00.000Z"),
        ({"at": "2030-11-22T14:30:00.25+01:00"}, "2030-11-22T13:30:00.250Z"),
        ({"at": "2030-07-01 12:00", "tz": "Europe/Berlin"}, "2030-07-01T10:00:00.000Z"),
        ({"at": "2030-01-01 12:00:30"}, "2030-01-01T12:00:30.000Z"),
        ({"at": "1924992000"}, "2031-01-01T00:00:00.000Z"),
    ]
    for fields, due in cases:
        fields["url"] = "http://127.0.0.1:9/t"
        r = stack.post_form("/api/schedule", fields)
        assert r.status == 201, (fields, r)
        assert r.json["due"] == due, (fields, r.json)


def test_schedule_past_time_means_now(stack):
    before = time.time() * 1000
    r = stack.post_form("/api/schedule", {"url": "http://127.0.0.1:9/p",
                                          "at": "2001-01-01T00:00:00Z"})
    assert r.status == 201, r
    assert abs(iso_to_ms(r.json["due"]) - before) < 5000


def test_schedule_bad_fields_answer_400_naming_the_field_and_write_nothing(stack):
    ok = "http://127.0.0.1:9/x"
    cases = [
        ({}, "url"),
        ({"payload": "no url"}, "url"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": [ok] * 17}, "url"),
        ({"url": ok, "at": "2026-02-29 10:00"}, "at"),
        ({"url": ok, "at": "2026-13-01T00:00:00Z"}, "at"),
        ({"url": ok, "at": "yesterday"}, "at"),
        ({"url": ok, "at": "99999999999999999999"}, "at"),
        ({"url": ok, "at": "2026-03-29 02:30", "tz": "Europe/Berlin"}, "at"),
        ({"url": ok, "at": "2030-01-01 10:00", "tz": "Mars/Olympus"}, "tz"),
        ({"url": ok, "tz": "Europe/Berlin"}, "tz"),
        ({"url": ok, "delay": "soon"}, "delay"),
        ({"url": ok, "delay": "1h1h"}, "delay"),
        ({"url": ok, "delay": "5m", "at": "2030-01-01T00:00:00Z"}, "delay"),
        ({"url": ok, "max_attempts": "0"}, "max_attempts"),
        ({"url": ok, "max_attempts": "101"}, "max_attempts"),
        ({"url": ok, "timeout": "0"}, "timeout"),
        ({"url": ok, "timeout": "301"}, "timeout"),
        ({"url": ok, "timeout": "ten"}, "timeout"),
        ({"url": ok, "callback": "file:///etc/passwd"}, "callback"),
        ({"url": ok, "idempotency_key": "k" * 201}, "idempotency_key"),
        ({"url": ok, "content_type": "a\r\nb"}, "content_type"),
        ({"url": ok, "payload": ["a", "b"]}, "payload"),
        ({"url": ok, "colour": "blue"}, "colour"),
        ({"url": ok, "bad%zz": "1"}, None),
    ]
    before = stack.count()
    for fields, field in cases:
        r = stack.post_form("/api/schedule", fields)
        if field is None:
            assert r.status == 400, (fields, r)
            continue
        try:
            assert_json_error(r, 400, field)
        except AssertionError:
            raise AssertionError(f"{fields}: {r}")
    # A form name that is itself malformed: sent raw.
    r = stack.request("POST", "/api/schedule", body="url=http://x/&pay%zzload=1",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400 and "error" in r.json, r
    assert stack.count() == before
    assert stack.buffered() <= before


def test_schedule_bad_json_answers_400_and_writes_nothing(stack):
    before = stack.count()
    for body in ['{"url": "http://127.0.0.1:9/x"', '["http://127.0.0.1:9/x"]', '"x"',
                 '{"url": "http://127.0.0.1:9/x"} trailing', '{"url": {"a": 1}}',
                 '{"url": "http://127.0.0.1:9/x", "payload": "\xff"}',
                 '{"url": "http://127.0.0.1:9/x", "payload": ' + "[" * 100 + "]" * 100 + "}",
                 '']:
        r = stack.post_json("/api/schedule", body.encode("latin-1"))
        assert r.status == 400, (body[:40], r)
        assert r.json and r.json.get("error"), r
    r = stack.post_json("/api/schedule", {"url": {"nested": "x"}})
    assert_json_error(r, 400, "url")
    assert stack.count() == before


def test_schedule_other_content_type_is_415(stack):
    r = stack.request("POST", "/api/schedule", body="url=http://127.0.0.1:9/",
                      headers={"Content-Type": "text/plain"})
    assert_json_error(r, 415, None)


def test_body_over_max_body_is_413_and_writes_nothing(stack):
    before = stack.count()
    big = "url=http://127.0.0.1:9/x&payload=" + "a" * (1048576 + 1)
    r = stack.request("POST", "/api/schedule", body=big,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_json_error(r, 413, None)
    assert stack.count() == before
    # Just under the limit is accepted.
    fits = "url=http://127.0.0.1:9/x&payload=" + "a" * (1048576 - 40)
    r = stack.request("POST", "/api/schedule", body=fits,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 201, r


def test_idempotency_key_returns_the_original_with_200(stack):
    fields = {"url": "http://127.0.0.1:9/i", "idempotency_key": "renewal-2026-42",
              "delay": "1h"}
    first = stack.post_form("/api/schedule", fields)
    assert first.status == 201, first
    fields["delay"] = "2h"
    again = stack.post_form("/api/schedule", fields)
    assert again.status == 200, again
    assert again.json["id"] == first.json["id"]
    assert again.json["due"] == first.json["due"]
    assert again.header("Location") == first.header("Location")
    assert stack.query("SELECT count(*) FROM messages WHERE idempotency_key = ?",
                       "renewal-2026-42") == [(1,)]


def test_wrong_method_is_405_with_allow(stack):
    r = stack.get("/api/schedule")
    assert_json_error(r, 405, None)
    assert r.header("Allow") == "POST"
    r = stack.post_form("/api/status", {"id": "x"})
    assert_json_error(r, 405, None)
    assert r.header("Allow") == "GET, HEAD"
    r = stack.request("DELETE", "/api/cancel")
    assert_json_error(r, 405, None)
    assert r.header("Allow") == "POST"
    r = stack.request("PUT", "/api/health", token=None)
    assert r.status == 405 and r.header("Allow") == "GET, HEAD", r


def test_unknown_api_route_is_404_json(stack):
    for path in ["/api/nope", "/api/", "/api/schedule/extra"]:
        r = stack.get(path)
        assert_json_error(r, 404, None)


def test_missing_or_wrong_token_is_401_with_www_authenticate(stack):
    attempts = [
        ("POST", "/api/schedule", "url=http://127.0.0.1:9/"),
        ("GET", "/api/status", None),
        ("POST", "/api/cancel", "id=aaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ]
    before = stack.count()
    for method, path, body in attempts:
        for token in [None, "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]]:
            r = stack.request(method, path, body=body, token=token, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            assert_json_error(r, 401, None)
            assert r.header("WWW-Authenticate") == "Bearer", r.headers
    assert stack.count() == before
    assert stack.get("/api/health", token=None).status == 200


def test_several_tokens_are_each_accepted():
    with Stack(tokens=("first-token-0123456789", "second-token-0123456789")) as s:
        for t in ("first-token-0123456789", "second-token-0123456789"):
            assert s.get("/api/status", token=t).status == 200
        assert s.get("/api/status", token="third-token-0123456789").status == 401


def test_no_token_configured_means_open_api():
    with Stack(tokens=()) as s:
        assert s.get("/api/status", token=None).status == 200
        assert "no token" in s.log()


def test_full_store_answers_507_and_writes_nothing():
    with Stack({"max_pending": 2}) as s:
        s.schedule(delay="1h")
        s.schedule(delay="1h")
        r = s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/", "delay": "1h"})
        assert_json_error(r, 507, None)
        assert s.count() == 2
        # A known idempotency key still answers with its message.
        # Cancelling one makes room again.
        first = s.get("/api/status").json["messages"][0]["id"]
        assert s.post_form("/api/cancel", {"id": first}).status == 200
        while s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/"}).status != 201:
            assert time.time() < deadline, "schedule stayed 503"
            time.sleep(0.2)


# ---- GET /api/status ----

def test_status_by_id_has_every_field(stack):
    m = stack.schedule(url="http://127.0.0.1:9/s", payload="12345678901", delay="10m",
                       callback="http://127.0.0.1:9/cb")
    r = stack.get("/api/status", {"id": m["id"]})
    assert r.status == 200, r
    s = r.json
    for key in ["id", "state", "due", "created", "urls", "callback", "attempts",
                "max_attempts", "next_attempt", "delivered_to", "delivered_at",
                "payload_bytes", "history"]:
        assert key in s, key
    assert s["id"] == m["id"] and s["state"] == "pending"
    assert s["due"] == m["due"] and s["next_attempt"] == m["due"]
    assert s["callback"] == "http://127.0.0.1:9/cb"
    assert s["attempts"] == 0 and s["max_attempts"] == 8
    assert s["delivered_to"] is None and s["delivered_at"] is None
    assert s["payload_bytes"] == 11
    assert s["history"] == []


def test_status_unknown_id_is_404(stack):
    for id_ in ["aaaaaaaaaaaaaaaaaaaaaaaaaa", "../../etc", "x" * 300, ""]:
        r = stack.get("/api/status", {"id": id_})
        if id_ == "":
            assert r.status in (400, 404), r
        else:
            assert_json_error(r, 404, "id")


def test_head_on_status_has_no_body(stack):
    r = stack.request("HEAD", "/api/status")
    assert r.status == 200 and r.body == "", r


def test_list_pages_in_due_order_without_overlap():
    with Stack() as s:
        made = []
        # Ties on due (same `at`) are ordered by id.
        for i in range(23):
            at = f"2031-01-01T00:00:{i % 5:02d}Z"
            made.append(s.schedule(at=at))
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 5}
            if cursor:
                params["cursor"] = cursor
            r = s.get("/api/status", params)
            assert r.status == 200, r
            assert len(r.json["messages"]) <= 5
            seen += [(m["due"], m["id"]) for m in r.json["messages"]]
            pages += 1
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
        assert pages == 5
        assert seen == sorted((m["due"], m["id"]) for m in made)
        assert len(set(seen)) == 23


def test_list_filters_by_state_and_counts_every_state():
    with Stack() as s:
        a = s.schedule(delay="1h")
        s.schedule(delay="2h")
        assert s.post_form("/api/cancel", {"id": a["id"]}).status == 200
        r = s.get("/api/status")
        assert [m["id"] for m in r.json["messages"]] != [a["id"]]
        assert len(r.json["messages"]) == 1
        assert r.json["counts"] == {"pending": 1, "delivering": 0, "delivered": 0,
                                    "failed": 0, "cancelled": 1, "expired": 0}
        r = s.get("/api/status", {"state": "cancelled"})
        assert [m["id"] for m in r.json["messages"]] == [a["id"]]
        assert "history" not in r.json["messages"][0]
        r = s.get("/api/status", {"state": "all"})
        assert len(r.json["messages"]) == 2 and r.json["next_cursor"] is None


def test_list_bad_parameters_are_400_naming_them(stack):
    for params, field in [({"state": "bogus"}, "state"), ({"limit": "0"}, "limit"),
                          ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"),
                          ({"cursor": "junk"}, "cursor"), ({"sort": "due"}, "sort"),
                          ({"limit": ["5", "6"]}, "limit"), ({"queue": "a b"}, "queue")]:
        assert_json_error(stack.get("/api/status", params), 400, field)


# ---- POST /api/cancel ----

def test_cancel_pending_then_again_is_200(stack):
    m = stack.schedule(delay="5m")
    assert stack.buffered(m["id"]) == 1
    for _ in range(2):
        r = stack.post_form("/api/cancel", {"id": m["id"]})
        assert r.status == 200, r
        assert r.json == {"id": m["id"], "state": "cancelled"}
    assert stack.get("/api/status", {"id": m["id"]}).json["state"] == "cancelled"
    # The buffer row goes in the same transaction, so no dispatcher can claim it.
    assert stack.buffered(m["id"]) == 0


def test_cancel_accepts_json(stack):
    m = stack.schedule(delay="5m")
    r = stack.post_json("/api/cancel", {"id": m["id"]})
    assert r.status == 200 and r.json["state"] == "cancelled", r


def test_cancel_unknown_is_404_and_missing_id_is_400(stack):
    assert_json_error(stack.post_form("/api/cancel", {"id": "a" * 26}), 404, "id")
    assert_json_error(stack.post_form("/api/cancel", {"id": "nonsense"}), 404, "id")
    assert_json_error(stack.post_form("/api/cancel", {}), 400, "id")


def test_cancel_after_delivery_is_409_with_state(stack):
    m = stack.schedule(delay="5m")
    # Stands in for a dispatcher having delivered it (bin/dispatch comes later).
    stack.execute("DELETE FROM live WHERE key = (SELECT key FROM messages WHERE id = ?)",
                  m["id"])
    stack.execute("UPDATE messages SET state = 2 WHERE id = ?", m["id"])
    r = stack.post_form("/api/cancel", {"id": m["id"]})
    assert r.status == 409, r
    assert r.json["state"] == "delivered" and r.json["error"], r
    assert stack.get("/api/status", {"id": m["id"]}).json["state"] == "delivered"


# ---- the near-term buffer ----

def test_near_term_messages_are_buffered_and_far_ones_not():
    with Stack({"buffer_horizon": 60}) as s:
        near = s.schedule(delay="30s")
        far = s.schedule(delay="2m")
        assert s.buffered(near["id"]) == 1 and s.buffered(far["id"]) == 0


# ---- GET /api/health ----

def test_health_reports_pending_and_how_overdue():
    with Stack() as s:
        r = s.get("/api/health", token=None)
        assert r.status == 200 and r.json == {"ok": True, "pending": 0, "delivering": 0,
                                              "oldest_overdue_s": 0}, r
        s.schedule()                     # due now; no dispatcher runs
        s.schedule(delay="1h")
        time.sleep(1.2)
        r = s.get("/api/health", token=None).json
        assert r["ok"] is True and r["pending"] == 2
        assert 1.0 <= r["oldest_overdue_s"] < 30, r


def test_health_is_503_until_the_database_can_be_opened():
    with Stack(database="later/postdate.db") as s:
        r = s.get("/api/health", token=None)
        assert r.status == 503 and r.json["ok"] is False, r
        # The other routes answer a JSON 503 and the workers keep serving.
        assert_json_error(s.get("/api/status"), 503, None)
        assert_json_error(s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/"}), 503, None)
        assert "cannot open the database" in s.log()
        # Once the folder (on PostgreSQL, the database) exists the same
        # workers open it (they retry at most once a second), without a restart.
        s.create_late_database()
        deadline = time.time() + 10
        while s.get("/api/health", token=None).status != 200:
            assert time.time() < deadline, "health stayed 503"
            time.sleep(0.2)
        assert s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/"}).status == 201


# ---- durability ----

def test_messages_survive_a_restart():
    with Stack() as s:
        m = s.schedule(delay="1h", payload="keep me")
        s.stop()
        s.start()
        r = s.get("/api/status", {"id": m["id"]})
        assert r.status == 200 and r.json["state"] == "pending" and r.json["due"] == m["due"], r
        assert s.payload_of(m["id"]) == b"keep me"


@sqlite_only("WAL and PRAGMA user_version are SQLite's")
def test_database_is_wal_with_the_schema_version():
    with Stack() as s:
        s.schedule()
        assert s.query("PRAGMA journal_mode") == [("wal",)]
        migrations = [f for f in os.listdir(os.path.join(TOP, "sql")) if f[:3].isdigit()]
        assert s.query("PRAGMA user_version") == [(len(migrations),)]


# ---- the page ----

def test_page_and_its_assets_are_served_without_a_token(stack):
    r = stack.get("/", token=None)
    assert r.status == 200 and "text/html" in r.header("Content-Type"), r
    assert '<script src="app.js"></script>' in r.body
    r = stack.get("/app.js", token=None)
    assert r.status == 200 and "javascript" in r.header("Content-Type"), r
    assert "/api/status" in r.body and "innerHTML" not in r.body
    assert stack.get("/style.css", token=None).status == 200
    assert stack.get("/nope.html", token=None).status == 404


# ---- one snapshot per read ----

def test_the_list_and_its_counts_come_from_one_snapshot():
    # Regression: the page and its counts were read in two statements, so
    # a schedule committed between them made them disagree.
    with Stack() as s:
        stop = threading.Event()

        def keep_scheduling():
            while not stop.is_set():
                s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/snap"})
        writers = [threading.Thread(target=keep_scheduling) for _ in range(4)]
        for w in writers:
            w.start()
        try:
            checked = 0
            deadline = time.time() + 4
            while time.time() < deadline:
                r = s.get("/api/status", {"state": "all", "limit": 1000})
                assert r.status == 200, r
                listed, counted = len(r.json["messages"]), sum(r.json["counts"].values())
                if counted > 1000:
                    break
                assert listed == counted, (listed, r.json["counts"])
                checked += 1
        finally:
            stop.set()
            for w in writers:
                w.join()
        print(f"list and counts agreed in {checked} reads under 4 writers")
        assert checked >= 20, checked


def test_a_reused_idempotency_key_with_another_payload_is_409_and_writes_nothing(stack):
    fields = {"url": "http://127.0.0.1:9/k", "payload": "first", "idempotency_key": "k-409"}
    first = stack.post_form("/api/schedule", fields)
    assert first.status == 201, first
    before = stack.count()
    again = stack.post_form("/api/schedule", dict(fields, delay="1h"))
    assert again.status == 200 and again.json["id"] == first.json["id"], again
    other = stack.post_form("/api/schedule", dict(fields, payload="second"))
    assert_json_error(other, 409, "idempotency_key")
    assert stack.count() == before


# ---- migrations ----

@sqlite_only("a v1 database is an SQLite file")
def test_a_v1_database_is_migrated_and_what_was_pending_is_delivered():
    # The store v2 migration on a database the v1 programs wrote: pending
    # messages (one in the buffer, one delivering under a lease that ran
    # out), one delivered with its history, all kept and the pending ones
    # delivered by the v2 dispatcher.
    from sink import Sink
    with Sink() as sink, tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v1.db")
        now = int(time.time() * 1000)
        db = sqlite3.connect(path)
        with open(os.path.join(TOP, "sql", "001-initial.sql")) as f:
            db.executescript(f.read())
        rows = [("aaaaaaaaaaaaaaaaaaaaaaaaaa", "pending", 1, "soon", 0),
                ("bbbbbbbbbbbbbbbbbbbbbbbbbb", "delivering", 1, "was in flight", 1),
                ("cccccccccccccccccccccccccc", "delivered", 0, "done", 2),
                ("dddddddddddddddddddddddddd", "pending", 0, "not promoted yet", 0)]
        for id_, state, buffered, payload, attempts in rows:
            db.execute("INSERT INTO messages (id, state, due, created, next_attempt, buffered, "
                       "urls, payload, content_type, max_attempts, timeout, attempts, "
                       "delivered_to, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                       "'text/plain', 8, 10, ?, ?, ?)",
                       (id_, state, now - 5000, now - 6000, now - 5000, buffered,
                        sink.url("/v1"), payload.encode(), attempts,
                        sink.url("/v1") if state == "delivered" else None,
                        now - 4000 if state == "delivered" else None))
            if buffered:
                lease = now - 1000 if state == "delivering" else 0
                db.execute("INSERT INTO buffer (message_id, due, lease_until) VALUES (?, ?, ?)",
                           (id_, lease or now - 5000, lease))
        for seq in (1, 2):
            db.execute("INSERT INTO attempts VALUES ('cccccccccccccccccccccccccc', ?, ?, ?, ?, "
                       "NULL, 3)", (seq, now - 4500, sink.url("/v1"), 500 if seq == 1 else 200))
        db.execute("PRAGMA user_version = 1")
        db.commit()
        db.close()
        with Stack(config=FAST, database=path, dispatcher=True) as s:
            sink.wait_for(3, "/v1", timeout=20)
            for id_, payload in (("aaaaaaaaaaaaaaaaaaaaaaaaaa", "soon"),
                                 ("bbbbbbbbbbbbbbbbbbbbbbbbbb", "was in flight"),
                                 ("dddddddddddddddddddddddddd", "not promoted yet")):
                st = wait_state(s, id_, "delivered")
                assert st["payload_bytes"] == len(payload), st
            assert sorted(r.body.decode() for r in sink.requests("/v1")) == \
                ["not promoted yet", "soon", "was in flight"]
            done = status(s, "cccccccccccccccccccccccccc")
            assert done["state"] == "delivered" and done["attempts"] == 2, done
            assert [h["status"] for h in done["history"]] == [500, 200], done
            assert counts(s) == {"pending": 0, "delivering": 0, "delivered": 4, "failed": 0,
                                 "cancelled": 0, "expired": 0}
