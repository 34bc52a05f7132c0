"""Topics (API.md v2, "Topics: fan-out"): subscriptions of URL pools and
queues, a publish that makes one message per subscription in one
transaction, through real nginx, the FastCGI programs, SQLite, a real
dispatcher and a sink.

What the others get wrong, each a test here:
- Linger's publish skips a full channel and still answers 202:
  test_a_full_subscribed_queue_refuses_the_whole_publish_and_writes_nothing;
- a topic without subscribers swallows the message:
  test_a_topic_without_subscriptions_is_a_404_and_writes_nothing.
"""

import json
import time

from harness import Stack
from sink import Sink
from test_api import assert_json_error

FAST = {"retry_base": 1, "retry_max": 2}


def subscribe(s, topic, name, want=201, **fields):
    pairs = [("topic", topic), ("name", name)]
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            pairs.append((key, v))
    r = s.post_form("/api/subscribe", pairs)
    assert r.status == want, r
    return r.json


def publish(s, topic, want=201, **fields):
    r = s.post_form("/api/schedule", dict(topic=topic, **fields))
    assert r.status == want, r
    return r.json


def status(s, id_):
    r = s.get("/api/status", {"id": id_})
    assert r.status == 200, r
    return r.json


def receive(s, queue, **fields):
    r = s.post_form("/api/receive", dict(queue=queue, **fields))
    assert r.status == 200, r
    return r.json["messages"]


def wait_state(s, id_, state, timeout=15):
    deadline = time.time() + timeout
    while True:
        got = status(s, id_)
        if got["state"] == state or time.time() > deadline:
            return got
        time.sleep(0.05)


def test_one_publish_reaches_each_url_subscription_once_and_the_queue_once():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        for name in ("a", "b", "c"):
            subscribe(s, "orders", name, url=sink.url(f"/{name}"),
                      callback=sink.url(f"/cb-{name}"))
        subscribe(s, "orders", "work", queue="orders.work")
        topics = s.get("/api/topics").json["topics"]
        assert [t["name"] for t in topics] == ["orders"], topics
        subs = {x["name"]: x for x in topics[0]["subscriptions"]}
        assert sorted(subs) == ["a", "b", "c", "work"], subs
        assert subs["work"]["queue"] == "orders.work" and subs["work"]["urls"] is None
        assert subs["a"]["urls"] == [sink.url("/a")] and subs["a"]["queue"] is None

        now = publish(s, "orders", payload="order 1")
        later = publish(s, "orders", payload="order 2", delay="2s")
        for p in (now, later):
            assert p["topic"] == "orders", p
            got = {d["subscription"]: d["id"] for d in p["deliveries"]}
            assert sorted(got) == ["a", "b", "c", "work"], p
            assert len(set(got.values())) == 4, p     # a message of its own each
        for name in ("a", "b", "c"):
            reqs = sink.wait_for(2, f"/{name}", timeout=15)
            assert sorted(r.body for r in reqs) == [b"order 1", b"order 2"], reqs
        # The queue has each publish once, as a message of its own.
        time.sleep(2.2)
        jobs = receive(s, "orders.work", max=10)
        assert sorted(j["payload"] for j in jobs) == ["order 1", "order 2"], jobs
        assert receive(s, "orders.work", max=10) == []
        # Each copy has its own status, naming its topic and subscription,
        # and its own callback report.
        for p in (now, later):
            for d in p["deliveries"]:
                st = status(s, d["id"])
                assert st["topic"] == "orders" and st["subscription"] == d["subscription"], st
                if d["subscription"] != "work":
                    assert wait_state(s, d["id"], "delivered")["state"] == "delivered"
        for name in ("a", "b", "c"):
            reports = sink.wait_for(2, f"/cb-{name}", timeout=15)
            assert {json.loads(r.body)["id"] for r in reports} == \
                {d["id"] for p in (now, later) for d in p["deliveries"]
                 if d["subscription"] == name}, reports
        # Nothing arrived twice.
        time.sleep(1)
        for name in ("a", "b", "c"):
            assert len(sink.requests(f"/{name}")) == 2


def test_a_failing_subscriber_is_retried_alone():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        sink.behave("/flaky", status=[500, 500, 200])
        subscribe(s, "news", "ok", url=sink.url("/ok"))
        subscribe(s, "news", "flaky", url=sink.url("/flaky"), max_attempts="5")
        p = publish(s, "news", payload="headline")
        ids = {d["subscription"]: d["id"] for d in p["deliveries"]}
        assert wait_state(s, ids["flaky"], "delivered", timeout=20)["attempts"] == 3
        assert len(sink.requests("/flaky")) == 3
        # The healthy subscriber got its copy once, whatever its sibling did.
        assert len(sink.requests("/ok")) == 1
        assert status(s, ids["ok"])["attempts"] == 1


