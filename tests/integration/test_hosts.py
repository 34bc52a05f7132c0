"""Many dispatchers on many hosts against one database (issue 18), on
simulated hosts (hosts.py): each host a network namespace under a CPU
quota, running bin/dispatch against the shared database (a SQLite file in
WAL mode today, which processes in different namespaces share through the
file system; a postgresql:// URL when POSTDATE_TEST_DATABASE=pg and the
PostgreSQL store exist). Messages are scheduled through nginx and
cgi-bin/schedule in the root namespace; the recording sink listens on the
hosts' gateway and answers after 40 ms, and its record (message id,
source address, time) is what counts deliveries, not postdate's logs.

Skipped, saying why, when not root or `ip netns` is unavailable.
"""

import collections
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import hosts
import pg
from harness import Stack, TOP, background
from sink import Sink
from test_recurring import early_in_a_minute, iso_to_s, sleep_until

DISPATCH = os.path.join(TOP, "bin", "dispatch")
CONCURRENCY = 32          # in flight per dispatcher
LATENCY = 0.04            # the sink's answer time


def skip_reason():
    reason = hosts.available()
    if reason:
        print(f"skipped: {reason}")
    return reason


class Setup:
    """A stack (nginx + the FastCGI programs, no dispatcher of its own) in
    the root namespace, N hosts, a sink on their gateway, and a
    configuration for the hosts' dispatchers naming the same database by
    an absolute path (or URL). sink: what makes the sink (bench/hosts.py
    gives one cheaper than Sink)."""

    def __init__(self, n_hosts, cpu_percent=25, sink=Sink, **dispatch_settings):
        self.dir = tempfile.mkdtemp(prefix="postdate-hosts-")
        self.hosts = self.sink = self.stack = self.cluster = None
        try:
            self.hosts = hosts.Hosts(n_hosts, cpu_percent=cpu_percent)
            # The hosts reach the database by the path (SQLite) or by TCP
            # to a cluster listening on their gateway too (PostgreSQL),
            # so that a partition cuts them off from it.
            if pg.engine() == "sqlite":
                self.database = stack_database = pg.database_setting(self.dir)
            else:
                self.cluster = pg.Cluster(listen=[self.hosts.gateway])
                stack_database = self.cluster.create_database("postdate")
                self.database = self.cluster.url("postdate", host=self.hosts.gateway)
            self.sink = sink(host=self.hosts.gateway, delay=LATENCY)
            allow = f"127.0.0.0/8, ::1, {self.hosts.network}"
            self.stack = Stack(database=stack_database, allow_targets=allow)
            self.conf = os.path.join(self.dir, "dispatch.conf")
            with open(self.conf, "w") as f:
                f.write(f"database = {self.database}\n"
                        f"allow_targets = {allow}\n"
                        "allow_ports = 1024-65535\n"
                        f"concurrency = {CONCURRENCY}\n"
                        f"host_concurrency = {CONCURRENCY}\n")
                for key, value in dispatch_settings.items():
                    f.write(f"{key} = {value}\n")
        except BaseException:
            self.close()
            raise

    def schedule(self, n, at, timeout=1):
        """n messages to the sink, all due at `at` (epoch seconds); their ids."""
        due = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
        fields = [{"url": self.sink.url("/hook"), "at": due, "payload": str(i),
                   "timeout": timeout} for i in range(n)]
        with ThreadPoolExecutor(8) as ex:
            made = list(ex.map(lambda f: self.stack.schedule(**f), fields))
        return [m["id"] for m in made]

    def spawn_dispatch(self, host, *args):
        log = open(os.path.join(self.dir, f"dispatch-{host.index}.log"), "a")
        p = host.spawn([DISPATCH, "-c", self.conf, *args], stdout=subprocess.DEVNULL,
                       stderr=log)
        log.close()
        return p

    def dispatch_log(self, host):
        try:
            with open(os.path.join(self.dir, f"dispatch-{host.index}.log"),
                      errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop_dispatchers(self, hosts, procs, timeout=20):
        """SIGTERM to each of procs (the dispatchers of hosts), as cron's
        next minute or systemd would: each exits 0."""
        for h, p in zip(hosts, procs):
            p.terminate()
            assert p.wait(timeout=timeout) == 0, self.dispatch_log(h)

    def wait_host_delivered(self, host, n, timeout=30):
        """Waits until the sink has n deliveries from host."""
        deadline = time.time() + timeout
        while sum(1 for d in self.sink.deliveries("/hook") if d[1] == host.address) < n:
            assert time.time() < deadline, \
                f"host {host.index} delivered too little:\n" + self.dispatch_log(host)
            time.sleep(0.02)

    def delivered(self, ids):
        """How many of ids /api/status says are delivered."""
        n = 0
        for id_ in ids:
            r = self.stack.get("/api/status", {"id": id_})
            assert r.status == 200, r
            n += r.json["state"] == "delivered"
        return n

    def wait_unique(self, ids, timeout):
        want = set(ids)
        deadline = time.time() + timeout
        while True:
            got = {d[0] for d in self.sink.deliveries("/hook")} & want
            if got == want:
                return
            if time.time() > deadline:
                logs = "\n".join(self.dispatch_log(h) for h in self.hosts)
                raise AssertionError(f"{len(want - got)} of {len(want)} never arrived within "
                                     f"{timeout} s; dispatch logs:\n{logs}")
            time.sleep(0.1)

    def wait_delivered(self, n, timeout):
        """Polls the list's counts until n messages are delivered."""
        deadline = time.time() + timeout
        while True:
            r = self.stack.get("/api/status", {"state": "all", "limit": 1})
            assert r.status == 200, r
            if r.json["counts"]["delivered"] >= n:
                return
            if time.time() > deadline:
                logs = "\n".join(self.dispatch_log(h) for h in self.hosts)
                raise AssertionError(f"waited {timeout} s for {n} delivered: "
                                     f"{r.json['counts']}; dispatch logs:\n{logs}")
            time.sleep(0.2)

    def close(self):
        for part in (self.hosts, self.stack, self.sink, self.cluster):
            if part is not None:
                part.stop() if part is self.cluster else part.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_three_hosts_deliver_every_message_once_and_share_the_work():
    if skip_reason():
        return
    n = 600
    with Setup(3) as s:
        ids = s.schedule(n, time.time() + 4)
        procs = [s.spawn_dispatch(h, "--for", "40") for h in s.hosts]
        s.wait_unique(ids, timeout=40)
        s.stop_dispatchers(s.hosts, procs)
        got = s.sink.deliveries("/hook")
        seen = collections.Counter(d[0] for d in got)
        assert set(seen) == set(ids), f"{len(set(ids) - set(seen))} never arrived"
        dups = {k: v for k, v in seen.items() if v != 1}
        assert not dups, f"{len(dups)} arrived more than once, e.g. {list(dups.items())[:5]}"
        by_host = collections.Counter(d[1] for d in got)
        addresses = {h.address for h in s.hosts}
        assert set(by_host) <= addresses, f"deliveries from outside the hosts: {by_host}"
        print(f"3 hosts: {n} delivered once each; per host {dict(by_host)}; "
              f"cpu s per host {[round(h.cpu_usage_s(), 2) for h in s.hosts]}")
        assert len(by_host) > 1, f"one host delivered everything: {by_host}"
        assert s.delivered(ids) == n


def test_kill_9_of_one_host_loses_nothing_and_repeats_only_its_leases():
    if skip_reason():
        return
    n = 900
    with Setup(3) as s:
        # timeout 1 s: a message's lease is 10 s + its time-out, so the
        # killed host's leases run out 11 s after the kill.
        ids = s.schedule(n, time.time() + 4, timeout=1)
        procs = [s.spawn_dispatch(h, "--for", "60") for h in s.hosts]
        victim = s.hosts[0]
        s.wait_host_delivered(victim, 60)
        victim.kill()
        killed_at = time.time()
        assert procs[0].poll() is not None
        s.wait_unique(ids, timeout=45)
        # What host 0 had leased is delivered again once its leases run out.
        s.wait_delivered(n, timeout=45)
        # The others run --for 60: stop them once everything is delivered.
        s.stop_dispatchers(s.hosts[1:], procs[1:])
        got = s.sink.deliveries("/hook")
        # Host 0 sent nothing after the kill, so what came from it came
        # before; counted now, since the sink records a request once its
        # body is read, which on a loaded machine can be after the kill.
        from_victim = {d[0] for d in got if d[1] == victim.address}
        seen = collections.Counter(d[0] for d in got)
        missing = set(ids) - set(seen)
        assert not missing, f"{len(missing)} never arrived, e.g. {sorted(missing)[:3]}"
        dups = {k for k, v in seen.items() if v > 1}
        # A message may arrive twice only when the killed host had sent it
        # (its lease held, its outcome unwritten) and another host took it
        # over after the kill: never twice from one host, never from the
        # hosts that lived.
        for id_ in dups:
            arrivals = [d for d in got if d[0] == id_]
            assert id_ in from_victim, f"{id_} repeated, and host 0 never had it: {arrivals}"
            assert len(arrivals) == 2, arrivals
            later = [d for d in arrivals if d[1] != victim.address]
            assert len(later) == 1 and later[0][2] >= killed_at, arrivals
        assert len(dups) <= CONCURRENCY * 2, f"{len(dups)} repeated after one kill"
        print(f"kill -9 of host 0 after {len(from_victim)} of its deliveries: nothing lost, "
              f"{len(dups)} repeated (all among host 0's leases); "
              f"per host {dict(collections.Counter(d[1] for d in got))}")
        assert s.delivered(ids) == n


def test_a_partitioned_host_loses_nothing_and_repeats_only_what_it_had_sent():
    """A host cut off (nftables drop, in and out) while it delivers, for
    longer than its leases, then back: on PostgreSQL it loses the database
    too, the others take its leases over once they run out, and its late
    write-backs are refused by the lease token; on SQLite its requests
    fail and their rounds are retried. Either way nothing is lost, and a
    message arrives twice only when host 0 had sent it before the cut."""
    if skip_reason():
        return
    n = 900
    with Setup(3, retry_base=1, retry_max=4) as s:
        # timeout 1 s: a lease is 10 s + the time-out.
        ids = s.schedule(n, time.time() + 4, timeout=1)
        procs = [s.spawn_dispatch(h, "--for", "150") for h in s.hosts]
        cut = s.hosts[0]
        s.wait_host_delivered(cut, 60)
        cut.partition()
        cut_at = time.time()
        time.sleep(14)          # past every lease host 0 held
        during = [d for d in s.sink.deliveries("/hook")
                  if d[1] == cut.address and d[2] > cut_at + 1]
        cut.heal()
        healed_at = time.time()
        assert not during, f"host 0 reached the sink while cut off: {during[:3]}"
        s.wait_unique(ids, timeout=90)
        s.wait_delivered(n, timeout=90)
        s.stop_dispatchers(s.hosts, procs, timeout=60)
        got = s.sink.deliveries("/hook")
        seen = collections.Counter(d[0] for d in got)
        missing = set(ids) - set(seen)
        assert not missing, f"{len(missing)} never arrived, e.g. {sorted(missing)[:3]}"
        dups = {k for k, v in seen.items() if v > 1}
        for id_ in dups:
            arrivals = sorted((d for d in got if d[0] == id_), key=lambda d: d[2])
            assert len(arrivals) == 2, arrivals
            first = arrivals[0]
            # The sink records a request once its body is read: up to the
            # cut, and a little after for what was on its way.
            assert first[1] == cut.address and first[2] < cut_at + 1, arrivals
        assert len(dups) <= CONCURRENCY * 2, f"{len(dups)} repeated after one partition"
        refused = s.dispatch_log(cut).count("lost the lease")
        print(f"partition of host 0 for {healed_at - cut_at:.1f} s: nothing lost, {len(dups)} "
              f"repeated (all sent by host 0 before the cut), {refused} late write-backs "
              f"of host 0 refused; per host {dict(collections.Counter(d[1] for d in got))}")
        assert s.delivered(ids) == n


@background
def test_every_minute_with_dispatchers_on_three_hosts_is_made_and_delivered_once_a_minute():
    """`* * * * *` for three minutes with a dispatcher on each of 3 hosts:
    whichever makes an occurrence, one message per minute, each delivered
    once, on time."""
    if skip_reason():
        return
    with Setup(3, cpu_percent=None) as s:
        procs = [s.spawn_dispatch(h, "--watch") for h in s.hosts]
        early_in_a_minute()
        r = s.stack.post_form("/api/recurring", {"cron": "* * * * *", "payload": "tick",
                                                 "url": s.sink.url("/minute")})
        assert r.status == 201, r
        d = r.json
        first = iso_to_s(d["next"])
        sleep_until(first + 2 * 60 + 5)
        s.stop_dispatchers(s.hosts, procs)
        got = [x for x in s.sink.deliveries("/minute") if x[2] < first + 3 * 60]
        late = [round(x[2] - (first + 60 * i), 3) for i, x in enumerate(got)]
        print(f"every minute on 3 hosts: {len(got)} deliveries from "
              f"{[x[1] for x in got]}, lateness {late} s")
        assert len(got) == 3, got
        assert len({x[0] for x in got}) == 3, got
        addresses = {h.address for h in s.hosts}
        for i, x in enumerate(got):
            assert x[1] in addresses, x
            assert first + 60 * i <= x[2] < first + 60 * i + 5, (i, x, late)
        one = s.stack.get("/api/recurring", {"id": d["id"]})
        assert one.status == 200, one
        # Three made and delivered, the fourth waiting: never one twice.
        made = one.json["messages"]
        assert len(made) == 4, one.json
        states = [s.stack.get("/api/status", {"id": m}).json["state"] for m in made]
        assert sorted(states) == ["delivered"] * 3 + ["pending"], states


def test_faketime_moves_the_wall_clock_of_a_dispatcher_in_a_host():
    if skip_reason():
        return
    if hosts.sanitized(DISPATCH):
        print("skipped: libfaketime hangs programs built with ASan (SANITIZE=1)")
        return
    with Setup(1) as s:
        [id_] = s.schedule(1, time.time())
        p = s.hosts[0].run([DISPATCH, "-c", s.conf, "--once"], faketime="+30s")
        assert p.returncode == 0, p.stderr
        [req] = [r for r in s.sink.requests("/hook") if r.headers.get("webhook-id") == id_]
        # webhook-timestamp is the dispatcher's time_now() (CLOCK_REALTIME)
        # when it sent the request; the sink's clock is the real one.
        skew = int(req.headers["webhook-timestamp"]) - req.t
        print(f"faketime +30s: webhook-timestamp is {skew:.1f} s ahead of the sink's clock")
        assert 25 < skew < 35, skew
        assert req.client == s.hosts[0].address


CONNECT = ("import socket, sys\n"
           "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n"
           "print('connected')\n")


def test_a_partitioned_host_reaches_nothing_until_healed():
    if skip_reason():
        return
    with hosts.Hosts(2, cpu_percent=None) as hs, Sink(host=hs.gateway) as sink:
        def reaches(h):
            return "connected" in h.run(["python3", "-c", CONNECT, hs.gateway, sink.port]).stdout
        assert reaches(hs[0]) and reaches(hs[1])
        hs[1].partition()
        assert not reaches(hs[1])
        assert reaches(hs[0])               # the others are untouched
        hs[1].heal()
        assert reaches(hs[1])


def test_a_host_runs_under_its_cpu_quota_and_kill_ends_all_of_it():
    if skip_reason():
        return
    with hosts.Hosts(1, cpu_percent=25) as hs:
        h = hs[0]
        # 1.5 s of wall time spinning: at 25% of a core the host gets about
        # 0.4 s of CPU; a loaded machine can only give it less.
        h.run(["python3", "-c", "import time\nt = time.time()\n"
                                "while time.time() - t < 1.5: pass"])
        used = h.cpu_usage_s()
        print(f"cpu quota 25%: {used:.2f} s of CPU in 1.5 s, throttled {h.throttled()} times")
        assert used < 0.75, used
        assert h.throttled() > 0
        procs = [h.spawn(["sh", "-c", "sleep 300 & sleep 300"]) for _ in range(3)]
        deadline = time.time() + 10
        while len(h.pids()) < 6:
            assert time.time() < deadline, h.pids()
            time.sleep(0.02)
        h.kill()
        assert not h.pids()
        assert all(p.returncode == -9 for p in procs), [p.returncode for p in procs]
