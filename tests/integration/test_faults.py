"""Fault tests: postdate under kill -9, contention, a full disk, targets that
misbehave and SIGTERM, through real nginx, the FastCGI programs, SQLite and
bin/dispatch, on loopback only.

Every test asserts what must hold (nothing lost, nothing half-written,
counts that agree, errors that are JSON) and prints the figures it saw:
kills, messages, duplicates, timings. Random choices are seeded and the
seed printed, so a failure can be replayed with FAULT_SEED=<seed>.

BadTarget (below) is a raw-socket HTTP target that misbehaves on purpose;
sink.py is the well-behaved one.
"""

import collections
import os
import random
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pg
from harness import Stack, TOP
from sink import Sink
from test_dispatch import (counts, iso_to_s, ms, pct, s_to_iso, schedule_many, status,
                           wait_delivered, wait_state)

STATES = ("pending", "delivering", "delivered", "failed", "cancelled", "expired")
# Retries kept short: rounds 1 s, then 2 s apart (each give or take a fifth).
FAST = {"retry_base": 1, "retry_max": 2}


def rng_for(name):
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"{name}: seed {seed} (FAULT_SEED={seed} replays it)")
    return random.Random(seed)


# ---- reading the store ----

def db_counts(s):
    """Messages per state, counted row by row."""
    got = dict(s.query(f"SELECT {s.STATE_OF}, count(*) FROM {s.FROM} GROUP BY 1"))
    return {st: got.get(st, 0) for st in STATES}


def assert_counts_agree(s, what=""):
    """The list's counts (kept by the store's per-transaction deltas in
    counts) are the real counts of the messages; returns them."""
    api = counts(s)
    # On PostgreSQL a state's count is kept in shards: their sum.
    table = {STATES[k]: n for k, n in
             s.query("SELECT state, sum(n) FROM counts GROUP BY state")}
    real = db_counts(s)
    assert api == real, f"{what}: /api/status counts {api} but the table holds {real}"
    assert table == real, f"{what}: counts {table} but the table holds {real}"
    return real


def stored_rows(s):
    """Each message as the store holds it, by id: (id, key, urls, payload,
    content type, state, attempts, buffered, next due, due, created)."""
    return {r[0]: r for r in s.query(
        f"SELECT m.id, m.idempotency_key, m.urls, p.payload, m.content_type, {s.STATE_OF}, "
        f"coalesce(l.attempts, m.attempts), l.buffered, l.due, m.due, m.created "
        f"FROM {s.FROM}")}


def integrity(s):
    db = sqlite3.connect(s.db_path, timeout=10)
    try:
        ok = db.execute("PRAGMA integrity_check").fetchall()
        fk = db.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        db.close()
    return ok, fk


def assert_json_error(r, status):
    assert r.status == status, r
    assert (r.header("Content-Type") or "").startswith("application/json"), (r, r.headers)
    assert isinstance(r.json, dict) and isinstance(r.json.get("error"), str) and \
        r.json["error"] and "field" in r.json, r


def stop_dispatcher(s, p, timeout=20):
    """SIGTERM, then the exit status; a dispatcher that does not stop fails."""
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError(f"dispatch did not stop within {timeout} s of SIGTERM:\n" +
                             s.dispatch_log(p)[-2000:])


# ---- kill -9 of the dispatcher ----

