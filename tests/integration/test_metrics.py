"""GET /api/metrics (API.md "Again, retention and metrics") through real nginx,
cgi-bin/metrics, SQLite and bin/dispatch, read with a real Prometheus parser:
prometheus_client's text_string_to_metric_families (Debian's
python3-prometheus-client, installed by etc/deps.sh).

The figures are checked after scheduling, delivering, failing, expiring, cancelling,
receiving and acknowledging known messages; the counters are checked to
count since the database was made (they survive a restart of the stack).
"""

import sys
import time

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's package sits in the system Python's dist-packages, which
    # another python3 on PATH (pyenv, a venv) does not read; the parser is
    # pure Python.
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

from harness import Stack
from sink import Sink


def scrape(s):
    """The scrape parsed: {(sample name, ((label, value), ...)): value}, and
    {family name: family}. Fails unless it is 200 in the text format."""
    r = s.get("/api/metrics")
    assert r.status == 200, r
    ctype = r.header("Content-Type") or ""
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    samples, families = {}, {}
    for family in text_string_to_metric_families(r.body):
        assert family.name.startswith("postdate_"), family.name
        assert family.documentation, family.name        # a HELP line
        assert family.type in ("gauge", "counter"), (family.name, family.type)
        families[family.name] = family
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, key
            samples[key] = sample.value
    return samples, families


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_without_the_token_is_401(stack):
    r = stack.get("/api/metrics", token=None)
    assert r.status == 401, r
    assert r.header("WWW-Authenticate") == "Bearer", r.headers
    assert r.json["error"], r
    r = stack.get("/api/metrics", token="not-the-token")
    assert r.status == 401, r
    assert "postdate_messages" not in r.body
    r = stack.post_form("/api/metrics", {})
    assert r.status == 405, r
    r = stack.get("/api/metrics", {"format": "json"})
    assert r.status == 400 and r.json["field"] == "format", r


def test_metrics_parse_and_every_family_has_help_type_and_the_postdate_prefix(stack):
    samples, families = scrape(stack)
    for name in ("postdate_messages", "postdate_oldest_overdue_seconds",
                 "postdate_queue_pending", "postdate_queue_ready",
                 "postdate_queue_delivering", "postdate_queue_oldest_ready_seconds",
                 "postdate_build_info"):
        assert families[name].type == "gauge", name
    # The parser names a counter's family without its _total.
    for name in ("postdate_messages_made", "postdate_deliveries", "postdate_attempts",
                 "postdate_receives"):
        assert families[name].type == "counter", name
    assert {dict(k[1])["state"] for k in samples if k[0] == "postdate_messages"} == {
        "pending", "delivering", "delivered", "failed", "cancelled", "expired"}
    assert {dict(k[1])["outcome"] for k in samples if k[0] == "postdate_attempts_total"} == {
        "2xx", "3xx", "4xx", "5xx", "other", "no_answer"}
    assert {dict(k[1])["outcome"] for k in samples if k[0] == "postdate_deliveries_total"} == {
        "delivered", "failed", "expired", "cancelled"}
    assert [dict(k[1]) for k in samples if k[0] == "postdate_build_info"][0]["version"]


