#!/usr/bin/env python3
"""The client side of bench/queue.sh, over keep-alive HTTP/1.1 to nginx.

  queue_client.py fill PORT QUEUE COUNT
      schedules COUNT jobs into QUEUE through POST /api/schedule (16 at a time).
  queue_client.py workers PORT QUEUE WORKERS BATCH KIND [EACH]
      WORKERS worker processes, each looping: POST /api/receive max=BATCH,
      then POST /api/ack of what it got in one JSON `items` batch, until a
      receive comes back empty or it has acked EACH jobs. KIND is postdate
      or baseline (how an ack's answer reads). Prints "jobs seconds": every
      job acked, and the time from the start of the first worker to the end
      of the last.
  queue_client.py latency SCHEDULE_PORT QUEUE_PORT QUEUE COUNT
      one worker long-polls (wait=20, max=1) and acks; COUNT jobs are
      published one at a time, each once the last was received. Prints
      each publish -> received latency in ms, one a line.

Any answer that is not what the contract says stops the run (exit 1): a
fast run full of errors must not pass for a fast one.
"""

import http.client
import json
import multiprocessing
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def call(conn, path, body, headers, want=200):
    conn.request("POST", path, body, headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != want:
        sys.exit(f"queue_client: {path} answered {r.status}: {data[:300]!r}")
    return json.loads(data)


def fill(port, queue, count):
    local = threading.local()

    def one(i):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port)
        body = urllib.parse.urlencode({"queue": queue, "payload": f"job {i}"})
        call(local.conn, "/api/schedule", body, FORM, want=201)

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(one, range(count), chunksize=64))


def worker(port, queue, batch, kind, each, start, out):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    acked = 0
    start.wait()
    while acked < each:
        receive = urllib.parse.urlencode({"queue": queue, "max": min(batch, each - acked)})
        got = call(conn, "/api/receive", receive, FORM)["messages"]
        if not got:
            break
        items = [{"id": m["id"], "receipt": m["receipt"]} for m in got]
        answer = call(conn, "/api/ack", json.dumps({"items": items}), JSON)
        if kind == "postdate":
            ok = sum(1 for r in answer["results"] if r.get("state") == "delivered"
                     and "error" not in r)
        else:
            ok = answer["acked"]
        if ok != len(items):
            sys.exit(f"queue_client: {len(items)} acked, {ok} accepted: {answer}")
        acked += ok
    out.put((acked, time.time()))


def workers(port, queue, n, batch, kind, each):
    start = multiprocessing.Event()
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker,
                                     args=(port, queue, batch, kind, each, start, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(0.5)              # every worker connected and waiting
    t0 = time.time()
    start.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"queue_client: a worker exited {p.exitcode}")
    print(sum(a for a, _ in results), f"{max(t for _, t in results) - t0:.3f}")


def latency(schedule_port, queue_port, queue, count):
    received = {}
    arrived = threading.Event()
    stop = threading.Event()

    def long_poll():
        conn = http.client.HTTPConnection("127.0.0.1", queue_port, timeout=60)
        body = urllib.parse.urlencode({"queue": queue, "max": 1, "wait": 20})
        while not stop.is_set():
            got = call(conn, "/api/receive", body, FORM)["messages"]
            t = time.time()
            for m in got:
                received[m["payload"]] = t
                call(conn, "/api/ack", json.dumps({"items": [
                    {"id": m["id"], "receipt": m["receipt"]}]}), JSON)
            if got:
                arrived.set()

    # The queue exists (and its worker is waiting) before the first publish.
    pub = http.client.HTTPConnection("127.0.0.1", schedule_port)
    call(pub, "/api/schedule", urllib.parse.urlencode({"queue": queue, "payload": "warm"}),
         FORM, want=201)
    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    if not arrived.wait(25):
        sys.exit("queue_client: the warm-up job was never received")
    time.sleep(0.2)              # the worker is back in its long poll
    sent = {}
    for i in range(count):
        arrived.clear()
        payload = f"lat {i}"
        sent[payload] = time.time()
        call(pub, "/api/schedule", urllib.parse.urlencode({"queue": queue, "payload": payload}),
             FORM, want=201)
        if not arrived.wait(25):
            sys.exit(f"queue_client: job {i} was not received within 25 s")
        time.sleep(0.02)         # the worker is back in its long poll
    stop.set()
    for payload, t in sent.items():
        print(f"{(received[payload] - t) * 1000:.3f}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "fill":
        fill(int(args[0]), args[1], int(args[2]))
    elif mode == "workers":
        workers(int(args[0]), args[1], int(args[2]), int(args[3]), args[4],
                int(args[5]) if len(args) > 5 else 1 << 62)
    elif mode == "latency":
        latency(int(args[0]), int(args[1]), args[2], int(args[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
