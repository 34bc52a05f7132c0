#!/usr/bin/env python3
"""The many-hosts figure (issue 18): jobs/s of 1 dispatcher on 1 simulated
host against 3 dispatchers on 3 hosts, every host under the same CPU quota,
the sink answering after 40 ms, `concurrency` 32 per dispatcher. Rates are
counted at the sink (first arrival to last), not from postdate's logs.
Prints one markdown row; details on stderr. Needs root (network namespaces,
cgroups): see tests/integration/hosts.py. The engine is the tests' choice:
POSTDATE_TEST_DATABASE=sqlite (default) or pg (tests/integration/pg.py).

usage: bench/hosts.py [COUNT_PER_DISPATCHER] [CPU_PERCENT]   (defaults 3000, 25)
"""

import os
import resource
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import hosts  # noqa: E402
import test_hosts  # noqa: E402


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rate(n_hosts, count, cpu_percent):
    """Jobs/s of n_hosts dispatchers delivering count messages each."""
    with test_hosts.Setup(n_hosts, cpu_percent=cpu_percent) as s:
        t0 = time.time()
        total = count * n_hosts
        ids = s.schedule(total, time.time())
        print(f"bench: {total} messages scheduled in {time.time() - t0:.1f} s", file=sys.stderr)
        c0 = cpu_s()
        procs = [s.spawn_dispatch(h, "--watch") for h in s.hosts]
        try:
            s.wait_unique(ids, timeout=600)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
        got = s.sink.deliveries("/hook")
        first, last = min(d[2] for d in got), max(d[2] for d in got)
        per_host = [sum(1 for d in got if d[1] == h.address) for h in s.hosts]
        cpu = [round(h.cpu_usage_s(), 1) for h in s.hosts]
        r = len(set(d[0] for d in got)) / (last - first)
        print(f"bench: {n_hosts} dispatcher(s): {r:.0f} jobs/s over {last - first:.1f} s; "
              f"per host {per_host}; host CPU s {cpu} (quota {cpu_percent}% each); "
              f"sink and harness CPU {cpu_s() - c0:.1f} s; {len(got) - total} repeated",
              file=sys.stderr)
        return r


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    try:
        count = int(argv[0]) if argv else 3000
        cpu_percent = int(argv[1]) if len(argv) > 1 else 25
        if count < 1 or not 1 <= cpu_percent <= 100 or len(argv) > 2:
            raise ValueError
    except ValueError:
        print("usage: bench/hosts.py [COUNT_PER_DISPATCHER] [CPU_PERCENT]", file=sys.stderr)
        return 2
    reason = hosts.available()
    if reason:
        # A row that says so, so that `make bench` as a user still ends.
        print(f"| 3 dispatchers on 3 hosts vs 1 (jobs/s) | skipped: {reason} | — | — | ≥ 2.5 |")
        return 0
    one = rate(1, count, cpu_percent)
    three = rate(3, count, cpu_percent)
    engine = "PostgreSQL" if test_hosts.pg.engine() == "pg" else "SQLite"
    print(f"| 3 dispatchers on 3 hosts vs 1, {cpu_percent}% of a core each, target 40 ms, "
          f"32 in flight each, {engine} (jobs/s) | {three:.0f} | 1 dispatcher: {one:.0f} | "
          f"{three / one:.2f} | ≥ 2.5 |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