def test_kill_9_of_dispatch_at_random_moments_loses_nothing_and_counts_agree():
    # test_dispatch kills a dispatcher of concurrency 64 four times at set
    # points; this one kills one of concurrency 8 nine times at random
    # moments and checks what the store says against what the sink saw.
    concurrency, n, kills_wanted = 8, 3000, 9
    rng = rng_for("dispatch kill -9")
    config = dict(FAST, concurrency=concurrency, host_concurrency=concurrency)
    with Sink() as sink, Stack(config=config) as s:
        t0 = time.time()
        # A 1 s timeout keeps the leases of killed rounds short (10 s + 1 s).
        made = schedule_many(s, [{"url": sink.url("/k"), "payload": f"k{i}", "timeout": 1}
                                 for i in range(n)])
        ids = {m["id"] for m in made}
        print(f"scheduled {n} in {time.time() - t0:.2f} s")
        kills, at = 0, []
        t0 = time.time()
        while kills < kills_wanted:
            before = len(sink.requests())
            p = s.spawn_dispatch("--watch")
            try:
                # A random point in the stream, then a random instant.
                sink.wait_for(before + rng.randint(30, 180), timeout=30)
            except AssertionError:
                raise AssertionError("dispatch --watch delivered too little:\n" +
                                     s.dispatch_log(p)[-2000:])
            time.sleep(rng.uniform(0, 0.02))
            p.send_signal(signal.SIGKILL)
            assert p.wait(timeout=10) == -signal.SIGKILL
            kills += 1
            at.append(len(sink.requests()))
            # Killed mid-transaction or not, the triggers' counts hold.
            c = assert_counts_agree(s, f"after kill {kills}")
        print(f"{kills} kills in {time.time() - t0:.1f} s, after {at} requests; "
              f"left behind: {c}")
        assert at[-1] < n, "every message arrived before the last kill: kill earlier"
        t0 = time.time()
        final = s.spawn_dispatch("--watch")
        try:
            wait_delivered(s, n, timeout=60)
        finally:
            rc = stop_dispatcher(s, final)
        assert rc == 0, s.dispatch_log(final)[-2000:]
        took = time.time() - t0
        seen = collections.Counter(sink.ids("/k"))
        missing = ids - set(seen)
        assert not missing, f"{len(missing)} never arrived, e.g. {sorted(missing)[:3]}"
        assert set(seen) == ids, f"unknown ids arrived: {set(seen) - ids}"
        dups = sum(v - 1 for v in seen.values())
        requests = len(sink.requests())
        print(f"dispatch kill -9: {kills} kills, {n} messages, {dups} duplicates "
              f"(bound {kills} x {concurrency} = {kills * concurrency}), {requests} "
              f"requests; the last dispatcher finished in {took:.1f} s")
        assert dups <= kills * concurrency, f"{dups} duplicates after {kills} kills"

        c = assert_counts_agree(s, "at the end")
        assert c == dict.fromkeys(STATES, 0) | {"delivered": n}, c
        assert s.count("live") == 0, s.query("SELECT * FROM live LIMIT 5")
        # One attempt row per delivery that was written back: at least one
        # per message, at most what the sink received, and a 200 for each.
        attempts = s.count("history")
        print(f"attempt rows {attempts} for {n} messages and {requests} requests")
        assert n <= attempts <= requests, (n, attempts, requests)
        ok_rows = dict(s.query("SELECT m.id, count(*) FROM history h JOIN messages m "
                               "ON m.key = h.key WHERE h.status = 200 GROUP BY m.id"))
        assert set(ok_rows) == ids, f"{len(ids - set(ok_rows))} delivered without a 200 row"
        over = {k: (v, seen[k]) for k, v in ok_rows.items() if v > seen[k]}
        assert not over, f"more 200 rows than requests the sink saw: {list(over.items())[:5]}"
        # A round counts from its claim (issue 13 item 7): a message whose
        # round a kill cut short has used two, one of them lost.
        rows = dict(s.query("SELECT attempts, count(*) FROM messages GROUP BY attempts"))
        print(f"rounds per message: {rows}")
        assert set(rows) <= {1, 2} and sum(rows.values()) == n, f"rounds per message: {rows}"
        # A kill loses the rounds it held: up to concurrency in flight and
        # as many parked for a host slot.
        assert rows.get(2, 0) <= kills * 2 * concurrency, f"rounds per message: {rows}"


# ---- kill -9 of the FastCGI schedule workers ----

