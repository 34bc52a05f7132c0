#!/usr/bin/env python3
"""Runs the browser tests: tests/browser/page.test.mjs drives Debian's chromium
(through playwright-core) against a real postdate stack, started here the way
the integration tests start it (tests/integration/harness.py: nginx, the
FastCGI programs and SQLite on a loopback port, no dispatcher), and stopped
afterwards whatever happens.

Usage: run.py [SUBSTRING...] runs only the tests whose name contains one.
The last line is "browser: N passed, N failed".
"""

import os
import re
import shutil
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SUMMARY = re.compile(r"^browser: [0-9]+ passed, [0-9]+ failed$")
# The runner times out each test itself; this only ends a runner that hangs.
RUNNER_TIMEOUT_S = 300


def missing_prerequisite():
    """Why the suite cannot run here, or None. `make deps` installs all three."""
    if shutil.which("node") is None:
        return "node is not installed (make deps)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed (make deps)"
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        return "playwright-core is not installed: run make deps (npm ci in tests/browser)"
    return None


def main():
    problem = missing_prerequisite()
    if problem:
        print(f"browser: cannot run: {problem}")
        print("browser: 0 passed, 1 failed")
        return 1

    summary = None
    with harness.Stack() as stack:
        env = dict(os.environ,
                   POSTDATE_URL=f"http://127.0.0.1:{stack.port}",
                   POSTDATE_TOKEN=stack.token,
                   POSTDATE_CONF=stack.conf,
                   POSTDATE_TOP=harness.TOP)
        # The node runner prints the summary; pass its output on as it comes,
        # but keep the summary for the very last line.
        proc = subprocess.Popen(["node", os.path.join(HERE, "page.test.mjs"), *sys.argv[1:]],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        watchdog = threading.Timer(RUNNER_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                if SUMMARY.match(line.rstrip("\n")):
                    summary = line.rstrip("\n")
                else:
                    print(line, end="", flush=True)
            rc = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if rc != 0:
            print("  stack log:\n" + stack.log()[-1500:])
    if summary is None:
        print(f"browser: the test runner ended (status {rc}) without a summary")
        print("browser: 0 passed, 1 failed")
        return 1
    print(summary)
    return rc


if __name__ == "__main__":
    sys.exit(main())
