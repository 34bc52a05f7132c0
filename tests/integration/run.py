#!/usr/bin/env python3
"""Runs the integration tests: every test_* function in tests/integration/test_*.py.

A test that takes a `stack` argument shares one running postdate with the
others; a test that needs its own configuration starts its own Stack.
A test marked @harness.background (one that mostly waits for the clock,
such as a recurring definition's minutes, with a Stack of its own) runs in
a thread of its own beside the others, started first and waited for last,
so that its minutes do not add to the suite's time.
Usage: run.py [SUBSTRING|MODULE...] runs only the tests whose name contains a
SUBSTRING, or all the tests of a MODULE (such as test_queues).
"""

import importlib
import inspect
import os
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    wanted = sys.argv[1:]
    tests = []
    for name in sorted(os.listdir(here)):
        if name.startswith("test_") and name.endswith(".py"):
            module = importlib.import_module(name[:-3])
            for fname, fn in inspect.getmembers(module, inspect.isfunction):
                if fname.startswith("test_") and fn.__module__ == module.__name__:
                    if not wanted or any(w in fname or w == name[:-3] for w in wanted):
                        tests.append((module.__name__, fname, fn))
    tests.sort(key=lambda t: (t[0], t[2].__code__.co_firstlineno))
    if harness.pg.engine() == "pg":
        for module, fname, fn in tests:
            if getattr(fn, "sqlite_only", None):
                print(f"skip {module}.{fname} on PostgreSQL: {fn.sqlite_only}", flush=True)
        tests = [t for t in tests if not getattr(t[2], "sqlite_only", None)]
    else:
        for module, fname, fn in tests:
            if getattr(fn, "pg_only", None):
                print(f"skip {module}.{fname} on SQLite: {fn.pg_only}", flush=True)
        tests = [t for t in tests if not getattr(t[2], "pg_only", None)]

    shared = None
    passed = failed = 0
    results = []            # of the background tests: (ok, line, traceback)
    lock = threading.Lock()

    def run_in_background(module, fname, fn):
        start = time.time()
        try:
            fn()
            outcome = (True, f"ok   {module}.{fname} ({time.time() - start:.2f}s, in the "
                             "background)", "")
        except Exception:
            outcome = (False, f"FAIL {module}.{fname} ({time.time() - start:.2f}s, in the "
                              "background)", traceback.format_exc())
        with lock:
            results.append(outcome)
            print(outcome[1], flush=True)
            if outcome[2]:
                print(outcome[2], flush=True)

    background = [threading.Thread(target=run_in_background, args=t, daemon=True)
                  for t in tests if getattr(t[2], "background", False)]
    tests = [t for t in tests if not getattr(t[2], "background", False)]
    for thread in background:
        thread.start()
    try:
        for module, fname, fn in tests:
            start = time.time()
            try:
                if "stack" in inspect.signature(fn).parameters:
                    if shared is None:
                        shared = harness.Stack()
                    fn(shared)
                else:
                    fn()
                passed += 1
                print(f"ok   {module}.{fname} ({time.time() - start:.2f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {module}.{fname} ({time.time() - start:.2f}s)", flush=True)
                traceback.print_exc()
                if shared is not None:
                    print("  stack log:\n" + shared.log()[-1500:])
    finally:
        if shared is not None:
            shared.close()
        for thread in background:
            thread.join()
    passed += sum(1 for ok, _, _ in results if ok)
    failed += sum(1 for ok, _, _ in results if not ok)
    print(f"integration: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