class ScheduleWorkers:
    """The schedule workers of a stack, and a supervisor for them.

    postdate-stack starts 2 under spawn-fcgi (their pids in run/schedule.pid),
    and spawn-fcgi does not replace a worker that dies. replace() does what a
    supervisor would (systemd's socket units, or multiwatch under spawn-fcgi):
    it starts a new worker on the same listening socket, which it takes from a
    live worker with pidfd_getfd(2). Pids are checked against /proc before a
    kill, so that a reused pid is never killed."""

    def __init__(self, s):
        self.s = s
        self.program = os.path.realpath(os.path.join(TOP, "cgi-bin", "schedule"))
        with open(os.path.join(s.dir, "run", "schedule.pid")) as f:
            self.pids = [int(x) for x in f.read().split()]
        self.started = []                # the Popen of each replacement
        self.killed = set()              # dying until the kernel has reaped them

    def _is_worker(self, pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0") if a]
        except OSError:
            return False
        return bool(argv) and os.path.realpath(argv[0]) == self.program and self.s.conf in argv

    def alive(self):
        return [pid for pid in self.pids if pid not in self.killed and self._is_worker(pid)]

    def kill(self, pid):
        assert self._is_worker(pid), pid
        os.kill(pid, signal.SIGKILL)
        self.killed.add(pid)

    def replace(self):
        """Starts one more worker on the socket; False when this kernel or
        these privileges do not allow taking the socket."""
        fd = self._take_socket()
        if fd is None:
            return False
        try:
            p = subprocess.Popen(
                [self.program, "-c", self.s.conf, "-l",
                 os.path.join(self.s.dir, "run", "postdate.log")],
                stdin=fd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            os.close(fd)
        self.started.append(p)
        self.pids.append(p.pid)
        return True

    def _take_socket(self):
        # A worker killed a moment ago still looks alive in /proc while the
        # kernel tears it down, and taking its fd then fails: the killed are
        # never donors, and each live worker is tried in turn.
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        for donor in self.alive():
            try:
                pidfd = os.pidfd_open(donor)
            except (AttributeError, OSError):
                continue
            fd = libc.syscall(438, pidfd, 0, 0)      # pidfd_getfd(pidfd, 0, 0): its fd 0
            os.close(pidfd)
            if fd >= 0:
                return fd
        return None

    def close(self):
        for p in self.started:
            if p.poll() is None:
                p.kill()
            p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_kill_9_of_schedule_workers_leaves_every_201_stored_and_nothing_half_written():
    # Ten kills at random moments of the load, each dead worker replaced as
    # a supervisor would; where the socket cannot be taken for a
    # replacement, one kill of the two workers, the other carrying the load
    # to the end. Each worker has many requests in flight (threads sharing a
    # commit), so a kill cuts several at once.
    n, clients = 1500, 8
    rng = rng_for("schedule kill -9")
    with Sink() as sink, Stack() as s, ScheduleWorkers(s) as workers:
        assert len(workers.alive()) == 2, f"expected 2 schedule workers, found {workers.pids}"
        specs = []
        for i in range(n):
            urls = [sink.url(f"/w{i}/{j}") for j in range(rng.randint(1, 3))]
            payload = os.urandom(rng.randint(1, 12000)).hex()
            fields = [("url", u) for u in urls] + [("payload", payload),
                                                   ("idempotency_key", f"key-{i}")]
            near = i % 2 == 0
            if not near:
                fields.append(("delay", "2h"))      # beyond the 1 h buffer horizon
            specs.append(dict(urls=urls, payload=payload, fields=fields, near=near))
        answers = [None] * n
        done = [0]
        lock = threading.Lock()
        queue = iter(range(n))

        def client():
            while True:
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                answers[i] = s.post_form("/api/schedule", specs[i]["fields"])
                with lock:
                    done[0] += 1

        kills, replaced = [], []

        def killer():
            # Evenly spread marks of the load, each moved at random, then a
            # random live worker at a random instant.
            supervised = workers.replace()
            replaced.append(supervised)
            planned = 10 if supervised else 1
            for k in range(planned):
                mark = int(n * (0.05 + 0.85 * (k + rng.random()) / planned))
                while done[0] < mark:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0, 0.004))
                victim = rng.choice(workers.alive())
                workers.kill(victim)
                kills.append(done[0])
                if supervised:
                    time.sleep(rng.uniform(0, 0.02))
                    assert workers.replace(), "could not start a replacement worker"

        t0 = time.time()
        with ThreadPoolExecutor(clients + 1) as ex:
            futures = [ex.submit(client) for _ in range(clients)] + [ex.submit(killer)]
            for f in futures:
                f.result()
        took = time.time() - t0
        supervised = replaced[0]
        assert len(kills) == (10 if supervised else 1), kills
        assert len(workers.alive()) == (3 if supervised else 1), workers.alive()

        by_status = collections.Counter(a.status for a in answers)
        print(f"schedule kill -9: {len(kills)} kills (after {kills} answers; dead workers "
              f"{'replaced on the same socket' if supervised else 'not replaced'}), "
              f"{n} requests in {took:.1f} s, answers {dict(by_status)}")
        # A request cut by a kill gets nginx's error, as JSON; nothing else.
        # nginx answers a worker that died mid-request with its JSON 503.
        assert set(by_status) <= {201, 503}, by_status
        for a in answers:
            if a.status != 201:
                assert_json_error(a, a.status)
        accepted = {i: a.json["id"] for i, a in enumerate(answers) if a.status == 201}

        # Every 201 is in the store, whole.
        rows = stored_rows(s)
        lost = [i for i, id_ in accepted.items() if id_ not in rows]
        assert not lost, f"{len(lost)} messages answered 201 are not in the store"

        # A 503 means the client does not know: the worker may have died
        # before or after its commit. Asking again with the same key tells:
        # 200 with the stored message, or 201 now. Never anything else.
        cut = [i for i, a in enumerate(answers) if a.status != 201]
        again = collections.Counter()
        final = dict(accepted)
        for i in cut:
            r = s.post_form("/api/schedule", specs[i]["fields"])
            assert r.status in (200, 201), (i, r)
            again[r.status] += 1
            final[i] = r.json["id"]
        print(f"asked again with the same idempotency key: {dict(again)} "
              f"(200: stored before the worker died)")
        assert len(final) == n

        rows = stored_rows(s)
        assert len(rows) == n, f"{len(rows)} messages stored for {n} keys"
        assert set(rows) == set(final.values())
        horizon_ms = 3600 * 1000
        for i, id_ in final.items():
            spec = specs[i]
            (_, key, urls, payload, ctype, state, attempts, buffered, next_attempt, due,
             created) = rows[id_]
            assert key == f"key-{i}", (id_, key, i)
            assert urls == "\n".join(spec["urls"]), (id_, urls, spec["urls"])
            assert bytes(payload) == spec["payload"].encode(), f"{id_}: payload differs"
            assert ctype == "text/plain; charset=utf-8", (id_, ctype)
            assert (state, attempts) == ("pending", 0), (id_, state, attempts)
            assert next_attempt == due, (id_, next_attempt, due)
            near = next_attempt <= created + horizon_ms
            assert near == spec["near"], (id_, spec["near"], due - created)
            # In the buffer exactly when due within the horizon.
            assert near == bool(buffered), (id_, near, buffered)
        assert s.count("live") == n, "live rows without a message"
        c = assert_counts_agree(s, "after the kills")
        assert c == dict.fromkeys(STATES, 0) | {"pending": n}, c
        assert integrity(s) == ([("ok",)], []), integrity(s)
        one = status(s, final[0])
        assert one["urls"] == specs[0]["urls"], one
        assert one["payload_bytes"] == len(specs[0]["payload"]), one


# ---- contention ----

