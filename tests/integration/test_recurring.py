"""Recurring definitions through the real stack: POST/GET /api/recurring and
pause/resume/delete (cgi-bin/recurring behind nginx), occurrences made by
real dispatchers in their promotion step and delivered to a recording sink.

Cron's unit is the minute, so the tests that watch occurrences arrive wait
for minutes of the wall clock: they are marked @background and run.py runs
them beside the other tests. They only wait (a sink, a stack and idle
dispatchers), and print the lateness they measured.
"""

import datetime
import os
import random
import signal
import threading
import time

from harness import Stack, background
from sink import Sink

FAST = {"retry_base": 1, "retry_max": 4}


def iso_to_s(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_until(fn, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sleep_until(t):
    while time.time() < t:
        time.sleep(min(0.2, max(0.0, t - time.time())))


def early_in_a_minute(latest_second=40):
    """Waits, if need be, until a minute has just begun, so that what a test
    creates has most of a minute before its first occurrence."""
    if time.time() % 60 > latest_second:
        sleep_until((time.time() // 60 + 1) * 60 + 1)


def define(s, **fields):
    r = s.post_form("/api/recurring", fields)
    assert r.status == 201, r
    return r.json


def definition(s, id_, **params):
    r = s.get("/api/recurring", dict(id=id_, **params))
    assert r.status == 200, r
    return r.json


def status(s, id_):
    r = s.get("/api/status", {"id": id_})
    assert r.status == 200, r
    return r.json


def messages_of(s, id_):
    """Every message the list shows for definition id_, by due time."""
    out, cursor = [], None
    while True:
        params = {"state": "all", "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = s.get("/api/status", params)
        assert r.status == 200, r
        out += [m for m in r.json["messages"] if m["recurring"] == id_]
        cursor = r.json["next_cursor"]
        if not cursor:
            return out


# ---- the definition, its shape and its errors ----

def test_a_definition_is_answered_with_its_next_occurrence_and_listed(stack):
    d = define(stack, cron="*/5 * * * *", tz="Europe/Berlin", url="http://127.0.0.1:9/r",
               payload="tick", name="shape.five", priority="3", ttl="2m",
               callback="http://127.0.0.1:9/cb")
    assert d["cron"] == "*/5 * * * *" and d["tz"] == "Europe/Berlin" and d["name"] == "shape.five"
    assert d["paused"] is False and d["last"] is None and d["messages"] == []
    assert d["urls"] == ["http://127.0.0.1:9/r"] and d["queue"] is None
    assert d["priority"] == 3 and d["ttl"] == 120 and d["payload_bytes"] == 4
    nxt = iso_to_s(d["next"])
    # The first whole five minutes after now, a time in UTC and on the zone's clock.
    assert time.time() < nxt <= time.time() + 300 and nxt % 300 == 0, d
    assert d["next_local"][16:] in (":00+01:00", ":00+02:00"), d
    one = definition(stack, d["id"])
    assert {k: v for k, v in one.items() if k != "upcoming"} == d
    assert [iso_to_s(u["at"]) for u in one["upcoming"]] == [nxt + 300 * i for i in range(5)]
    listed = stack.get("/api/recurring").json["recurring"]
    assert d["id"] in [x["id"] for x in listed]
    # A queue as the destination, as a JSON request with a JSON payload.
    r = stack.post_json("/api/recurring", {"cron": "@daily", "queue": "shape.jobs",
                                           "payload": {"n": 1}})
    assert r.status == 201, r
    assert r.json["queue"] == "shape.jobs" and r.json["urls"] is None
    assert r.json["content_type"] == "application/json" and r.json["tz"] == "UTC"
    assert r.header("Location") == "/api/recurring?id=" + r.json["id"]


def test_bad_definitions_are_400s_naming_the_field_and_write_nothing(stack):
    before = stack.get("/api/recurring").json["recurring"]
    url = "http://127.0.0.1:9/r"
    cases = [
        ({"url": url}, "cron", None),
        ({"cron": "", "url": url}, "cron", None),
        ({"cron": "* * * *", "url": url}, "cron", "five"),
        ({"cron": "61 * * * *", "url": url}, "cron", "minute"),
        ({"cron": "0 0 30 2 *", "url": url}, "cron", None),
        ({"cron": "@reboot", "url": url}, "cron", None),
        ({"cron": "* * * * * *", "url": url}, "cron", "six"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus", "url": url}, "tz", None),
        ({"cron": "* * * * *", "tz": "", "url": url}, "tz", None),
        ({"cron": "* * * * *"}, "url", None),
        ({"cron": "* * * * *", "url": "ftp://x/"}, "url", None),
        ({"cron": "* * * * *", "topic": "news", "url": "http://127.0.0.1:9/"}, "url",
         "one destination"),
        ({"cron": "* * * * *", "url": url, "at": "2030-01-01T00:00:00Z"}, "at", None),
        ({"cron": "* * * * *", "url": url, "delay": "5m"}, "delay", None),
        ({"cron": "* * * * *", "url": url, "expires": "2030-01-01T00:00:00Z"}, "expires", None),
        ({"cron": "* * * * *", "url": url, "idempotency_key": "k"}, "idempotency_key", None),
        ({"cron": "* * * * *", "url": url, "name": "a b"}, "name", None),
        ({"cron": "* * * * *", "url": url, "max_attempts": "0"}, "max_attempts", None),
        ({"cron": "* * * * *", "url": url, "priority": "5000"}, "priority", None),
        ({"cron": "* * * * *", "url": url, "ttl": "soon"}, "ttl", None),
        ({"cron": "* * * * *", "url": url, "dealy": "5m"}, "dealy", None),
        ({"cron": ["* * * * *", "0 * * * *"], "url": url}, "cron", None),
    ]
    for fields, field, words in cases:
        r = stack.post_form("/api/recurring", fields)
        assert r.status == 400 and r.json["field"] == field, (fields, r)
        if words:
            assert words in r.json["error"], (fields, r)
    # cron_parse's own reason reaches the client.
    r = stack.post_form("/api/recurring", {"cron": "0 25 * * *", "url": url})
    assert r.status == 400 and "hour" in r.json["error"], r
    # A name is unique: the second is a 409 and writes nothing either.
    define(stack, cron="@hourly", url=url, name="bad.unique")
    r = stack.post_form("/api/recurring", {"cron": "@daily", "url": url, "name": "bad.unique"})
    assert r.status == 409 and r.json["field"] == "name", r
    after = stack.get("/api/recurring").json["recurring"]
    assert len(after) == len(before) + 1, (before, after)
    # The routes around it.
    for path in ("/api/recurring/pause", "/api/recurring/resume", "/api/recurring/delete"):
        r = stack.post_form(path, {})
        assert r.status == 400 and r.json["field"] == "id", r
        r = stack.post_form(path, {"id": "2al57ukkabdcustdn7ffzx3clk"})
        assert r.status == 404 and r.json["field"] == "id", r
        r = stack.post_form(path, {"id": "x", "more": "1"})
        assert r.status == 400 and r.json["field"] == "more", r
        assert stack.get(path).status == 405
    assert stack.get("/api/recurring", {"id": "nope"}).status == 404
    assert stack.get("/api/recurring", {"id": after[0]["id"], "count": "51"}).status == 400
    assert stack.get("/api/recurring", {"id": after[0]["id"], "after": "soon"}).status == 400
    assert stack.get("/api/recurring", {"count": "3"}).json["field"] == "id"
    assert stack.get("/api/recurring", token=None).status == 401


def test_weekdays_at_nine_in_berlin_across_both_changes_of_the_clocks(stack):
    """0 9 * * 1-5 in Europe/Berlin: 09:00 local is 08:00Z in winter and 07:00Z
    in summer; the clocks change on Sunday 28 March and Sunday 31 October
    2027, between two working days. Expected values from the calendar (and
    Python's zoneinfo, which agrees)."""
    d = define(stack, cron="0 9 * * 1-5", tz="Europe/Berlin", url="http://127.0.0.1:9/r")
    assert d["next_local"].endswith("T09:00:00+01:00") or \
        d["next_local"].endswith("T09:00:00+02:00"), d
    march = definition(stack, d["id"], after="2027-03-25T12:00:00Z", count=3)["upcoming"]
    assert [u["at"] for u in march] == ["2027-03-26T08:00:00.000Z",   # Friday, CET
                                        "2027-03-29T07:00:00.000Z",   # Monday, CEST
                                        "2027-03-30T07:00:00.000Z"], march
    assert [u["local"] for u in march] == ["2027-03-26T09:00:00+01:00",
                                           "2027-03-29T09:00:00+02:00",
                                           "2027-03-30T09:00:00+02:00"], march
    october = definition(stack, d["id"], after="2027-10-28T12:00:00Z", count=3)["upcoming"]
    assert [u["at"] for u in october] == ["2027-10-29T07:00:00.000Z",  # Friday, CEST
                                          "2027-11-01T08:00:00.000Z",  # Monday, CET
                                          "2027-11-02T08:00:00.000Z"], october
    # The skipped hour fires once at the end of the gap, the repeated one once.
    d = define(stack, cron="30 2 * * *", tz="Europe/Berlin", url="http://127.0.0.1:9/r")
    gap = definition(stack, d["id"], after="2027-03-27T12:00:00Z", count=2)["upcoming"]
    assert [u["local"] for u in gap] == ["2027-03-28T03:00:00+02:00",
                                         "2027-03-29T02:30:00+02:00"], gap
    twice = definition(stack, d["id"], after="2027-10-30T12:00:00Z", count=2)["upcoming"]
    assert [u["at"] for u in twice] == ["2027-10-31T00:30:00.000Z",   # 02:30 CEST, not CET
                                        "2027-11-01T01:30:00.000Z"], twice


# ---- occurrences, delivered ----

@background
def test_every_minute_is_delivered_once_a_minute_on_time_with_two_dispatchers():
    """`* * * * *` for three minutes with two dispatchers running: one delivery
    per minute, each within a few seconds of its minute, none twice."""
    with Sink() as sink, Stack(config=FAST) as s:
        for _ in range(2):
            s.spawn_dispatch("--watch")
        early_in_a_minute()
        d = define(s, cron="* * * * *", url=sink.url("/minute"), payload="tick")
        first = iso_to_s(d["next"])
        sleep_until(first + 2 * 60 + 5)
        got = sink.requests("/minute")
        # Not the next minute's, whose time has not come.
        got = [g for g in got if g.t < first + 3 * 60]
        late = [round(g.t - (first + 60 * i), 3) for i, g in enumerate(got)]
        print(f"  every minute: {len(got)} deliveries, lateness {late} s")
        assert len(got) == 3, (got, s.log()[-3000:])
        assert len({g.headers["webhook-id"] for g in got}) == 3, got
        for i, g in enumerate(got):
            # Never before its minute; on time, bounded loosely for a loaded machine.
            assert first + 60 * i <= g.t < first + 60 * i + 5, (i, g, late)
            assert g.body == b"tick"
            m = status(s, g.headers["webhook-id"])
            assert m["recurring"] == d["id"] and m["state"] == "delivered", m
            assert iso_to_s(m["due"]) == first + 60 * i, m
        one = definition(s, d["id"])
        made = messages_of(s, d["id"])
        # The three delivered, and the next one waiting: never more than one.
        assert len(made) == 4 and [m["state"] for m in made[:3]] == ["delivered"] * 3, made
        assert made[3]["state"] == "pending" and iso_to_s(made[3]["due"]) == first + 180, made
        assert one["messages"] == [m["id"] for m in reversed(made)], (one, made)
        assert iso_to_s(one["last"]) == first + 180 and iso_to_s(one["next"]) == first + 240


@background
def test_pause_resume_and_delete_stop_and_restart_occurrences_without_a_burst():
    """Two every-minute definitions: one is paused after its first delivery
    and resumed a minute later, the other deleted. Pause and delete cancel
    the occurrence waiting; nothing is delivered while paused or after the
    delete; resume makes only the next minute's (no burst of the missed
    ones); the deleted definition's messages are kept."""
    with Sink() as sink, Stack(config=FAST) as s:
        s.spawn_dispatch("--watch")
        early_in_a_minute()
        p = define(s, cron="* * * * *", url=sink.url("/paused"), name="pr.paused")
        x = define(s, cron="* * * * *", url=sink.url("/deleted"), name="pr.deleted")
        first = iso_to_s(p["next"])
        sink.wait_for(1, "/paused", timeout=70)
        sink.wait_for(1, "/deleted", timeout=10)
        # The next occurrence is made once the first has fallen due.
        waiting_p = wait_until(lambda: [m for m in messages_of(s, p["id"])
                                        if m["state"] == "pending"], 10, "the next occurrence")
        waiting_x = wait_until(lambda: [m for m in messages_of(s, x["id"])
                                        if m["state"] == "pending"], 10, "the next occurrence")
        r = s.post_form("/api/recurring/pause", {"id": p["id"]})
        assert r.status == 200 and r.json["paused"] is True and r.json["next"] is None, r
        assert s.post_form("/api/recurring/pause", {"id": p["id"]}).json["paused"] is True
        r = s.post_form("/api/recurring/delete", {"id": x["id"]})
        assert r.status == 200 and r.json == {"id": x["id"], "deleted": True}, r
        assert status(s, waiting_p[0]["id"])["state"] == "cancelled"
        assert status(s, waiting_x[0]["id"])["state"] == "cancelled"
        assert s.get("/api/recurring", {"id": x["id"]}).status == 404
        assert x["id"] not in [d["id"] for d in s.get("/api/recurring").json["recurring"]]
        # The deleted definition's name is free again.
        define(s, cron="@yearly", url=sink.url("/other"), name="pr.deleted")
        # A minute passes, paused: nothing arrives.
        sleep_until(first + 60 + 65)
        assert len(sink.requests("/paused")) == 1 and len(sink.requests("/deleted")) == 1
        r = s.post_form("/api/recurring/resume", {"id": p["id"]})
        assert r.status == 200 and r.json["paused"] is False, r
        resumed_next = iso_to_s(r.json["next"])
        assert time.time() < resumed_next <= time.time() + 60, r.json
        # No burst: of the minutes paused nothing is made, only the next one.
        time.sleep(3)
        made = messages_of(s, p["id"])
        assert [m["state"] for m in made] == ["delivered", "cancelled", "pending"], made
        assert iso_to_s(made[2]["due"]) == resumed_next, made
        sleep_until(resumed_next + 5)
        got = sink.requests("/paused")
        assert len(got) == 2 and resumed_next <= got[1].t < resumed_next + 5, got
        # The deleted definition never delivered again, and its messages are kept.
        assert len(sink.requests("/deleted")) == 1
        kept = messages_of(s, x["id"])
        assert [m["state"] for m in kept] == ["delivered", "cancelled"], kept


@background
def test_killed_dispatchers_make_no_occurrence_twice_and_a_gap_gives_one_late():
    """150 every-minute definitions (two batches of making per minute), two
    dispatchers killed with SIGKILL again and again around a minute boundary,
    when the occurrences are being made: each definition has exactly one
    message per minute. Then no dispatcher for over two minutes: when one
    comes back, each definition delivers one occurrence, the latest missed,
    late; the minutes in between are never made, and the occurrence made
    before the gap is cancelled, untried."""
    n = 150
    with Sink() as sink, Stack(config=FAST) as s:
        procs = [s.spawn_dispatch("--watch") for _ in range(2)]
        early_in_a_minute(latest_second=30)
        ids = [define(s, cron="* * * * *", url=sink.url(f"/k{i}"))["id"] for i in range(n)]
        boundary = (time.time() // 60 + 1) * 60
        # Kill and restart around the boundary, where making happens.
        sleep_until(boundary - 2)
        kills = 0
        rng = random.Random(16)
        while time.time() < boundary + 4:
            time.sleep(rng.uniform(0.05, 0.4))
            i = rng.randrange(2)
            procs[i].send_signal(signal.SIGKILL)
            procs[i].wait()
            kills += 1
            procs[i] = s.spawn_dispatch("--watch")
        print(f"  killed a dispatcher {kills} times around the minute")
        # Both occurrences (this minute's and the next) are made.
        def all_made():
            listed = s.get("/api/recurring").json["recurring"]
            return len(listed) == n and all(
                d["last"] is not None and iso_to_s(d["last"]) == boundary + 60 for d in listed)
        wait_until(all_made, 30, "every definition's next occurrence")
        for id_ in ids:
            made = messages_of(s, id_)
            assert [iso_to_s(m["due"]) for m in made] == [boundary, boundary + 60], made
        # Each target had this minute's message (a kill mid-flight may send
        # one message again: at least once), and no other.
        wait_until(lambda: all(sink.requests(f"/k{i}") for i in range(n)), 30, "deliveries")
        for i in range(n):
            assert len({g.headers["webhook-id"] for g in sink.requests(f"/k{i}")}) == 1, i

        # The gap: no dispatcher from before the next minute until two and a
        # half minutes later.
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        gap_end = boundary + 60 + 150
        sleep_until(gap_end)
        before = {i: len(sink.requests(f"/k{i}")) for i in range(n)}
        s.spawn_dispatch("--watch")
        latest = (gap_end // 60) * 60          # the latest minute missed
        wait_until(lambda: all(len(sink.requests(f"/k{i}")) > before[i] for i in range(n)),
                   30, "the late occurrences")
        time.sleep(2)
        lateness, again = [], 0
        for i, id_ in enumerate(ids):
            new = sink.requests(f"/k{i}")[before[i]:]
            dues = {}
            for g in new:
                m = status(s, g.headers["webhook-id"])
                dues.setdefault(iso_to_s(m["due"]), set()).add(m["id"])
                if iso_to_s(m["due"]) == latest:
                    lateness.append(g.t - latest)
            # One occurrence of the gap delivered: the latest. A message of
            # the minute of the kills may come again (a dispatcher killed
            # holding its lease: at least once), nothing else.
            assert set(dues) <= {latest, boundary} and len(dues.get(latest, ())) == 1, (i, dues)
            again += boundary in dues
            made = messages_of(s, id_)
            dues = [iso_to_s(m["due"]) for m in made]
            assert dues[:3] == [boundary, boundary + 60, latest], made
            assert made[1]["state"] == "cancelled" and made[1]["attempts"] == 0, made
        print(f"  after the gap: one late occurrence each, {min(lateness):.1f}-"
              f"{max(lateness):.1f} s after its minute; {again} messages of the minute of "
              "the kills delivered again after their lease ran out")


def test_a_definition_to_a_topic_or_with_method_and_headers_is_shown_with_them(stack):
    r = stack.post_form("/api/subscribe", {"topic": "rec.t", "name": "s1",
                                           "url": "http://127.0.0.1:9/s1"})
    assert r.status == 201, r
    d = define(stack, cron="@daily", topic="rec.t", payload="p")
    assert d["topic"] == "rec.t" and d["urls"] is None and d["queue"] is None, d
    assert d["method"] is None, d
    d = define(stack, cron="@daily", url="http://127.0.0.1:9/h", method="PUT",
               header=["Authorization: Bearer rec-secret-9", "X-Job: nightly"])
    assert d["method"] == "PUT" and d["headers"] == ["Authorization", "X-Job"], d
    assert "rec-secret-9" not in stack.get("/api/recurring", {"id": d["id"]}).body
    # A topic's copies take method, headers and the options of a destination
    # from their subscriptions.
    for fields, field in [({"topic": "rec.t", "url": "http://127.0.0.1:9/"}, "url"),
                          ({"topic": "rec.t", "method": "PUT"}, "method"),
                          ({"topic": "rec.t", "header": "X-A: b"}, "header"),
                          ({"topic": "rec.t", "callback": "http://127.0.0.1:9/"}, "callback")]:
        r = stack.post_form("/api/recurring", dict(cron="@daily", **fields))
        assert r.status == 400 and r.json["field"] == field, (fields, r)


@background
def test_every_minute_to_a_topic_reaches_each_subscription_once_a_minute():
    """`* * * * *` to a topic of two subscriptions (one a PUT with a header of
    its own), with two dispatchers: each subscription gets one copy a
    minute, none twice."""
    with Sink() as sink, Stack(config=FAST) as s:
        for name, extra in (("a", {}), ("b", {"method": "PUT",
                                             "header": "Authorization: Bearer sub-b"})):
            r = s.post_form("/api/subscribe", dict(topic="rec.tick", name=name,
                                                   url=sink.url(f"/{name}"), **extra))
            assert r.status == 201, r
        for _ in range(2):
            s.spawn_dispatch("--watch")
        early_in_a_minute()
        d = define(s, cron="* * * * *", topic="rec.tick", payload="tick")
        first = iso_to_s(d["next"])
        sleep_until(first + 60 + 5)
        for name in ("a", "b"):
            got = [g for g in sink.requests(f"/{name}") if g.t < first + 2 * 60]
            assert len(got) == 2, (name, got, s.log()[-3000:])
            assert len({g.headers["webhook-id"] for g in got}) == 2, got
            for i, g in enumerate(got):
                assert first + 60 * i <= g.t < first + 60 * i + 5, (name, i, g)
                m = status(s, g.headers["webhook-id"])
                assert m["recurring"] == d["id"] and m["subscription"] == name, m
            if name == "b":
                assert all(g.method == "PUT" and
                           g.headers.get("Authorization") == "Bearer sub-b" for g in got), got