def test_metrics_count_what_was_scheduled_delivered_failed_expired_cancelled_and_received():
    with Sink() as sink, Stack(config={"retry_base": 1, "retry_max": 4}) as s:
        sink.behave("/ok", 200)
        sink.behave("/broken", 500)
        before, _ = scrape(s)
        assert value(before, "postdate_messages_made_total") == 0
        assert value(before, "postdate_oldest_overdue_seconds") == 0

        # Its callback report is a message too: made, tried and delivered.
        ok = s.schedule(url=sink.url("/ok"), payload="a", callback=sink.url("/report"))
        s.schedule(url=sink.url("/broken"), payload="b", max_attempts=1)
        # Nothing listens on port 9: no answer at all.
        s.schedule(url="http://127.0.0.1:9/hook", payload="c", max_attempts=1)
        later = s.schedule(url=sink.url("/ok"), payload="d", delay="1h")
        # Due now with a second to live: by the time a dispatcher runs, expired.
        short = s.schedule(url=sink.url("/ok"), payload="f", ttl="1s")
        gone = s.schedule(url=sink.url("/ok"), payload="e", delay="1h")
        assert s.post_form("/api/cancel", {"id": gone["id"]}).status == 200
        queue = "jobs-metrics"
        for i in range(2):
            r = s.post_form("/api/schedule", {"queue": queue, "payload": f"job {i}"})
            assert r.status == 201, r
        r = s.post_form("/api/schedule", {"queue": queue, "payload": "tomorrow",
                                          "delay": "1d"})
        assert r.status == 201, r

        # No dispatcher runs: the three due messages grow overdue.
        time.sleep(1.2)
        mid, _ = scrape(s)
        overdue = value(mid, "postdate_oldest_overdue_seconds")
        assert 1.0 <= overdue < 120, overdue
        assert value(mid, "postdate_messages", state="pending") == 8
        assert value(mid, "postdate_messages", state="cancelled") == 1
        assert value(mid, "postdate_messages_made_total") == 9
        assert value(mid, "postdate_deliveries_total", outcome="cancelled") == 1
        assert value(mid, "postdate_queue_pending", queue=queue) == 3
        assert value(mid, "postdate_queue_ready", queue=queue) == 2
        assert value(mid, "postdate_queue_delivering", queue=queue) == 0
        assert value(mid, "postdate_queue_oldest_ready_seconds", queue=queue) >= 1.0

        rc, err = s.dispatch("--once")
        assert rc == 0, err
        sink.wait_for(1, "/ok")
        sink.wait_for(1, "/report")
        r = s.post_form("/api/receive", {"queue": queue})
        assert r.status == 200 and len(r.json["messages"]) == 1, r
        job = r.json["messages"][0]
        leased, _ = scrape(s)
        assert value(leased, "postdate_queue_pending", queue=queue) == 2
        assert value(leased, "postdate_queue_ready", queue=queue) == 1
        assert value(leased, "postdate_queue_delivering", queue=queue) == 1
        assert value(leased, "postdate_receives_total") == 1
        r = s.post_form("/api/ack", {"id": job["id"], "receipt": job["receipt"]})
        assert r.status == 200, r

        after, _ = scrape(s)
        assert value(after, "postdate_oldest_overdue_seconds") == 0
        # Delivered: ok, its report and the acked job; failed: broken and
        # port 9; pending: later, a job and tomorrow's.
        assert value(after, "postdate_messages", state="delivered") == 3
        assert value(after, "postdate_messages", state="failed") == 2
        assert value(after, "postdate_messages", state="expired") == 1
        assert value(after, "postdate_messages", state="pending") == 3
        assert value(after, "postdate_messages", state="delivering") == 0
        assert value(after, "postdate_messages_made_total") == 10
        assert value(after, "postdate_deliveries_total", outcome="delivered") == 3
        assert value(after, "postdate_deliveries_total", outcome="failed") == 2
        assert value(after, "postdate_deliveries_total", outcome="expired") == 1
        assert value(after, "postdate_deliveries_total", outcome="cancelled") == 1
        assert value(after, "postdate_attempts_total", outcome="2xx") == 2
        assert value(after, "postdate_attempts_total", outcome="5xx") == 1
        assert value(after, "postdate_attempts_total", outcome="no_answer") == 1
        assert value(after, "postdate_attempts_total", outcome="4xx") == 0
        assert value(after, "postdate_receives_total") == 1
        assert value(after, "postdate_queue_delivering", queue=queue) == 0
        assert value(after, "postdate_queue_pending", queue=queue) == 2
        assert s.get("/api/status", {"id": ok["id"]}).json["state"] == "delivered"
        assert s.get("/api/status", {"id": later["id"]}).json["state"] == "pending"
        assert s.get("/api/status", {"id": short["id"]}).json["state"] == "expired"

        # Counted in the database, not in a process: a restarted stack (new
        # workers) goes on from the same figures.
        s.stop()
        s.start()
        again, _ = scrape(s)
        for key, v in after.items():
            if key[0].endswith("_total"):
                assert again[key] == v, (key, again[key], v)


def test_metrics_count_only_what_was_stored():
    # A repeat of an idempotency key, a 507 at max_pending and a 400 store
    # nothing, so they count nothing.
    with Stack(config={"max_pending": 2}) as s:
        first = s.schedule(payload="a", delay="1h", idempotency_key="k-1")
        r = s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/hook", "payload": "a",
                                          "delay": "1h", "idempotency_key": "k-1"})
        assert r.status == 200 and r.json["id"] == first["id"], r
        s.schedule(payload="b", delay="1h")
        r = s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/hook", "delay": "1h"})
        assert r.status == 507, r
        r = s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/hook", "dealy": "1h"})
        assert r.status == 400, r
        samples, _ = scrape(s)
        assert value(samples, "postdate_messages_made_total") == 2
        assert value(samples, "postdate_messages", state="pending") == 2
        # A cancel of a message already cancelled ends nothing more.
        for _ in range(2):
            assert s.post_form("/api/cancel", {"id": first["id"]}).status == 200
        samples, _ = scrape(s)
        assert value(samples, "postdate_deliveries_total", outcome="cancelled") == 1