def test_unsubscribe_stops_later_publishes_only(stack):
    subscribe(stack, "unsub.t", "stays", url="http://127.0.0.1:9/stays")
    subscribe(stack, "unsub.t", "goes", url="http://127.0.0.1:9/goes")
    before = publish(stack, "unsub.t", payload="1", delay="1h")
    r = stack.post_form("/api/unsubscribe", {"topic": "unsub.t", "name": "goes"})
    assert r.status == 200 and r.json["unsubscribed"] is True, r
    after = publish(stack, "unsub.t", payload="2", delay="1h")
    assert [d["subscription"] for d in after["deliveries"]] == ["stays"], after
    # The copy made before is still there, pending.
    gone = [d["id"] for d in before["deliveries"] if d["subscription"] == "goes"][0]
    assert status(stack, gone)["state"] == "pending"
    r = stack.post_form("/api/unsubscribe", {"topic": "unsub.t", "name": "goes"})
    assert_json_error(r, 404, "name")


def test_a_topic_without_subscriptions_is_a_404_and_writes_nothing(stack):
    before, published = stack.count(), stack.count("publishes")
    assert_json_error(stack.post_form("/api/schedule", {"topic": "nobody", "payload": "x"}),
                      404, "topic")
    subscribe(stack, "emptied", "only", url="http://127.0.0.1:9/x")
    stack.post_form("/api/unsubscribe", {"topic": "emptied", "name": "only"})
    assert_json_error(stack.post_form("/api/schedule", {"topic": "emptied", "payload": "x"}),
                      404, "topic")
    assert stack.count() == before and stack.count("publishes") == published
    t = stack.get("/api/topics", {"name": "emptied"})
    assert t.status == 200 and t.json == {"name": "emptied", "subscriptions": []}, t
    assert_json_error(stack.get("/api/topics", {"name": "never.made"}), 404, "name")


def test_a_full_subscribed_queue_refuses_the_whole_publish_and_writes_nothing(stack):
    r = stack.post_form("/api/queues", {"name": "full.q", "max_depth": "1"})
    assert r.status == 200, r
    subscribe(stack, "fan.full", "url", url="http://127.0.0.1:9/u")
    subscribe(stack, "fan.full", "q", queue="full.q")
    publish(stack, "fan.full", payload="fits", delay="1h")
    before = stack.count()
    r = stack.post_form("/api/schedule", {"topic": "fan.full", "payload": "no room"})
    assert_json_error(r, 507, "topic")
    assert "q" in r.json["error"], r
    assert stack.count() == before
    q = stack.get("/api/queues", {"name": "full.q"}).json
    assert q["pending"] == 1, q


def test_an_idempotency_key_covers_the_whole_publish(stack):
    subscribe(stack, "idem.t", "one", url="http://127.0.0.1:9/1")
    subscribe(stack, "idem.t", "two", queue="idem.q")
    first = publish(stack, "idem.t", payload="p", idempotency_key="pub-1", delay="1h")
    before = stack.count()
    again = publish(stack, "idem.t", want=200, payload="p", idempotency_key="pub-1",
                    delay="1h")
    assert again["deliveries"] == first["deliveries"], (first, again)
    assert again["created"] == first["created"]
    assert stack.count() == before
    r = stack.post_form("/api/schedule", {"topic": "idem.t", "payload": "other",
                                          "idempotency_key": "pub-1"})
    assert_json_error(r, 409, "idempotency_key")


def test_a_subscription_is_replaced_by_name(stack):
    made = subscribe(stack, "repl.t", "s", url="http://127.0.0.1:9/old")
    again = subscribe(stack, "repl.t", "s", want=200, url="http://127.0.0.1:9/new",
                      max_attempts="2")
    assert again["urls"] == ["http://127.0.0.1:9/new"] and again["max_attempts"] == 2, again
    assert again["created"] == made["created"], (made, again)
    p = publish(stack, "repl.t", payload="x", delay="1h")
    st = status(stack, p["deliveries"][0]["id"])
    assert st["urls"] == ["http://127.0.0.1:9/new"] and st["max_attempts"] == 2, st


