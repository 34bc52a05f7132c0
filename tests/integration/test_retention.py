"""Retention through real nginx, the FastCGI programs, SQLite and
bin/dispatch: messages that ended (delivered, failed, cancelled, a queue's
acknowledged) longer ago than `retention` are deleted by the dispatcher
with their history and payload, so their status is a 404 and the counts
follow; messages that ended since, and pending ones, stay.
"""

import time

from harness import Stack
from sink import Sink
from test_dispatch import FAST, counts, status, wait_state
from test_queues import new_queue, queue_info, receive

RETENTION_S = 5


def test_messages_ended_longer_ago_than_retention_are_deleted_and_the_rest_stay():
    with Sink() as sink, Stack(config=dict(FAST, retention=f"{RETENTION_S}s")) as s:
        sink.behave("/down", status=500)
        old = [s.schedule(url=sink.url("/ok"), payload=f"old-{i}")["id"] for i in range(3)]
        old.append(s.schedule(url=sink.url("/down"), max_attempts="1")["id"])
        cancelled = s.schedule(url=sink.url("/ok"), delay="1h")["id"]
        assert s.post_form("/api/cancel", {"id": cancelled}).status == 200
        old.append(cancelled)
        q = new_queue(s)
        acked = s.post_form("/api/schedule", {"queue": q, "payload": "job"}).json["id"]
        got = receive(s, q)
        assert s.post_form("/api/ack", {"id": acked, "receipt": got[0]["receipt"]}).status == 200
        old.append(acked)
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        for id_ in old:
            wait_state(s, id_, ("delivered", "failed", "cancelled"))
        assert queue_info(s, q)["delivered"] == 1

        # What stays: pending messages, pushed and queued, however old.
        far = s.schedule(url=sink.url("/ok"), delay="1h")["id"]
        waiting = s.post_form("/api/schedule", {"queue": q, "delay": "1h"}).json["id"]

        time.sleep(RETENTION_S + 0.5)
        new = s.schedule(url=sink.url("/ok"), payload="new")["id"]
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        assert wait_state(s, new, ("delivered", "failed"))["state"] == "delivered"

        for id_ in old:
            r = s.get("/api/status", {"id": id_})
            assert r.status == 404, (id_, r)
        assert status(s, new)["state"] == "delivered"
        assert status(s, far)["state"] == "pending"
        assert status(s, waiting)["state"] == "pending"
        c = counts(s)
        assert (c["delivered"], c["failed"], c["cancelled"], c["pending"]) == (1, 0, 0, 2), c
        info = queue_info(s, q)
        assert (info["delivered"], info["pending"]) == (0, 1), info
        listed = s.get("/api/status", {"state": "all", "limit": 1000}).json["messages"]
        assert sorted(m["id"] for m in listed) == sorted([new, far, waiting]), listed
        # Their history and payloads went with them.
        assert s.query("SELECT count(*) FROM history WHERE key NOT IN "
                       "(SELECT key FROM messages)")[0][0] == 0
        assert s.query("SELECT count(*) FROM payloads WHERE key NOT IN "
                       "(SELECT key FROM messages)")[0][0] == 0
        assert s.query("SELECT count(*) FROM history")[0][0] == 1   # new's one attempt
        assert "deleted 6 messages" in err, err


def test_retention_0_keeps_every_ended_message():
    with Sink() as sink, Stack(config=dict(FAST, retention="0")) as s:
        id_ = s.schedule(url=sink.url("/ok"))["id"]
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        wait_state(s, id_, "delivered")
        time.sleep(1.2)
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        assert status(s, id_)["state"] == "delivered"


def test_a_bad_retention_stops_the_dispatcher_with_the_line_named():
    with Stack() as s:
        with open(s.conf, "a") as f:
            f.write("retention = soon\n")
        rc, err = s.dispatch("--once")
        assert rc == 1, (rc, err)
        assert "retention" in err and ":" in err, err