def test_contention_of_two_schedule_workers_and_two_dispatchers_delivers_each_201_once():
    # Two threaded schedule workers (the stack's), cancels and reads through nginx,
    # and two dispatchers, all on one database. Nobody dies, so every
    # accepted message is delivered exactly once, and a cancelled one never.
    n, clients = 1500, 8
    rng = rng_for("contention")
    with Sink() as sink, Stack(config=FAST) as s:
        a = s.spawn_dispatch("--watch")
        b = s.spawn_dispatch("--watch")
        start = time.time()
        specs = []
        for i in range(n):
            fields = {"url": sink.url("/c"), "payload": f"c{i}"}
            if i % 2:
                # Falling due while the load goes on: the dispatchers claim
                # while the workers insert, and cancels race the claims.
                fields["at"] = s_to_iso(start + rng.uniform(0.2, 3))
            specs.append(fields)
        answers = [None] * n
        took = [0.0] * n
        queue = iter(range(n))
        lock = threading.Lock()
        loading = threading.Event()
        loading.set()
        reads = collections.Counter()
        to_cancel, cancels = [], {}          # ids that may be cancelled; id -> answer

        def client():
            while True:
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                t0 = time.time()
                answers[i] = r = s.post_form("/api/schedule", specs[i])
                took[i] = time.time() - t0
                if r.status == 201 and i % 2:
                    with lock:
                        to_cancel.append(r.json["id"])

        def reader():
            # The list with its counts, and health.
            while loading.is_set():
                for r in (s.get("/api/status", {"state": "all", "limit": 50}),
                          s.get("/api/health", token=None)):
                    reads[r.status] += 1
                    if r.status != 200:
                        reads[repr(r)] += 1

        def canceller():
            while loading.is_set() and len(cancels) < 200:
                with lock:
                    id_ = to_cancel.pop(rng.randrange(len(to_cancel))) if to_cancel else None
                if id_ is None:
                    time.sleep(0.005)
                    continue
                cancels[id_] = s.post_form("/api/cancel", {"id": id_})
                time.sleep(rng.uniform(0, 0.01))

        with ThreadPoolExecutor(clients + 2) as ex:
            others = [ex.submit(reader), ex.submit(canceller)]
            for f in [ex.submit(client) for _ in range(clients)]:
                f.result()
            load = time.time() - start
            loading.clear()
            for f in others:
                f.result()
        by_status = collections.Counter(r.status for r in answers)
        cancel_status = collections.Counter(r.status for r in cancels.values())
        print(f"contention: {n} schedules by {clients} clients in {load:.2f} s, answers "
              f"{dict(by_status)}, latency p50 {ms(pct(took, 50))} p99 {ms(pct(took, 99))} "
              f"max {ms(max(took))}; cancels {dict(cancel_status)}; reads {dict(reads)}")
        assert set(reads) == {200}, reads
        # The only 5xx allowed is the busy answer (503, JSON), and a message
        # so answered was not stored.
        assert set(by_status) <= {201, 503}, by_status
        busy = [i for i, r in enumerate(answers) if r.status == 503]
        for i in busy:
            assert_json_error(answers[i], 503)
            assert "busy" in answers[i].json["error"], answers[i]
            assert s.query(f"SELECT m.id FROM {s.FROM} WHERE p.payload = ?",
                           specs[i]["payload"].encode()) == [], f"{i} answered 503 but stored"
        # A cancel answers 200 (it was pending) or 409 (a dispatcher had it).
        assert set(cancel_status) <= {200, 409}, cancels
        cancelled = {k for k, r in cancels.items() if r.status == 200}
        for k, r in cancels.items():
            if r.status == 409:
                assert r.json["state"] in ("delivering", "delivered"), (k, r)
            else:
                assert r.json == {"id": k, "state": "cancelled"}, (k, r)
        accepted = {r.json["id"]: specs[i]["payload"]
                    for i, r in enumerate(answers) if r.status == 201}
        to_deliver = {k: v for k, v in accepted.items() if k not in cancelled}
        try:
            wait_delivered(s, len(to_deliver), timeout=40)
            time.sleep(0.5)         # duplicates would come after the first copies
        finally:
            rcs = [stop_dispatcher(s, p) for p in (a, b)]
        assert rcs == [0, 0], (rcs, s.dispatch_log(a)[-1500:], s.dispatch_log(b)[-1500:])
        seen = collections.Counter(sink.ids("/c"))
        assert not cancelled & set(seen), \
            f"{len(cancelled & set(seen))} delivered after a 200 cancel"
        assert set(seen) == set(to_deliver), \
            f"{len(set(to_deliver) - set(seen))} never arrived, " \
            f"{len(set(seen) - set(to_deliver))} unknown"
        dup = {k: v for k, v in seen.items() if v > 1}
        assert not dup, f"{len(dup)} delivered more than once with no dispatcher dying: " \
            f"{list(dup.items())[:5]}"
        bodies = {r.headers["webhook-id"]: r.body.decode() for r in sink.requests("/c")}
        assert bodies == to_deliver, "a target received another message's payload"
        logs = [s.dispatch_log(p) for p in (a, b)]
        share = [log.count(" delivered ") for log in logs]
        retries = sum(log.count("could not write to the database") for log in logs)
        lost = sum(log.count("lost the lease") for log in logs)
        print(f"two dispatchers delivered {share} (sum {sum(share)}), busy retries {retries}, "
              f"leases lost {lost}, {len(busy)} schedules answered busy, "
              f"{len(cancelled)} cancelled in time")
        assert sum(share) == len(to_deliver), share
        assert lost == 0, "a lease ran out while its dispatcher was alive"
        c = assert_counts_agree(s, "after contention")
        assert c == dict.fromkeys(STATES, 0) | {"delivered": len(to_deliver),
                                                "cancelled": len(cancelled)}, c
        assert s.count("live") == 0