def test_bad_subscribe_and_publish_requests_are_400s_naming_the_field(stack):
    before = stack.count("subscriptions")
    cases = [
        ({"name": "x", "url": "http://127.0.0.1:9/"}, "topic"),
        ({"topic": "t", "url": "http://127.0.0.1:9/"}, "name"),
        ({"topic": "bad name", "name": "x", "url": "http://127.0.0.1:9/"}, "topic"),
        ({"topic": "t", "name": "x"}, "url"),
        ({"topic": "t", "name": "x", "url": "ftp://127.0.0.1/"}, "url"),
        ({"topic": "t", "name": "x", "queue": "q", "url": "http://127.0.0.1:9/"}, "queue"),
        ({"topic": "t", "name": "x", "queue": "q", "timeout": "5"}, "timeout"),
        ({"topic": "t", "name": "x", "url": "http://127.0.0.1:9/", "payload": "p"}, "payload"),
        ({"topic": "t", "name": "x", "url": "http://127.0.0.1:9/", "max_attempts": "0"},
         "max_attempts"),
    ]
    for fields, field in cases:
        assert_json_error(stack.post_form("/api/subscribe", fields), 400, field)
    assert stack.count("subscriptions") == before
    for fields, field in [({"topic": "t", "url": "http://127.0.0.1:9/"}, "url"),
                          ({"topic": "t", "callback": "http://127.0.0.1:9/"}, "callback"),
                          ({"topic": "t", "max_attempts": "2"}, "max_attempts"),
                          ({"topic": "a/b"}, "topic")]:
        assert_json_error(stack.post_form("/api/schedule", fields), 400, field)
    assert_json_error(stack.post_form("/api/unsubscribe", {"topic": "t"}), 400, "name")
    assert_json_error(stack.post_form("/api/unsubscribe", {"topic": "t", "name": "x",
                                                           "extra": "1"}), 400, "extra")


def test_a_publish_to_200_subscriptions_is_one_transaction(stack):
    for i in range(200):
        subscribe(stack, "wide", f"s{i:03d}", url=f"http://127.0.0.1:9/w{i}")
    before = stack.count()
    start = time.time()
    p = publish(stack, "wide", payload="to everyone", delay="1h")
    took = time.time() - start
    print(f"publish to 200 subscriptions: {took * 1000:.1f} ms")
    assert len(p["deliveries"]) == 200
    assert stack.count() == before + 200
    # One transaction: every copy has the same creation time, written by the
    # one commit that made the publish.
    created = {status(stack, d["id"])["created"] for d in p["deliveries"][::20]}
    assert created == {p["created"]}, created
    rows = stack.query("SELECT count(DISTINCT created), count(*) FROM messages WHERE publish = "
                       "(SELECT publish FROM messages WHERE id = ?)", p["deliveries"][0]["id"])
    assert rows == [(1, 200)], rows


def test_a_subscriptions_method_and_headers_go_with_each_copy_and_show_as_names():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        made = subscribe(s, "hdr.t", "put", url=sink.url("/put"), method="PUT",
                         header=["Authorization: Bearer sub-secret-1", "X-Kind: order"])
        assert made["method"] == "PUT" and made["headers"] == ["Authorization", "X-Kind"], made
        assert "sub-secret-1" not in s.get("/api/topics").body
        p = publish(s, "hdr.t", payload="body")
        req = sink.wait_for(1, "/put", timeout=15)[0]
        assert req.method == "PUT" and req.body == b"body", req
        assert req.headers.get("Authorization") == "Bearer sub-secret-1", req.headers
        assert req.headers.get("X-Kind") == "order"
        st = status(s, p["deliveries"][0]["id"])
        assert st["method"] == "PUT" and st["headers"] == ["Authorization", "X-Kind"], st
        # A publish takes its copies' method and headers from the subscription.
        for field in ("method", "header"):
            value = "PUT" if field == "method" else "X-A: b"
            assert_json_error(s.post_form("/api/schedule", {"topic": "hdr.t", field: value}),
                              400, field)
        assert "sub-secret-1" not in s.log()


def test_retention_forgets_a_publish_once_its_copies_are_gone():
    # Regression: retention deleted a publish's copies but kept the publish,
    # so its idempotency key answered 200 with no deliveries ever after.
    with Sink() as sink, Stack(config=dict(FAST, retention="2s")) as s:
        subscribe(s, "kept.t", "one", url=sink.url("/one"))
        first = publish(s, "kept.t", payload="p", idempotency_key="daily-1")
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        wait_state(s, first["deliveries"][0]["id"], "delivered")
        time.sleep(2.5)
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        assert s.get("/api/status", {"id": first["deliveries"][0]["id"]}).status == 404
        again = publish(s, "kept.t", payload="p", idempotency_key="daily-1")
        assert len(again["deliveries"]) == 1, again
        assert again["deliveries"] != first["deliveries"]
        assert s.count("publishes") == 1
