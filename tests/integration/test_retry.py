"""POST /api/retry, the dead-letter redrive, through real nginx, the
cancel program (which serves /api/cancel and /api/retry), SQLite and
bin/dispatch: a failed or expired message goes back to pending, due now,
with its rounds reset and its history kept, and is delivered again; a
queue's failed message becomes receivable again with the queue's figures
kept right; every other state is a 409 naming what it is, an unknown id a
404, and many retries of one message at once move it once.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from harness import Stack
from sink import Sink
from test_dispatch import FAST, counts, iso_to_s, status, wait_state
from test_queues import new_queue, queue_info, receive, release


def retry(s, id_, **kw):
    return s.post_form("/api/retry", {"id": id_}, **kw)


def failed_message(s, sink, **fields):
    """A message whose one round failed (the sink answers 500): its status."""
    sink.behave("/down", status=500)
    r = s.post_form("/api/schedule", dict(url=sink.url("/down"), max_attempts="1",
                                          payload="again", **fields))
    assert r.status == 201, r
    rc, err = s.dispatch("--once")
    assert rc == 0, err
    return wait_state(s, r.json["id"], "failed")


def test_retry_puts_a_failed_message_back_to_pending_due_now_and_it_is_delivered():
    with Sink() as sink, Stack(config=FAST) as s:
        m = failed_message(s, sink)
        time.sleep(0.05)
        assert m["attempts"] == 1 and len(m["history"]) == 1, m
        before = counts(s)
        t0 = time.time()
        r = retry(s, m["id"])
        assert r.status == 200, r
        assert r.json == {"id": m["id"], "state": "pending"}, r
        st = status(s, m["id"])
        assert st["state"] == "pending", st
        assert st["attempts"] == 0, st
        # Due now: at the retry, not at the original due time.
        assert iso_to_s(st["due"]) > iso_to_s(m["due"]), (m, st)
        assert t0 - 0.01 <= iso_to_s(st["due"]) <= time.time() + 0.01, (t0, st)
        assert st["delivered_at"] is None and st["delivered_to"] is None, st
        # The earlier attempt stays in the history.
        assert len(st["history"]) == 1 and st["history"][0]["status"] == 500, st
        after = counts(s)
        assert after["failed"] == before["failed"] - 1, (before, after)
        assert after["pending"] == before["pending"] + 1, (before, after)

        sink.behave("/down", status=200)
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        st = wait_state(s, m["id"], ("delivered", "failed"))
        assert st["state"] == "delivered", st
        assert st["attempts"] == 1, st
        assert [h["status"] for h in st["history"]] == [500, 200], st
        assert len(sink.requests("/down")) == 2


def test_retry_of_an_expired_message_gives_it_its_ttl_again_from_now():
    with Sink() as sink, Stack(config=FAST) as s:
        r = s.post_form("/api/schedule", {"url": sink.url("/late"), "ttl": "1s"})
        assert r.status == 201, r
        id_ = r.json["id"]
        time.sleep(1.2)
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        wait_state(s, id_, "expired")
        assert sink.requests("/late") == []
        t0 = time.time()
        r = retry(s, id_)
        assert r.status == 200 and r.json["state"] == "pending", r
        st = status(s, id_)
        assert st["state"] == "pending", st
        assert abs(iso_to_s(st["expires"]) - iso_to_s(st["due"]) - 1) < 0.01, st
        assert iso_to_s(st["expires"]) >= t0, st


def test_retry_is_409_with_the_state_from_any_other_state_and_404_for_an_unknown_id():
    with Sink() as sink, Stack(config=FAST) as s:
        pending = s.schedule(url=sink.url("/x"), delay="1h")["id"]
        r = retry(s, pending)
        assert r.status == 409 and r.json["state"] == "pending", r
        assert r.json["field"] == "id" and r.json["error"], r

        cancelled = s.schedule(url=sink.url("/x"), delay="1h")["id"]
        assert s.post_form("/api/cancel", {"id": cancelled}).status == 200
        r = retry(s, cancelled)
        assert r.status == 409 and r.json["state"] == "cancelled", r

        delivered = s.schedule(url=sink.url("/ok"))["id"]
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        wait_state(s, delivered, "delivered")
        r = retry(s, delivered)
        assert r.status == 409 and r.json["state"] == "delivered", r
        assert status(s, delivered)["state"] == "delivered"

        r = retry(s, "a" * 26)
        assert r.status == 404 and r.json["field"] == "id", r
        r = retry(s, "not an id")
        assert r.status == 404, r
        r = s.post_form("/api/retry", {})
        assert r.status == 400 and r.json["field"] == "id", r
        r = s.post_form("/api/retry", {"id": pending, "delay": "1s"})
        assert r.status == 400 and r.json["field"] == "delay", r
        r = s.post_json("/api/retry", {"id": pending})
        assert r.status == 409, r
        r = s.get("/api/retry", {"id": pending})
        assert r.status == 405 and "POST" in (r.header("Allow") or ""), r
        r = retry(s, pending, token=None)
        assert r.status == 401, r
        # The cancel route is still served by the same program.
        r = s.post_form("/api/cancel", {"id": pending})
        assert r.status == 200 and r.json["state"] == "cancelled", r


def test_a_retried_queue_message_is_receivable_again_and_the_queue_figures_follow():
    with Stack() as s:
        q = new_queue(s, max_attempts=1)
        r = s.post_form("/api/schedule", {"queue": q, "payload": "job"})
        assert r.status == 201, r
        id_ = r.json["id"]
        got = receive(s, q)
        assert [m["id"] for m in got] == [id_], got
        r = release(s, got[0])
        assert r.status == 200 and r.json["state"] == "failed", r
        info = queue_info(s, q)
        assert (info["failed"], info["pending"], info["ready"]) == (1, 0, 0), info

        r = retry(s, id_)
        assert r.status == 200 and r.json["state"] == "pending", r
        info = queue_info(s, q)
        assert (info["failed"], info["pending"], info["ready"]) == (0, 1, 1), info
        got = receive(s, q)
        assert [m["id"] for m in got] == [id_], got
        assert got[0]["attempt"] == 1 and got[0]["payload"] == "job", got
        r = s.post_form("/api/ack", {"id": id_, "receipt": got[0]["receipt"]})
        assert r.status == 200 and r.json["state"] == "delivered", r
        info = queue_info(s, q)
        assert (info["failed"], info["pending"], info["delivered"]) == (0, 0, 1), info


def test_many_retries_of_one_message_at_once_bring_it_back_once():
    with Sink() as sink, Stack(config=FAST) as s:
        m = failed_message(s, sink)
        before = counts(s)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: retry(s, m["id"]), range(32)))
        ok = [r for r in answers if r.status == 200]
        assert len(ok) == 1, answers
        assert all(r.status == 409 and r.json["state"] == "pending"
                   for r in answers if r.status != 200), answers
        after = counts(s)
        assert after["pending"] == before["pending"] + 1, (before, after)
        assert after["failed"] == before["failed"] - 1, (before, after)