# ---- a full disk ----

def test_disk_full_answers_503_json_keeps_the_database_intact_and_recovers():
    if pg.engine() == "pg":
        # The database's disk is then the server's, not a file of ours on a
        # tmpfs; its SQLSTATE 53100 maps to the same 503 (store_pg.c).
        print("skip on PostgreSQL: the disk that fills up is the database server's")
        return
    mnt = tempfile.mkdtemp(prefix="postdate-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
    s = None
    try:
        with Sink() as sink:
            s = Stack(config=FAST | {"default_timeout": 2},
                      database=os.path.join(mnt, "postdate.db"))
            payload = "p" * 24000
            accepted, full = [], []
            t0 = time.time()
            for i in range(400):
                r = s.post_form("/api/schedule", {"url": sink.url("/full"),
                                                  "payload": payload + str(i)})
                if r.status == 201:
                    accepted.append(r.json["id"])
                    continue
                full.append(r)
                if len(full) == 5:
                    break
            df = os.statvfs(mnt)
            print(f"disk full (tmpfs 2 MiB): {len(accepted)} accepted of 24 KB each, then "
                  f"{[(r.status, r.json) for r in full[:1]]} in {time.time() - t0:.2f} s; "
                  f"{df.f_bavail * df.f_frsize} bytes free; files "
                  f"{sorted((f, os.path.getsize(os.path.join(mnt, f))) for f in os.listdir(mnt))}")
            assert accepted, "not one message fitted"
            assert len(full) == 5, "2 MiB never filled up"
            for r in full:
                assert_json_error(r, 503)
                assert "disk" in r.json["error"] or "space" in r.json["error"], r
            # Reads go on, and what was acknowledged is all there.
            h = s.get("/api/health", token=None)
            assert h.status == 200 and h.json["ok"] is True, h
            assert integrity(s) == ([("ok",)], []), integrity(s)
            stored = {r[0]: r[1] for r in s.query(f"SELECT m.id, length(p.payload) FROM {s.FROM}")}
            assert set(stored) == set(accepted), "the store is not what was acknowledged"
            assert all(stored[id_] >= 24000 for id_ in accepted), stored
            assert_counts_agree(s, "disk full")
            assert s.buffered() == len(accepted)
            # A cancel is a small write that may still fit in the WAL's free
            # pages: either it is done whole (200, out of the buffer) or not
            # at all (a JSON 503, the message still pending in the buffer).
            r = s.post_form("/api/cancel", {"id": accepted[0]})
            if r.status == 200:
                assert (s.state_in_db(accepted[0]), s.buffered(accepted[0])) == ("cancelled", 0)
                accepted.pop(0)
            else:
                assert_json_error(r, 503)
                assert "disk space" in r.json["error"], r
                assert (s.state_in_db(accepted[0]), s.buffered(accepted[0])) == ("pending", 1)
            assert_counts_agree(s, "a cancel on the full disk")
            # A dispatcher cannot record its outcomes, and says why.
            rc, err = s.dispatch("--for", "1")
            print(f"dispatch --for 1 on the full disk: exit {rc}, "
                  f"{err.count('disk full')} 'disk full' lines, {len(sink.requests())} sent")
            assert "disk full" in err, err[-2000:]
            # A claim is a small write and may still fit where an outcome
            # does not: what was sent then is sent again later (at least
            # once), but only that, and no more claims follow the failure.
            sent_while_full = set(sink.ids("/full"))
            assert sent_while_full <= set(accepted), sent_while_full
            assert integrity(s) == ([("ok",)], []), integrity(s)

            # Space comes back: schedule works again, at once.
            subprocess.run(["mount", "-o", "remount,size=32m", mnt], check=True)
            r = s.post_form("/api/schedule", {"url": sink.url("/full"), "payload": "back"})
            assert r.status == 201, f"schedule after space came back: {r}"
            accepted.append(r.json["id"])
            for i in range(20):
                accepted.append(s.schedule(url=sink.url("/full"), payload=payload)["id"])
            # And the dispatcher can write its outcomes; what was sent while
            # the disk was full comes again once its lease (2 s timeout +
            # 10 s slack) has run out.
            d = s.spawn_dispatch("--watch")
            wait_delivered(s, len(accepted), timeout=40)
            assert stop_dispatcher(s, d) == 0
            got = collections.Counter(sink.ids("/full"))
            assert set(got) == set(accepted)
            assert {i for i, k in got.items() if k > 1} <= sent_while_full, got
            c = assert_counts_agree(s, "after space came back")
            assert c["delivered"] == len(accepted), c
            assert integrity(s) == ([("ok",)], []), integrity(s)
    finally:
        if s is not None:
            s.close()
        if subprocess.run(["umount", mnt]).returncode != 0:
            subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


# ---- targets that misbehave ----

class BadTarget:
    """A raw-socket HTTP target on 127.0.0.1 that misbehaves on purpose,
    chosen by the request's path:

      /500        a well-formed 500 (connection kept alive)
      /reset      half an answer, then a TCP reset
      /close      closes without a byte (an empty reply)
      /hang       never answers (holds the connection until close())
      /stream200  200, then a body that never ends
      /stream500  500, then a body that never ends
      /garbage    a line that is not HTTP
      /badstatus  an HTTP/1.1 status line with a status that is not a number
      /headers    header lines that never end (at most 4 MiB, then silence)

    Every request is recorded (time, path, webhook-id) once its head and
    body are read."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._requests = []
        self._conns = set()
        self.streamed = collections.Counter()     # path -> body bytes sent
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f"badtarget:{self.port}")
        self._thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path=None):
        with self._lock:
            return [r for r in self._requests if path is None or r[1] == path]

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None, b""
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(buf) < length:
            data = conn.recv(65536)
            if not data:
                return None, b""
            buf += data
        return (path, headers), buf[length:]

    def _serve(self, conn):
        conn.settimeout(30)
        buf = b""
        try:
            while not self._stop.is_set():
                req, buf = self._read_request(conn, buf)
                if req is None:
                    return
                path, headers = req
                with self._lock:
                    self._requests.append((time.time(), path, headers.get("webhook-id")))
                if not self._answer(conn, path):
                    return
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _stream(self, conn, path, head, chunk, limit=None):
        conn.sendall(head)
        sent = 0
        while not self._stop.is_set() and (limit is None or sent < limit):
            conn.sendall(chunk)
            sent += len(chunk)
            with self._lock:
                self.streamed[path] += len(chunk)

    def _answer(self, conn, path):
        """Answers (or not); True to read another request on the connection."""
        if path == "/500":
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 4\r\n\r\noops")
            return True
        if path == "/reset":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 100000\r\n\r\nthe first few bytes")
            time.sleep(0.05)
            # Linger 0: close() sends a reset, not a FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            return False
        if path == "/close":
            return False
        if path == "/hang":
            self._stop.wait(120)
            return False
        if path in ("/stream200", "/stream500"):
            status = b"200 OK" if path == "/stream200" else b"500 Internal Server Error"
            self._stream(conn, path, b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain"
                         b"\r\nConnection: close\r\n\r\n", b"x" * 16384)
            return False
        if path == "/garbage":
            conn.sendall(b"SPLORK wibble\r\nnot: http\r\n\r\nat all\r\n")
            return False
        if path == "/badstatus":
            conn.sendall(b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n")
            return False
        if path == "/headers":
            self._stream(conn, path, b"HTTP/1.1 200 OK\r\n",
                         b"X-Forever: " + b"a" * 1000 + b"\r\n", limit=4 << 20)
            self._stop.wait(120)
            return False
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True

    def close(self):
        self._stop.set()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_misbehaving_targets_are_recorded_retried_to_max_attempts_and_never_stall_dispatch():
    timeout, rounds = 2, 3
    # What each failure must look like in the history: (status, words
    # one of which the error names), status None meaning no HTTP answer.
    expect = {
        "/refused": (None, ("connect",)),
        "/reset": (None, ("reset", "recv failure")),
        "/close": (None, ("empty reply",)),
        "/hang": (None, ("timed out",)),
        "/garbage": (None, ("http/0.9", "weird", "invalid")),
        "/badstatus": (None, ("unsupported response code", "http/0.9", "weird", "invalid")),
        # curl caps response headers at 300 KiB (older ones: the timeout).
        "/headers": (None, ("too large", "timed out")),
        "/500": (500, None),
        "/stream500": (500, None),
    }
    with BadTarget() as bad, Sink() as sink, Stack(config=FAST) as s:
        refused = f"http://127.0.0.1:{closed_port()}/refused"
        urls = {p: (refused if p == "/refused" else bad.url(p)) for p in expect}
        made = {p: s.schedule(url=u, max_attempts=rounds, timeout=timeout)["id"]
                for p, u in urls.items()}
        streamed = s.schedule(url=bad.url("/stream200"), timeout=timeout, max_attempts=rounds)
        t0 = time.time()
        d = s.spawn_dispatch("--watch")

        # Meanwhile, well-behaved messages keep flowing: each must arrive
        # long before a stuck dispatcher would have let it (the 2 s timeout).
        sent = {}
        while time.time() - t0 < 7:
            t = time.time()
            sent[s.schedule(url=sink.url("/good"), payload=str(len(sent)))["id"]] = t
            time.sleep(0.15)
        got = sink.wait_for(len(sent), "/good", timeout=10)
        lateness = [r.t - sent[r.headers["webhook-id"]] for r in got]
        print(f"while {len(expect)} targets misbehaved: {len(sent)} good messages, "
              f"schedule-to-target p50 {ms(pct(lateness, 50))}, max {ms(max(lateness))}")
        assert sorted(sink.ids("/good")) == sorted(sent), "good messages lost or doubled"
        assert max(lateness) < 1.0, f"a good message waited {max(lateness):.2f} s"

        st = wait_state(s, streamed["id"], ("delivered", "failed"), timeout=10)
        (h,) = st["history"]
        print(f"/stream200: {st['state']} in {h['ms']} ms after "
              f"{bad.streamed['/stream200']} body bytes sent (cap 64 KiB)")
        assert st["state"] == "delivered" and h["status"] == 200, st
        assert h["ms"] < timeout * 1000 / 2, f"the body cap did not end the transfer: {h}"

        for path, id_ in made.items():
            st = wait_state(s, id_, ("failed", "delivered"), timeout=30)
            want_status, words = expect[path]
            hist = st["history"]
            print(f"{path:11} {st['state']}, {st['attempts']} rounds: " +
                  "; ".join(f"{h['status']} {h['error']!r} {h['ms']} ms" for h in hist[:1]))
            assert st["state"] == "failed", (path, st)
            assert st["attempts"] == rounds == st["max_attempts"], (path, st)
            assert st["delivered_to"] is None and st["delivered_at"] is None, (path, st)
            assert len(hist) == rounds, (path, hist)
            for h in hist:
                assert h["url"] == urls[path], (path, h)
                assert h["status"] == want_status, (path, h)
                if want_status is None:
                    assert h["error"] and any(w in h["error"].lower() for w in words), (path, h)
                else:
                    assert h["error"] is None, (path, h)
                # No attempt outlives its timeout (a little slack for curl).
                assert h["ms"] <= timeout * 1000 + 500, (path, h)
            if path == "/hang":
                assert all(h["ms"] >= timeout * 1000 - 100 for h in hist), hist
            if path == "/stream500":
                assert all(h["ms"] < timeout * 1000 / 2 for h in hist), hist
            # The rounds follow the backoff: about 1 s, then 2 s (+-20 %)
            # after the end of the previous attempt.
            gaps = [iso_to_s(b["at"]) - iso_to_s(a["at"]) - a["ms"] / 1000
                    for a, b in zip(hist, hist[1:])]
            assert 0.75 <= gaps[0] <= 1.2 + 0.6, (path, gaps)
            assert 1.55 <= gaps[1] <= 2.0 + 0.6, (path, gaps)
            got = len(bad.requests(path))
            if path == "/close":
                # libcurl sends a request again, once, when a kept-alive
                # connection closes before any byte of the answer (a server
                # may close an idle connection just as it is reused).
                assert rounds <= got <= 2 * rounds, (path, bad.requests(path))
            elif path != "/refused":
                assert got == rounds, (path, bad.requests(path))
        took = time.time() - t0
        rc = stop_dispatcher(s, d)
        assert rc == 0, s.dispatch_log(d)[-2000:]
        print(f"every misbehaving target failed after {rounds} rounds within {took:.1f} s")
        c = assert_counts_agree(s, "after the misbehaving targets")
        assert c["failed"] == len(expect) and c["delivering"] == 0, c


# ---- SIGTERM ----

def test_sigterm_lets_in_flight_deliveries_finish_then_exits_0_and_the_next_delivers_the_rest():
    concurrency, n = 8, 30
    config = dict(FAST, concurrency=concurrency, host_concurrency=concurrency)
    with Sink() as sink, Stack(config=config) as s:
        sink.behave("/slow", delay=2)
        made = schedule_many(s, [{"url": sink.url("/slow"), "payload": str(i), "timeout": 10}
                                 for i in range(n)])
        ids = {m["id"] for m in made}
        d = s.spawn_dispatch("--watch")
        # The first wave: the slots a host that has not answered yet may
        # take (all but the reserved quarter); none answers for 2 s.
        sink.wait_for(concurrency - concurrency // 4, "/slow", timeout=10)
        time.sleep(0.3)
        in_flight = set(sink.ids("/slow"))
        t0 = time.time()
        rc = stop_dispatcher(s, d)
        stopped = time.time() - t0
        print(f"SIGTERM with {len(in_flight)} requests in flight (2 s each): exit {rc} "
              f"after {stopped:.2f} s")
        assert rc == 0, s.dispatch_log(d)[-2000:]
        assert "dispatch: info: exiting:" in s.dispatch_log(d)
        assert stopped < 8, "the in-flight requests were not let finish promptly"
        assert set(sink.ids("/slow")) == in_flight, "a message was started after SIGTERM"
        # What was in flight finished and was written back.
        for id_ in in_flight:
            st = status(s, id_)
            assert st["state"] == "delivered" and st["attempts"] == 1, st
            assert [h["status"] for h in st["history"]] == [200], st
        c = assert_counts_agree(s, "after SIGTERM")
        assert c["delivering"] == 0 and c["delivered"] == len(in_flight), c
        assert s.leased() == 0

        sink.behave("/slow", delay=0)
        t0 = time.time()
        d = s.spawn_dispatch("--watch")
        try:
            wait_delivered(s, n, timeout=20)
        finally:
            rc = stop_dispatcher(s, d)
        print(f"the next dispatcher delivered the other {n - len(in_flight)} in "
              f"{time.time() - t0:.2f} s")
        assert rc == 0
        seen = collections.Counter(sink.ids("/slow"))
        assert set(seen) == ids and set(seen.values()) == {1}, seen
        c = assert_counts_agree(s, "at the end")
        assert c == dict.fromkeys(STATES, 0) | {"delivered": n}, c
        assert s.count("live") == 0


def test_second_sigterm_gives_leases_back_so_the_next_dispatcher_need_not_wait():
    concurrency, n = 8, 12
    config = dict(FAST, concurrency=concurrency, host_concurrency=concurrency)
    with Sink() as sink, Stack(config=config) as s:
        # Requests that would take 30 s, under a 60 s timeout: their leases
        # would last 70 s if they were not given back.
        sink.behave("/stuck", delay=30)
        made = schedule_many(s, [{"url": sink.url("/stuck"), "payload": str(i), "timeout": 60}
                                 for i in range(n)])
        ids = {m["id"] for m in made}
        d = s.spawn_dispatch("--watch")
        # As many as a host that has not answered yet may take.
        sink.wait_for(concurrency - concurrency // 4, "/stuck", timeout=10)
        time.sleep(0.3)
        in_flight = set(sink.ids("/stuck"))
        t0 = time.time()
        d.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        rc = stop_dispatcher(s, d)          # the second signal
        stopped = time.time() - t0
        log = s.dispatch_log(d)
        print(f"two SIGTERMs with {len(in_flight)} requests in flight (30 s each): exit {rc} "
              f"after {stopped:.2f} s; {log.count('released ')} rounds given back")
        assert rc == 0, log[-2000:]
        assert stopped < 5, "the second SIGTERM did not cut the requests in flight"
        assert log.count("released ") == len(in_flight), log[-2000:]
        c = assert_counts_agree(s, "after two SIGTERMs")
        assert c == dict.fromkeys(STATES, 0) | {"pending": n}, c
        assert s.buffered() == n and s.leased() == 0
        for id_ in in_flight:
            # Given back, due again at once; the request that was sent is
            # in the history and the round counts (it was claimed).
            st = status(s, id_)
            assert st["state"] == "pending" and st["attempts"] == 1, st
            assert [h["status"] for h in st["history"]] == [None], st
            assert "before an answer came" in st["history"][0]["error"], st

        sink.behave("/stuck", delay=0)
        t0 = time.time()
        d = s.spawn_dispatch("--watch")
        try:
            wait_delivered(s, n, timeout=15)
        finally:
            rc = stop_dispatcher(s, d)
        took = time.time() - t0
        print(f"the next dispatcher delivered all {n} in {took:.2f} s (the leases would "
              f"have held them 70 s)")
        assert rc == 0
        assert took < 10, took
        seen = collections.Counter(sink.ids("/stuck"))
        assert set(seen) == ids, seen
        # Duplicates only among what was in flight when the signal came.
        assert {k for k, v in seen.items() if v > 1} <= in_flight, seen
        assert all(v <= 2 for v in seen.values()), seen
        c = assert_counts_agree(s, "at the end")
        assert c == dict.fromkeys(STATES, 0) | {"delivered": n}, c
        assert s.count("live") == 0


def test_a_round_given_back_at_a_stop_records_the_request_that_was_sent():
    # Issue 13 item 2: a round cut by a second SIGTERM was given back as if
    # nothing had been sent, though the target had the request.
    with Sink() as sink, Stack(config=FAST) as s:
        sink.behave("/stuck", delay=30)
        m = s.schedule(url=sink.url("/stuck"), timeout=60)
        d = s.spawn_dispatch("--watch")
        sink.wait_for(1, "/stuck", timeout=10)
        d.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert stop_dispatcher(s, d) == 0, s.dispatch_log(d)[-2000:]
        st = status(s, m["id"])
        print(f"given back: {st['history']}")
        assert len(sink.requests("/stuck")) == 1
        assert len(st["history"]) == 1, st
        h = st["history"][0]
        assert h["url"] == sink.url("/stuck") and h["status"] is None, h
        assert h["error"] == "the dispatcher stopped before an answer came", h
        assert st["state"] == "pending", st


def test_a_message_that_kills_the_dispatcher_fails_after_max_attempts_claims_with_backoff():
    # Issue 13 item 7: rounds were counted at write-back, so a message whose
    # delivery kills the dispatcher came back at every lease expiry, with
    # no backoff and no end. A loop here plays cron: a new dispatcher
    # whenever the last one died. Lease: timeout 1 s + 10 s of slack.
    config = {"retry_base": 5, "retry_max": 60}
    current = {}
    with Sink() as sink, Stack(config=config) as s:
        sink.behave("/poison", action=lambda req: current["p"].kill())
        m = s.schedule(url=sink.url("/poison"), timeout=1, max_attempts=2)
        stop = threading.Event()

        def cron():
            while not stop.is_set():
                current["p"] = s.spawn_dispatch("--watch")
                while current["p"].poll() is None and not stop.is_set():
                    time.sleep(0.05)
        looper = threading.Thread(target=cron, daemon=True)
        looper.start()
        try:
            st = wait_state(s, m["id"], "failed", timeout=60)
        finally:
            stop.set()
            looper.join(timeout=30)
            stop_dispatcher(s, current["p"])
        got = sink.requests("/poison")
        gaps = [b.t - a.t for a, b in zip(got, got[1:])]
        print(f"poison message: {len(got)} requests, {gaps} s apart; {st['attempts']} rounds")
        assert len(got) == 2, got
        assert st["attempts"] == 2, st
        # Lease (11 s) plus the backoff after round 1 (5 s, give or take 1).
        assert gaps[0] >= 11 + 3.5, gaps
