#!/usr/bin/env python3
"""The many-hosts figure (issue 18): jobs/s of 1 dispatcher on 1 simulated
host against 3 dispatchers on 3 hosts, every host under the same CPU quota,
the sink answering after 40 ms, `concurrency` 32 per dispatcher. Rates are
counted at the sink (first arrival to last), not from postdate's logs.
The sink is nginx with the echo module's echo_sleep (Debian's
libnginx-mod-http-echo, installed by `make bench`), whose access log
records each request: the tests' Python sink used more CPU than the
dispatchers it served, so it, not they, set the rate.
Prints one markdown row; details on stderr. Needs root (network namespaces,
cgroups): see tests/integration/hosts.py. The engine is the tests' choice:
POSTDATE_TEST_DATABASE=sqlite (default) or pg (tests/integration/pg.py).

usage: bench/hosts.py [COUNT_PER_DISPATCHER] [CPU_PERCENT]   (defaults 3000, 25)
"""

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import hosts  # noqa: E402
import test_hosts  # noqa: E402


ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"


class NginxSink:
    """The bench's sink: nginx on host:port answering every request after
    delay seconds, and recording (webhook-id, source address, time) in its
    access log; deliveries() and url() as the tests' Sink has them."""

    def __init__(self, host, delay):
        self.host = host
        self.dir = tempfile.mkdtemp(prefix="postdate-bench-sink-")
        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port = probe.getsockname()[1]
        self.log = os.path.join(self.dir, "arrivals")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module {ECHO_MODULE};
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
	client_body_temp_path {self.dir};
	log_format arrival '$uri $http_webhook_id $remote_addr $msec';
	access_log {self.log} arrival;
	keepalive_requests 10000000;
	server {{
		listen {host}:{self.port} backlog=4096;
		location / {{ echo_sleep {delay}; echo ok; }}
	}}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf, "-e",
                                      os.path.join(self.dir, "error.log"), "-g", "daemon off;"])
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection((host, self.port), timeout=1).close()
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("the nginx sink did not start")
                time.sleep(0.05)

    def url(self, path):
        return f"http://{self.host}:{self.port}{path}"

    def deliveries(self, path=None):
        got = []
        with open(self.log) as f:
            for line in f:
                uri, id_, addr, t = line.split()
                if path is None or uri == path:
                    got.append((id_, addr, float(t)))
        return got

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        subprocess.run(["rm", "-rf", self.dir])


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rate(n_hosts, count, cpu_percent):
    """Jobs/s of n_hosts dispatchers delivering count messages each."""
    with test_hosts.Setup(n_hosts, cpu_percent=cpu_percent, sink=NginxSink) as s:
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
    reason = hosts.available() or (None if os.path.exists(ECHO_MODULE) else
                                    "no nginx echo module (libnginx-mod-http-echo)")
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
