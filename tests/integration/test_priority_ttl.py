"""What priority and ttl do for pushed messages (and a queue message's ttl),
through real nginx, the FastCGI programs, SQLite, bin/dispatch and a
recording sink (sink.py): a backlog is claimed lowest priority first and
FIFO within a priority; a message whose ttl runs out is never sent after it,
ends `expired` and gets its callback report, whether its ttl runs out
between rounds, before its first claim, in the middle of a round, or while
it waits in a queue nobody receives from.

Retries are short (retry_base 1 s, retry_max 4 s); times are printed and
only asserted loosely, except the one the contract makes absolute: nothing
reaches a target after the message's expiry.
"""

import json
import time

from harness import Stack
from sink import Sink
from test_dispatch import FAST, iso_to_s, status, wait_state, wait_until

# A request the dispatcher decided to send just before the expiry reaches
# the sink a moment later; the sink stamps it when its headers are read.
SEND_SLACK_S = 0.25


def schedule(s, fields):
    """POST /api/schedule with exactly these fields (a list of pairs or a
    dict); the message's answer."""
    r = s.post_form("/api/schedule", fields)
    assert r.status == 201, r
    return r.json


def report_for(sink, id_, path="/cb", timeout=10):
    """The first callback report about message id_ that reached path."""
    def find():
        for req in sink.requests(path):
            rep = json.loads(req.body)
            if rep.get("id") == id_:
                return rep
        return None
    return wait_until(find, timeout, f"a callback report about {id_} at {path}")


# ---- priority ----

def test_a_backlog_is_delivered_lowest_priority_first_and_fifo_within_a_priority():
    # Concurrency 1: one message in flight at a time, so the order the sink
    # sees is the order the dispatcher claimed them in.
    with Sink() as sink, Stack(config=dict(FAST, concurrency=1, host_concurrency=1)) as s:
        priorities = [5, 0, -3, 1000, 0, -1000, 5, -3, 0, 7, -3, 5, 0, 1000, -1000, 7]
        sent = []
        for i, p in enumerate(priorities):
            m = schedule(s, {"url": sink.url("/p"), "payload": str(i), "priority": str(p)})
            sent.append((p, i, m["id"]))
        assert status(s, sent[0][2]).get("priority") == 5, status(s, sent[0][2])
        # Nobody dispatched yet: the whole backlog is due at once.
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        got = sink.wait_for(len(sent), "/p")
        want = [id_ for _, _, id_ in sorted(sent)]
        arrived = [r.headers.get("webhook-id") for r in got]
        print("priorities in delivery order: " +
              " ".join(str(next(p for p, _, i in sent if i == id_)) for id_ in arrived))
        assert arrived == want, (arrived, want)
        # FIFO within a priority: payloads of equal priority arrive in the
        # order they were scheduled.
        for p in set(priorities):
            seq = [int(r.body) for r in got if priorities[int(r.body)] == p]
            assert seq == sorted(seq), (p, seq)


# ---- ttl of pushed messages ----

def test_a_message_delivered_before_its_ttl_ends_delivered_not_expired():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        m = schedule(s, {"url": sink.url("/ok"), "ttl": "1h", "callback": sink.url("/cb")})
        st = wait_state(s, m["id"], ("delivered", "expired", "failed"))
        assert st["state"] == "delivered", st
        assert abs(iso_to_s(st["expires"]) - (iso_to_s(m["created"]) + 3600)) < 2, st
        assert report_for(sink, m["id"])["state"] == "delivered"
        assert len(sink.requests("/ok")) == 1


