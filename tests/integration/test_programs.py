"""The programs as an operator meets them: --help, exit statuses, start-up
errors that name the line, and plain CGI without a FastCGI server."""

import os
import subprocess
import tempfile

from harness import TOP

PROGRAMS = ["schedule", "status", "cancel", "queue", "topics", "recurring", "health",
            "metrics"]


def run(args, env=None, stdin=b""):
    return subprocess.run(args, input=stdin, capture_output=True, env=env, timeout=30)


def test_every_program_has_help_and_exits_0():
    for name in PROGRAMS:
        p = run([os.path.join(TOP, "cgi-bin", name), "--help"])
        assert p.returncode == 0, (name, p)
        assert b"usage: " + name.encode() in p.stdout
        assert b"Exit status" in p.stdout
    p = run([os.path.join(TOP, "bin", "postdate-stack"), "--help"])
    assert p.returncode == 0 and b"usage: postdate-stack" in p.stdout


def test_bad_usage_exits_2():
    for name in PROGRAMS:
        p = run([os.path.join(TOP, "cgi-bin", name), "--bogus"])
        assert p.returncode == 2, (name, p)
        assert b"usage:" in p.stderr


def test_bad_configuration_exits_1_naming_the_line():
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "postdate.conf")
        with open(conf, "w") as f:
            f.write("database = x.db\n# fine\nconcurency = 4\n")
        for name in PROGRAMS:
            p = run([os.path.join(TOP, "cgi-bin", name), "-c", conf])
            assert p.returncode == 1, (name, p)
            assert f"{conf}:3: unknown key \"concurency\"".encode() in p.stderr, p.stderr


def test_configuration_comes_from_postdate_conf_when_no_flag():
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "env.conf")
        with open(conf, "w") as f:
            f.write("max_body = 12\n")
        env = dict(os.environ, POSTDATE_CONF=conf)
        p = run([os.path.join(TOP, "cgi-bin", "health")], env=env)
        assert p.returncode == 1 and f"{conf}:1: max_body".encode() in p.stderr, p


def cgi_env(conf, **kw):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POSTDATE_CONF": conf,
           "GATEWAY_INTERFACE": "CGI/1.1"}
    # Under `make test SANITIZE=1`, where the sanitizers write their reports.
    env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
    env.update(kw)
    return env


def test_programs_answer_one_request_as_plain_cgi():
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "postdate.conf")
        with open(conf, "w") as f:
            f.write("database = cgi.db\ntoken = plain-cgi-token-0123456789\n")
        body = b"url=http%3A%2F%2Fexample.com%2F&delay=1h"
        p = run([os.path.join(TOP, "cgi-bin", "schedule")], stdin=body, env=cgi_env(
            conf, REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(body)),
            CONTENT_TYPE="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION="Bearer plain-cgi-token-0123456789"))
        assert p.returncode == 0, p
        head, _, rest = p.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"Status: 201 Created"), p.stdout
        assert b"Location: /api/status?id=" in head
        assert b'"state":"pending"' in rest
        p = run([os.path.join(TOP, "cgi-bin", "status")], env=cgi_env(
            conf, REQUEST_METHOD="GET", QUERY_STRING="state=all",
            HTTP_AUTHORIZATION="Bearer plain-cgi-token-0123456789"))
        assert p.stdout.startswith(b"Status: 200 OK"), p.stdout
        assert b'"pending":1' in p.stdout


def processes_mentioning(text):
    p = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


def test_stopping_the_stack_ends_every_process_it_started():
    # Regression: libfcgi's SIGTERM handler kept idle workers in accept(), and
    # the last pid of each spawn-fcgi pid file (no final newline) was skipped.
    import time
    from harness import Stack
    s = Stack()
    try:
        s.schedule()
        started = processes_mentioning(s.dir)
        assert len(started) >= 6 + 1, started     # 6 FastCGI workers, nginx
        s.stop()
        deadline = time.time() + 5
        while processes_mentioning(s.dir) and time.time() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(s.dir) == []
    finally:
        s.close()
