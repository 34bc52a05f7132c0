"""bin/postdate, the admin CLI, through the real binary against a real
stack's database (nginx, the FastCGI programs, SQLite, bin/dispatch): what
it shows agrees with the HTTP API, what it changes the API then shows, its
backup taken while messages are scheduled and delivered is a consistent
copy that its check passes, a damaged file fails the check, and its exit
statuses are 0 ok / 1 failure / 2 bad usage.
"""

import glob
import sqlite3
import json
import os
import subprocess
import threading
import time

from harness import TOP, Stack, pg_only, sqlite_only
from sink import Sink
from test_dispatch import FAST, counts, status, wait_state
from test_queues import new_queue, queue_info

POSTDATE = os.path.join(TOP, "bin", "postdate")
COMMANDS = ("status", "list", "cancel", "retry", "queues", "purge", "backup", "check",
            "migrate")


def cli(s, *args, conf=None):
    """Runs bin/postdate -c CONF ARGS: (exit status, stdout, stderr)."""
    p = subprocess.run([POSTDATE, "-c", conf or s.conf, *map(str, args)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def cli_json(s, *args, want=0):
    rc, out, err = cli(s, "--json", *args)
    assert rc == want, (args, rc, out, err)
    lines = out.splitlines()
    assert len(lines) == 1, (args, out)
    return json.loads(lines[0])


def failed_message(s, sink):
    sink.behave("/down", status=500)
    id_ = s.schedule(url=sink.url("/down"), max_attempts="1")["id"]
    rc, err = s.dispatch("--once")
    assert rc == 0, err
    wait_state(s, id_, "failed")
    return id_


def schema_version():
    return len(glob.glob(os.path.join(TOP, "sql", "[0-9][0-9][0-9]-*.sql")))


def test_status_and_list_show_what_the_api_shows():
    with Sink() as sink, Stack(config=FAST) as s:
        failed = failed_message(s, sink)
        pending = [s.schedule(url=sink.url("/x"), delay=f"{i + 1}h", payload=f"p{i}")["id"]
                   for i in range(3)]
        api = status(s, failed)
        got = cli_json(s, "status", failed)
        for key in ("id", "state", "due", "created", "urls", "attempts", "max_attempts",
                    "payload", "history"):
            assert got[key] == api[key], (key, got, api)
        rc, out, err = cli(s, "status", failed)
        assert rc == 0, err
        assert "state         failed" in out and "1 of at most 1" in out, out
        assert "500" in out and sink.url("/down") in out, out

        listed = cli_json(s, "list")
        assert [m["id"] for m in listed["messages"]] == pending, listed
        assert listed["counts"] == counts(s), (listed, counts(s))
        assert [m["id"] for m in cli_json(s, "list", "--state", "failed")["messages"]] == [failed]
        assert len(cli_json(s, "list", "--state=all", "--limit", "2")["messages"]) == 2
        rc, out, err = cli(s, "list", "--state", "all")
        assert rc == 0, err
        for id_ in pending + [failed]:
            assert id_ in out, out
        assert "3 pending" in out and "1 failed" in out, out


def test_cancel_and_retry_change_what_the_api_then_shows():
    with Sink() as sink, Stack(config=FAST) as s:
        failed = [failed_message(s, sink) for _ in range(3)]
        pending = s.schedule(url=sink.url("/x"), delay="1h")["id"]

        assert cli_json(s, "cancel", pending) == {"id": pending, "state": "cancelled"}
        assert status(s, pending)["state"] == "cancelled"
        refused = cli_json(s, "cancel", failed[0], want=1)
        assert refused["state"] == "failed" and refused["error"], refused
        rc, out, err = cli(s, "retry", pending)
        assert rc == 1 and "cancelled" in err, (rc, out, err)

        assert cli_json(s, "retry", failed[0]) == {"id": failed[0], "state": "pending"}
        st = status(s, failed[0])
        assert st["state"] == "pending" and st["attempts"] == 0, st
        rc, out, err = cli(s, "retry", "--state", "failed")
        assert rc == 0, err
        assert out.strip() == "2 failed messages are pending again, due now", out
        assert counts(s)["failed"] == 0 and counts(s)["pending"] == 3, counts(s)
        assert cli_json(s, "retry", "--state", "failed") == {"retried": 0, "state": "failed"}
        # And they are delivered, now that the target answers.
        sink.behave("/down", status=200)
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        for id_ in failed:
            assert wait_state(s, id_, ("delivered", "failed"))["state"] == "delivered"

        rc, out, err = cli(s, "status", "2al57uzzzzzzzzzzzzzzzzzzzz")
        assert rc == 1 and "no message" in err, (rc, out, err)
        assert cli_json(s, "cancel", "nope", want=1)["error"]


def test_queues_shows_each_queue_with_the_figures_of_the_api():
    with Stack() as s:
        q = new_queue(s, visibility=45, max_attempts=3)
        for i in range(2):
            assert s.post_form("/api/schedule", {"queue": q, "payload": str(i)}).status == 201
        assert s.post_form("/api/schedule", {"queue": q, "delay": "1h"}).status == 201
        api = queue_info(s, q)
        got = [x for x in cli_json(s, "queues")["queues"] if x["name"] == q]
        assert len(got) == 1, got
        for key in ("visibility", "max_attempts", "max_depth", "paused", "pending", "ready",
                    "delivering", "failed", "delivered"):
            assert got[0][key] == api[key], (key, got, api)
        assert (got[0]["pending"], got[0]["ready"]) == (3, 2), got
        rc, out, err = cli(s, "queues")
        assert rc == 0, err
        row = [line for line in out.splitlines() if line.startswith(q)]
        assert len(row) == 1 and row[0].split()[1:3] == ["2", "3"], out


def test_purge_deletes_what_ended_before_the_age_and_keeps_the_rest():
    with Sink() as sink, Stack(config=FAST) as s:
        ended = [failed_message(s, sink)]
        ended.append(s.schedule(url=sink.url("/ok"))["id"])
        rc, err = s.dispatch("--once")
        assert rc == 0, err
        wait_state(s, ended[1], "delivered")
        pending = s.schedule(url=sink.url("/x"), delay="1h")["id"]

        assert cli_json(s, "purge", "--older-than", "1h")["purged"] == 0
        assert all(s.get("/api/status", {"id": i}).status == 200 for i in ended)
        time.sleep(0.05)
        got = cli_json(s, "purge", "--older-than", "0")
        assert got["purged"] == 2, got
        for id_ in ended:
            assert s.get("/api/status", {"id": id_}).status == 404
        assert status(s, pending)["state"] == "pending"
        c = counts(s)
        assert (c["pending"], c["delivered"], c["failed"]) == (1, 0, 0), c
        rc, out, err = cli(s, "purge", "--older-than", "soon")
        assert rc == 2 and "older-than" in err, (rc, out, err)


@sqlite_only("postdate backup copies an SQLite file; PostgreSQL has pg_dump")
def test_a_backup_taken_while_messages_are_scheduled_and_delivered_is_consistent():
    with Sink() as sink, Stack(config=FAST, dispatcher=True) as s:
        stop = threading.Event()
        scheduled = []

        def producer():
            while not stop.is_set():
                r = s.post_form("/api/schedule", {"url": sink.url("/ok"), "payload": "x" * 500})
                assert r.status == 201, r
                scheduled.append(r.json["id"])

        threads = [threading.Thread(target=producer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until_delivered = time.time() + 30
            while counts(s)["delivered"] < 200 and time.time() < wait_until_delivered:
                time.sleep(0.05)
            copies = []
            for i in range(3):
                path = os.path.join(s.dir, f"backup-{i}.db")
                got = cli_json(s, "backup", path)
                assert got["backup"] == path and got["bytes"] > 0, got
                assert got["schema_version"] == schema_version(), got
                copies.append(path)
                # The live database, checked in one snapshot while it changes.
                live = cli_json(s, "check")
                assert live["ok"] is True and live["problems"] == [], live
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert counts(s)["delivered"] >= 200, counts(s)

        for path in copies:
            assert not glob.glob(path + ".partial-*")
            rc, out, err = cli(s, "check", path)
            assert rc == 0, (out, err)
            assert f"{path}: integrity ok, schema version {schema_version()} (current)" in out, out
            checked = cli_json(s, "check", path)
            assert checked["ok"] is True and checked["problems"] == [], checked
            # One snapshot: the counts the store keeps agree with the rows.
            conf = os.path.join(s.dir, "copy.conf")
            with open(conf, "w") as f:
                f.write(f"database = {path}\n")
            listed = json.loads(cli(s, "--json", "list", "--state", "all", "--limit", "1",
                                    conf=conf)[1])
            db = sqlite3.connect(path)
            try:
                rows = dict(db.execute("SELECT state, count(*) FROM messages WHERE state <> 0 "
                                       "GROUP BY state").fetchall())
                alive = db.execute("SELECT count(*) FROM live").fetchone()[0]
                leased = db.execute("SELECT count(*) FROM live WHERE token <> 0").fetchone()[0]
            finally:
                db.close()
            c = listed["counts"]
            assert c["delivered"] == rows.get(2, 0) and c["delivered"] > 0, (c, rows)
            assert c["pending"] + c["delivering"] == alive, (c, alive)
            assert c["delivering"] == leased, (c, leased)
            assert c["delivered"] + c["pending"] + c["delivering"] <= len(scheduled)

        rc, out, err = cli(s, "backup", copies[0])
        assert rc == 1 and "already exists" in err, (rc, out, err)


@sqlite_only("it damages the SQLite file")
def test_check_finds_a_damaged_database_and_an_unreadable_file():
    with Stack() as s:
        for i in range(300):
            s.schedule(delay="1h", payload="y" * 200)
        copy = os.path.join(s.dir, "copy.db")
        assert cli_json(s, "backup", copy)["bytes"] > 0
        assert cli(s, "check", copy)[0] == 0
        size = os.path.getsize(copy)
        with open(copy, "r+b") as f:
            # Pages in the middle (tables and indexes), not the header.
            f.seek(size // 2)
            f.write(b"\xa5" * 8192)
        rc, out, err = cli(s, "check", copy)
        assert rc == 1, (rc, out, err)
        assert "integrity FAILED" in out and "problem: " in out, (out, err)
        got = cli_json(s, "check", copy, want=1)
        assert got["ok"] is False and got["problems"], got

        # Counts that disagree with the rows they count are a problem too.
        copy = os.path.join(s.dir, "copy2.db")
        assert cli_json(s, "backup", copy)["bytes"] > 0
        assert cli_json(s, "check", copy)["problems"] == []
        db = sqlite3.connect(copy)
        db.execute("UPDATE counts SET n = n + 1 WHERE state = 2")
        db.commit()
        db.close()
        got = cli_json(s, "check", copy, want=1)
        assert got["problems"] == ["counts 1 delivered messages, and 0 are stored"], got

        garbage = os.path.join(s.dir, "garbage.db")
        with open(garbage, "wb") as f:
            f.write(b"this is not a database\n" * 100)
        rc, out, err = cli(s, "check", garbage)
        assert rc == 1, (rc, out, err)
        rc, out, err = cli(s, "check", os.path.join(s.dir, "missing.db"))
        assert rc == 1 and "no database" in err, (rc, out, err)


def test_migrate_creates_a_database_and_says_its_version():
    with Stack() as s:
        conf = os.path.join(s.dir, "new.conf")
        path = os.path.join(s.dir, "new.db")
        with open(conf, "w") as f:
            f.write(f"database = {path}\n")
        rc, out, err = cli(s, "list", conf=conf)
        assert rc == 1 and "postdate migrate" in err and not os.path.exists(path), (out, err)
        rc, out, err = cli(s, "migrate", conf=conf)
        assert rc == 0, err
        assert out.strip() == f"{path}: schema version 0 -> {schema_version()} " \
                              f"({schema_version()} migrations)", out
        assert json.loads(cli(s, "--json", "migrate", conf=conf)[1]) == {
            "database": path, "from": schema_version(), "to": schema_version()}
        assert cli(s, "check", conf=conf)[0] == 0


def test_help_and_exit_statuses():
    with Stack() as s:
        p = subprocess.run([POSTDATE, "--help"], capture_output=True, text=True)
        assert p.returncode == 0, p
        for name in COMMANDS:
            assert f"  {name} " in p.stdout, (name, p.stdout)
            q = subprocess.run([POSTDATE, name, "--help"], capture_output=True, text=True)
            assert q.returncode == 0 and q.stdout.startswith("usage: postdate"), (name, q)
        assert subprocess.run([POSTDATE], capture_output=True).returncode == 2
        for args in (["frob"], ["--nope", "list"], ["list", "--limit", "0"],
                     ["list", "--state", "sleeping"], ["list", "--queue", "bad name"],
                     ["list", "extra"], ["status"], ["status", "a", "b"], ["retry"],
                     ["retry", "--state", "delivered"], ["purge"], ["backup"],
                     ["queues", "x"], ["check", "a", "b"]):
            rc, out, err = cli(s, *args)
            assert rc == 2, (args, rc, out, err)
        bad = os.path.join(s.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("retention = soon\n")
        rc, out, err = cli(s, "list", conf=bad)
        assert rc == 1 and "bad.conf:1" in err, (rc, out, err)


def test_the_man_page_is_clean_under_man_warnings_and_names_every_command():
    page = os.path.join(TOP, "man", "postdate.1")
    p = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    for name in COMMANDS:
        assert f"\n       {name}" in p.stdout, (name, p.stdout[:2000])
    assert "EXIT STATUS" in p.stdout


@pg_only("SQLite databases are backed up by postdate backup (the test above)")
def test_on_postgresql_backup_names_pg_dump_and_check_compares_the_counts():
    with Stack() as s:
        for _ in range(3):
            assert s.schedule(delay="1h")["id"]
        rc, out, err = cli(s, "backup", os.path.join(s.dir, "copy.db"))
        assert rc == 1 and "pg_dump" in err, (rc, out, err)
        assert not os.path.exists(os.path.join(s.dir, "copy.db"))
        got = cli_json(s, "check")
        assert got["ok"] is True and got["problems"] == [], got
        assert got["schema_version"] == got["known_version"], got
        # A count that no longer matches its rows is a problem, named.
        s.execute("UPDATE counts SET n = n + 5 WHERE state = 0 AND shard = "
                  "(SELECT min(shard) FROM counts WHERE state = 0)")
        got = cli_json(s, "check", want=1)
        assert got["ok"] is False, got
        assert any("counts 8 pending messages, and 3 are stored" in p
                   for p in got["problems"]), got


@pg_only("an SQLite path holds no password")
def test_a_password_in_the_database_url_is_never_printed_or_logged():
    with Stack() as s:
        # The test cluster trusts loopback: any password connects, and none
        # may show. Both forms libpq takes: userinfo and a query parameter.
        secret_url = s.db_url.replace("postgres@", "postgres:s3cretA@", 1) + \
            "?password=s3cretB&application_name=cli"
        assert "s3cretA" in secret_url
        conf = os.path.join(s.dir, "secret.conf")
        with open(conf, "w") as f:
            f.write(f"database = {secret_url}\n")
        shown = []
        for args in (("migrate",), ("--json", "migrate"), ("check",), ("--json", "check"),
                     ("backup", os.path.join(s.dir, "x.db")), ("list",)):
            rc, out, err = cli(s, *args, conf=conf)
            shown.append((args, rc, out, err))
        text = repr(shown)
        assert "s3cretA" not in text and "s3cretB" not in text, text
        # The commands did their work (the URL was used, not refused).
        assert shown[0][1] == 0 and shown[2][1] == 0, text
        assert "***" in shown[0][2], text
        bad = secret_url.replace(f":{s.db_url.split(':')[2].split('/')[0]}/", ":9/", 1)
        with open(conf, "w") as f:
            f.write(f"database = {bad}\n")
        rc, out, err = cli(s, "list", conf=conf)
        assert rc == 1 and "s3cret" not in out + err, (rc, out, err)