def test_a_failing_message_whose_ttl_runs_out_between_retries_ends_expired_unsent_after():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        sink.behave("/down", status=500, body=b"down")
        m = schedule(s, {"url": sink.url("/down"), "ttl": "4s", "max_attempts": "20",
                         "callback": sink.url("/cb")})
        st = wait_state(s, m["id"], ("expired", "failed", "delivered"), timeout=20)
        assert st["state"] == "expired", st
        expires = iso_to_s(st["expires"])
        ended_at = time.time()
        # Rounds 1..3 fall at about 0, 1 and 3 s; the fourth would come
        # after the expiry. Nothing more may arrive, now or later.
        time.sleep(2.5)
        got = sink.requests("/down")
        print(f"{len(got)} rounds before the ttl; expired seen {ended_at - expires:+.2f} s "
              "after it; request times after created: " +
              ", ".join(f"{r.t - iso_to_s(m['created']):.2f}" for r in got))
        assert len(got) >= 2, got
        late = [r for r in got if r.t > expires + SEND_SLACK_S]
        assert not late, (expires, late)
        st = status(s, m["id"])
        assert st["state"] == "expired", st
        assert st["attempts"] == len(got), st
        assert [h["status"] for h in st["history"]] == [500] * len(got), st["history"]
        assert st["delivered_to"] is None and st["delivered_at"] is None, st
        # The callback hears of it, as of any other end.
        rep = report_for(sink, m["id"])
        assert rep["state"] == "expired", rep
        assert rep["url"] is None and rep["delivered_at"] is None, rep
        assert rep["attempts"] == len(got), rep
        assert [h["status"] for h in rep["history"]] == [500] * len(got), rep


def test_an_asap_message_whose_ttl_ran_out_before_its_first_claim_is_never_sent():
    with Sink() as sink, Stack(config=FAST) as s:
        m = schedule(s, {"url": sink.url("/never"), "ttl": "1s", "callback": sink.url("/cb")})
        expires = iso_to_s(status(s, m["id"])["expires"])
        # No dispatcher ran while it lived: the first one to come finds it
        # due, claimable, and run out.
        time.sleep(max(0, expires - time.time()) + 0.3)
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        st = status(s, m["id"])
        assert st["state"] == "expired", (st, err)
        assert st["attempts"] == 0 and st["history"] == [], st
        # One log line says what became of it.
        assert any("expired" in line and m["id"] in line for line in err.splitlines()), err
        rep = report_for(sink, m["id"])
        assert rep["state"] == "expired" and rep["attempts"] == 0, rep
        assert rep["history"] == [] and rep["url"] is None, rep
        time.sleep(0.5)
        assert sink.requests("/never") == [], sink.requests("/never")


def test_no_attempt_of_a_round_starts_after_the_ttl_even_mid_pool():
    # Two URLs that fail slowly: the first attempt is sent in time, its
    # answer comes after the expiry, and the pool's second URL must then
    # not be asked.
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        for path in ("/slow-a", "/slow-b"):
            sink.behave(path, status=500, delay=1.5)
        m = schedule(s, [("url", sink.url("/slow-a")), ("url", sink.url("/slow-b")),
                         ("ttl", "1s"), ("max_attempts", "5"), ("timeout", "5")])
        st = wait_state(s, m["id"], ("expired", "failed", "delivered"), timeout=15)
        assert st["state"] == "expired", st
        time.sleep(2)
        got = sink.requests("/slow-a") + sink.requests("/slow-b")
        assert len(got) == 1, got
        st = status(s, m["id"])
        assert st["state"] == "expired" and st["attempts"] == 1, st
        assert [h["status"] for h in st["history"]] == [500], st["history"]


# ---- ttl of a queue message ----

def test_a_queue_message_nobody_receives_ends_expired_through_the_dispatchers_sweep():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        m = schedule(s, {"queue": "nobody-listens", "payload": "job", "ttl": "1s",
                         "callback": sink.url("/cb")})
        st = wait_state(s, m["id"], ("expired", "failed", "delivered"), timeout=10)
        assert st["state"] == "expired", st
        late = time.time() - iso_to_s(st["expires"])
        print(f"the sweep ended it {late:.2f} s after its ttl (polled through status)")
        rep = report_for(sink, m["id"])
        assert rep["state"] == "expired" and rep["attempts"] == 0, rep
        assert rep["url"] is None and rep["delivered_at"] is None, rep
