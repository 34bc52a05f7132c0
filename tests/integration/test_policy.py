"""The target policy (SSRF guard) through the real programs: schedule
refuses forbidden URLs and callbacks in any spelling, allow_targets opens
ranges, and at delivery the address actually connected to is checked, so
a name that resolves to a forbidden address is never connected to."""

import os
import subprocess

from harness import Stack, TOP
from sink import Sink

DISPATCH = os.path.join(TOP, "bin", "dispatch")

FORBIDDEN = [
    "http://127.0.0.1:9/x", "http://2130706433/", "http://0177.1/", "http://0x7f.0.0.1/",
    "http://localhost/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://10.0.0.1/",
    "http://172.20.1.1/", "http://192.168.0.10/", "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/", "http://0.0.0.0/", "http://[fd00::1]/", "http://[fe80::1]/",
    "http://224.0.0.1/", "http://255.255.255.255/",
]


def test_schedule_refuses_forbidden_targets_naming_the_field():
    with Stack(allow_targets=None) as s:
        for url in FORBIDDEN:
            r = s.post_form("/api/schedule", {"url": url})
            assert r.status == 400, (url, r)
            assert r.json["field"] == "url", (url, r)
            assert "allow_targets" in r.json["error"], (url, r)
        r = s.post_form("/api/schedule", {"url": "https://example.com/hook",
                                          "callback": "http://169.254.169.254/"})
        assert r.status == 400 and r.json["field"] == "callback", r
        assert "link-local" in r.json["error"], r
        r = s.post_json("/api/schedule", {"url": ["https://example.com/a", "http://0177.1/"]})
        assert r.status == 400 and r.json["field"] == "url", r
        # Nothing was written by any of them.
        assert s.query("SELECT count(*) FROM messages") == [(0,)]
        # Public names and addresses are accepted (and never sent: no dispatcher).
        r = s.post_form("/api/schedule", {"url": "https://example.com/hook", "delay": "1h"})
        assert r.status == 201, r


def test_allow_targets_lets_its_ranges_through_and_no_others():
    with Stack(allow_targets="127.0.0.0/8") as s:
        for url in ("http://127.0.0.1:9/x", "http://2130706433:9/", "http://localhost:9/"):
            r = s.post_form("/api/schedule", {"url": url, "delay": "1h"})
            assert r.status == 201, (url, r)
        for url in ("http://[::1]:9/", "http://10.0.0.1/", "http://169.254.169.254/"):
            r = s.post_form("/api/schedule", {"url": url})
            assert r.status == 400 and r.json["field"] == "url", (url, r)


def database_of(s):
    """The stack's database setting: its file, or its PostgreSQL URL."""
    return s.db_url if s.engine == "pg" else s.db_path


def strict_conf(s):
    """A configuration for the same database without allow_targets: the
    default policy, as a production dispatcher would run."""
    path = os.path.join(s.dir, "strict.conf")
    with open(path, "w") as f:
        f.write(f"database = {database_of(s)}\nretry_base = 1\nretry_max = 2\n")
    return path


def test_dispatch_refuses_to_connect_to_a_name_resolving_to_loopback():
    with Sink() as sink, Stack() as s:
        # Accepted at schedule time under a policy that allows loopback...
        m = s.schedule(url=f"http://localhost:{sink.port}/rebound", max_attempts=3)
        later = s.schedule(url=sink.url("/later"), delay="1h")
        # ...then delivered by a dispatcher whose policy does not: what it
        # checks is the address it is about to connect to.
        p = subprocess.run([DISPATCH, "-c", strict_conf(s), "--once"], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert sink.requests() == [], "the dispatcher connected to a loopback address"
        st = s.get("/api/status", {"id": m["id"]}).json
        assert st["state"] == "failed", st
        assert st["attempts"] == 1, "a policy refusal is not retried: " + str(st)
        assert st["urls"] == [], st
        (h,) = st["history"]
        assert h["status"] is None, h
        assert "target policy" in h["error"] and "loopback" in h["error"], h
        assert s.get("/api/status", {"id": later["id"]}).json["state"] == "pending"


def test_a_pool_whose_every_url_is_refused_fails_without_retrying():
    with Sink() as sink, Stack() as s:
        # Two names for the sink, both loopback: each URL is refused and
        # dropped, so the message fails after one round.
        r = s.post_form("/api/schedule", [("url", f"http://localhost:{sink.port}/a"),
                                          ("url", f"http://127.0.0.1:{sink.port}/b")])
        assert r.status == 201, r
        p = subprocess.run([DISPATCH, "-c", strict_conf(s), "--once"], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        st = s.get("/api/status", {"id": r.json["id"]}).json
        assert st["state"] == "failed" and st["attempts"] == 1, st
        assert len(st["history"]) == 2, st
        assert all("target policy" in h["error"] for h in st["history"]), st
        assert sink.requests() == []
        # The same sink under the permissive policy is delivered to.
        m = s.schedule(url=sink.url("/ok"))
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        assert s.get("/api/status", {"id": m["id"]}).json["state"] == "delivered"
        assert len(sink.requests("/ok")) == 1


def test_schedule_refuses_ports_outside_allow_ports_naming_the_field():
    with Stack(allow_targets=None) as s:
        for url in ("http://example.com:25/", "https://example.com:22/x",
                    "http://93.184.215.14:1023/"):
            r = s.post_form("/api/schedule", {"url": url, "delay": "1h"})
            assert r.status == 400 and r.json["field"] == "url", (url, r)
            assert "allow_ports" in r.json["error"], (url, r)
        r = s.post_form("/api/schedule", {"url": "https://example.com/hook", "delay": "1h",
                                          "callback": "http://example.com:587/"})
        assert r.status == 400 and r.json["field"] == "callback", r
        assert "587" in r.json["error"], r
        assert s.query("SELECT count(*) FROM messages") == [(0,)]
        for url in ("http://example.com/", "https://example.com:443/",
                    "http://example.com:8080/"):
            r = s.post_form("/api/schedule", {"url": url, "delay": "1h"})
            assert r.status == 201, (url, r)
    with Stack(allow_targets=None, config={"allow_ports": "25, 443"}) as s:
        assert s.post_form("/api/schedule", {"url": "http://example.com:25/",
                                             "delay": "1h"}).status == 201
        r = s.post_form("/api/schedule", {"url": "http://example.com:8080/", "delay": "1h"})
        assert r.status == 400 and r.json["field"] == "url", r


def test_dispatch_refuses_to_connect_to_a_port_outside_allow_ports():
    with Sink() as sink, Stack() as s:
        # Accepted under the stack's ports, then delivered by a dispatcher
        # whose allow_ports leaves the sink's port out: the port connected
        # to is checked again, as the address is.
        m = s.schedule(url=sink.url("/port"), max_attempts=3)
        path = os.path.join(s.dir, "ports.conf")
        with open(path, "w") as f:
            f.write(f"database = {database_of(s)}\nallow_targets = 127.0.0.0/8\n"
                    "allow_ports = 80, 443\nretry_base = 1\nretry_max = 2\n")
        p = subprocess.run([DISPATCH, "-c", path, "--once"], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert sink.requests() == [], "the dispatcher connected to a port outside allow_ports"
        st = s.get("/api/status", {"id": m["id"]}).json
        assert st["state"] == "failed" and st["attempts"] == 1, st
        (h,) = st["history"]
        assert "target policy" in h["error"] and str(sink.port) in h["error"], h
        assert "allow_ports" in h["error"], h
