"""Group commit: concurrent schedule requests share transactions (commit.c)
and each still gets the answer it would get alone, through real nginx, the
threaded schedule workers and SQLite."""

import collections
import threading
from concurrent.futures import ThreadPoolExecutor

from harness import Stack


def post_together(s, field_sets):
    """POSTs every field set at once (a barrier releases them together, so
    they land in the same few commits) and returns the answers in order."""
    barrier = threading.Barrier(len(field_sets))

    def one(fields):
        barrier.wait()
        return s.post_form("/api/schedule", fields)

    with ThreadPoolExecutor(len(field_sets)) as ex:
        return list(ex.map(one, field_sets))


def test_concurrent_schedules_each_get_their_own_stored_message():
    with Stack() as s:
        fields = [{"url": f"http://127.0.0.1:9/m{i}", "payload": f"p{i}"} for i in range(48)]
        answers = post_together(s, fields)
        assert [a.status for a in answers] == [201] * 48, answers
        ids = [a.json["id"] for a in answers]
        assert len(set(ids)) == 48
        stored = dict(s.query(f"SELECT m.id, p.payload FROM {s.FROM}"))
        for i, id_ in enumerate(ids):
            assert stored.get(id_) == f"p{i}".encode(), (i, id_)


def test_concurrent_schedules_with_one_idempotency_key_store_one_message():
    # The requests may share a transaction: the later ones must find the
    # first one's row in it, not insert their own; and one with other
    # contents under the same key is a 409 however it is timed.
    with Stack() as s:
        same = {"url": "http://127.0.0.1:9/k", "payload": "same", "idempotency_key": "same-key"}
        answers = post_together(s, [same] * 16 + [dict(same, payload="other")] * 16)
        by_status = collections.Counter(a.status for a in answers)
        # Whichever payload came first owns the key; the other half is 409.
        assert by_status == {201: 1, 200: 15, 409: 16}, by_status
        winner = next(a for a in answers if a.status == 201)
        assert all(a.json["id"] == winner.json["id"] for a in answers if a.status == 200)
        assert all(a.json["field"] == "idempotency_key" for a in answers if a.status == 409)
        assert s.count() == 1


def test_concurrent_schedules_past_max_pending_refuse_exactly_the_excess():
    # The max_pending check counts the messages committed with it.
    with Stack({"max_pending": 20}) as s:
        fields = [{"url": "http://127.0.0.1:9/f", "payload": f"p{i}"} for i in range(40)]
        answers = post_together(s, fields)
        by_status = collections.Counter(a.status for a in answers)
        assert by_status == {201: 20, 507: 20}, by_status
        assert s.count() == 20



def test_concurrent_schedules_into_a_queue_past_its_max_depth_refuse_exactly_the_excess():
    # A queue's max_depth is counted with the messages committed with it,
    # as max_pending is (on PostgreSQL, batches of several processes at once).
    with Stack() as s:
        r = s.post_form("/api/queues", {"name": "deep", "max_depth": "20"})
        assert r.status == 200, r
        answers = post_together(s, [{"queue": "deep", "payload": f"p{i}"} for i in range(40)])
        by_status = collections.Counter(a.status for a in answers)
        assert by_status == {201: 20, 507: 20}, by_status
        r = s.get("/api/queues", {"name": "deep"})
        assert r.status == 200 and r.json["pending"] == 20, r
        assert s.count() == 20

def test_ids_sort_in_the_order_messages_were_created():
    # Ids begin with the creation time, so that new rows land at the end of
    # the primary-key index.
    with Stack() as s:
        ids = []
        for i in range(5):
            ids.append(s.schedule(payload=f"p{i}")["id"])
            threading.Event().wait(0.003)
        assert ids == sorted(ids), ids
