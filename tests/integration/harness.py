"""The integration-test harness: a real postdate stack on a loopback port.

Stack() starts bin/postdate-stack (nginx + the FastCGI programs + SQLite) in
a temporary folder with a configuration of the test's choosing; its methods
talk HTTP to it and read its database directly, to check what was written.

POSTDATE_TEST_DATABASE=pg runs every stack on PostgreSQL instead: each
Stack gets a fresh database of its own on one test cluster (pg.py), whose
URL its configuration names, dropped when the stack closes. The cluster is
the one POSTDATE_TEST_PG_URL names (a running cluster's postgres database,
as `make test-pg` starts one), else one started for the run. query()
then reads that database with psql (the SQL must be PostgreSQL's too).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse

import pg

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "test-token-0123456789abcdef"


def background(fn):
    """Marks a test that mostly waits for the clock (it must start its own
    Stack): run.py runs it in a thread beside the other tests."""
    fn.background = True
    return fn


class ExternalCluster:
    """A cluster started outside this run (`make test-pg`), by the URL of
    its postgres database: makes and drops the tests' databases on it."""

    def __init__(self, url):
        self.base = url

    def url(self, database="postgres"):
        parts = urllib.parse.urlsplit(self.base)
        return urllib.parse.urlunsplit(parts._replace(path="/" + database))

    def psql(self, *sql, database="postgres"):
        commands = [a for q in sql for a in ("-c", q)]
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.url(database), *commands],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {p.stderr.strip()}")
        return p.stdout.strip()

    def create_database(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                  f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_cluster = None


def test_cluster():
    """The cluster the tests' PostgreSQL databases are made on."""
    global _cluster
    if _cluster is None:
        url = os.environ.get("POSTDATE_TEST_PG_URL")
        _cluster = ExternalCluster(url) if url else pg.shared_cluster()
    return _cluster


def _sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(v).hex() + "'::bytea"
    return "'" + str(v).replace("'", "''") + "'"


def _sql_value(text):
    """A psql output field as sqlite3 would give it: None, int, bytes or str."""
    if text == "<<NULL>>":
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    if text.startswith("\\x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return text
    return text


def sqlite_only(reason):
    """Marks a test of what only SQLite has (a file, WAL, a v1 database):
    run.py skips it on PostgreSQL, saying why."""
    def mark(fn):
        fn.sqlite_only = reason
        return fn
    return mark


def pg_only(reason):
    """Marks a test of what only the PostgreSQL engine does: run.py skips
    it on SQLite, saying why."""
    def mark(fn):
        fn.pg_only = reason
        return fn
    return mark


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Stack:
    """A running postdate. Use as a context manager, or call stop()."""

    def __init__(self, config=None, tokens=(TOKEN,), database="postdate.db",
                 dispatcher=False, allow_targets="127.0.0.0/8, ::1"):
        # Without a dispatcher messages stay where the test puts them; with
        # one, the stack runs bin/dispatch --for 60 in a loop as cron would.
        self.dispatcher = dispatcher
        self.dir = tempfile.mkdtemp(prefix="postdate-test-")
        self.port = free_port()
        self.token = tokens[0] if tokens else None
        self.conf = os.path.join(self.dir, "postdate.conf")
        # The tests' targets are on loopback, which the target policy
        # refuses unless allowed; allow_targets=None tests the default.
        self.engine = pg.engine()
        self.pg_name = None
        if database.startswith(("postgresql://", "postgres://")):
            # A database the test made itself (test_hosts: on a cluster of
            # its own that the simulated hosts reach too): used as given.
            self.db_url = database
            lines = [f"database = {database}"]
        elif self.engine == "pg":
            # One database per stack, named after its folder (unique).
            self.pg_name = "t_" + os.path.basename(self.dir).replace("-", "_").lower()
            # A database in a folder not made yet (the tests of a database
            # that cannot be opened) is, here, a database not created yet:
            # create_late_database() makes either.
            if os.path.dirname(database):
                self.db_url = test_cluster().url(self.pg_name)
            else:
                self.db_url = test_cluster().create_database(self.pg_name)
            lines = [f"database = {self.db_url}"]
        else:
            lines = [f"database = {database}"]
        if allow_targets:
            lines.append(f"allow_targets = {allow_targets}")
            # ... and port 9 (discard), the tests' address that nothing answers.
            if "allow_ports" not in (config or {}):
                lines.append("allow_ports = 9, 80, 443, 1024-65535")
        lines += [f"token = {t}" for t in tokens]
        for key, value in (config or {}).items():
            lines.append(f"{key} = {value}")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.db_path = os.path.join(self.dir, database)
        self.log_path = os.path.join(self.dir, "stack.log")
        self.proc = None
        self.dispatchers = []        # the Popen of every spawn_dispatch()
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [os.path.join(TOP, "bin", "postdate-stack"), "--port", str(self.port),
             "--dir", self.dir, "--conf", self.conf, "--quiet",
             "--with-dispatch" if self.dispatcher else "--no-dispatch"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # A process group of its own, as a terminal gives a job, so that
            # interrupt() can signal the whole group as Ctrl-C does.
            process_group=0)
        log.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postdate-stack exited:\n" + self.log())
            try:
                # The health program answering at all (ok true or false) means up.
                if "ok" in (self.get("/api/health", token=None).json or {}):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("postdate-stack did not become healthy:\n" + self.log())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def interrupt(self, timeout=30):
        """What Ctrl-C does: SIGINT to the stack's whole process group.
        Returns the stack's exit status."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Who is still there says what the stop waits for.
            ps = subprocess.run(["ps", "-eo", "pid,ppid,pgid,stat,etime,args"],
                                capture_output=True, text=True).stdout.splitlines()
            tree, rows = {str(self.proc.pid)}, [line.split(None, 5) for line in ps[1:]]
            for _ in range(8):                  # its descendants, a generation at a time
                tree |= {r[0] for r in rows if r[1] in tree}
            left = "\n".join(ps[:1] + [" ".join(r) for r in rows if r[0] in tree])
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"postdate-stack did not stop within {timeout} s of SIGINT; "
                                 f"still running:\n{left}\nits log:\n{self.log()[-3000:]}")
        self.proc = None
        return rc

    def close(self):
        for p in self.dispatchers:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.stop()
        if self.pg_name is not None:
            try:
                test_cluster().drop_database(self.pg_name)
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pass
            self.pg_name = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def log(self):
        """The stack's output and the programs' log lines."""
        text = ""
        paths = [self.log_path, os.path.join(self.dir, "run", "postdate.log")]
        paths += [p.log_path for p in self.dispatchers]
        for path in paths:
            try:
                with open(path) as f:
                    text += f.read()[-4000:]
            except OSError:
                pass
        return text

    # ---- bin/dispatch, run by the test ----

    def dispatch_command(self, *args):
        return [os.path.join(TOP, "bin", "dispatch"), "-c", self.conf, *map(str, args)]

    def dispatch(self, *args, timeout=60):
        """Runs bin/dispatch -c CONF ARGS to completion: (returncode, stderr)."""
        p = subprocess.run(self.dispatch_command(*args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout)
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def spawn_dispatch(self, *args):
        """Starts bin/dispatch -c CONF ARGS in the background. Its stderr goes
        to a file in the stack folder, the Popen's `log_path` (also part of
        log()); close() kills any still running."""
        n = len(self.dispatchers) + 1
        log_path = os.path.join(self.dir, f"dispatch-{n}.log")
        with open(log_path, "a") as log:
            p = subprocess.Popen(self.dispatch_command(*args), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=log)
        p.log_path = log_path
        self.dispatchers.append(p)
        return p

    def dispatch_log(self, proc):
        """What a spawned dispatcher has written to its stderr so far."""
        with open(proc.log_path, errors="replace") as f:
            return f.read()

    # ---- HTTP ----

    def request(self, method, path, body=None, headers=None, token="default"):
        headers = dict(headers or {})
        if token == "default":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def get(self, path, params=None, **kw):
        if params:
            path += "?" + urllib.parse.urlencode(params, doseq=True)
        return self.request("GET", path, **kw)

    def post_form(self, path, fields, **kw):
        """fields: a dict, or a list of (name, value) pairs for repeated names."""
        body = urllib.parse.urlencode(fields, doseq=True)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers.update(kw.pop("headers", {}))
        return self.request("POST", path, body=body, headers=headers, **kw)

    def post_json(self, path, obj, **kw):
        body = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
        headers = {"Content-Type": "application/json"}
        headers.update(kw.pop("headers", {}))
        return self.request("POST", path, body=body, headers=headers, **kw)

    def schedule(self, **fields):
        fields.setdefault("url", "http://127.0.0.1:9/hook")
        r = self.post_form("/api/schedule", fields)
        assert r.status == 201, r
        return r.json

    # ---- the database, read directly ----

    def query(self, sql, *args):
        if self.engine == "pg":
            return self._pg_query(sql, *args)
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def _pg_query(self, sql, *args):
        """query() on PostgreSQL: ? placeholders filled with literals, one
        psql, rows split on the ASCII separators (values may hold newlines)."""
        pieces = sql.split("?")
        if len(pieces) - 1 != len(args):
            raise ValueError(f"{sql!r}: {len(pieces) - 1} placeholders, {len(args)} values")
        text = pieces[0] + "".join(_sql_literal(a) + rest for a, rest in zip(args, pieces[1:]))
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-F", "\x1f", "-R", "\x1e", "-P", "null=<<NULL>>",
                            "-d", self.db_url, "-c", text],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"psql {text!r}: {p.stderr.strip()}")
        out = p.stdout.rstrip("\n")
        if out == "":
            return []
        return [tuple(_sql_value(f) for f in row.split("\x1f")) for row in out.split("\x1e")]

    def execute(self, sql, *args):
        """Changes the database directly (a test standing in for what
        another program would have done), committed; the SQL must suit
        both engines."""
        if self.engine == "pg":
            self._pg_query(sql, *args)
            return
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            db.execute(sql, args)
            db.commit()
        finally:
            db.close()

    def create_late_database(self):
        """Makes the database a Stack(database="folder/name") could not
        open: its folder on SQLite, the database itself on PostgreSQL."""
        if self.engine == "pg":
            test_cluster().create_database(self.pg_name)
        else:
            os.makedirs(os.path.dirname(self.db_path), exist_ok=True)

    def count(self, table="messages"):
        return self.query(f"SELECT count(*) FROM {table}")[0][0]

    # The store's v2 tables: a message row (state 0 while alive, else how
    # it ended), its payload, and, while alive, its live row (lease token,
    # buffer flag).
    STATE_OF = ("CASE m.state WHEN 0 THEN CASE WHEN l.token <> 0 THEN 'delivering' "
                "ELSE 'pending' END WHEN 2 THEN 'delivered' WHEN 3 THEN 'failed' "
                "WHEN 4 THEN 'cancelled' WHEN 5 THEN 'expired' END")
    FROM = ("messages m LEFT JOIN live l ON l.key = m.key "
            "LEFT JOIN payloads p ON p.key = m.key")

    def state_in_db(self, id_):
        rows = self.query(f"SELECT {self.STATE_OF} FROM {self.FROM} WHERE m.id = ?", id_)
        return rows[0][0] if rows else None

    def buffered(self, id_=None):
        """How many messages (or whether message id_) are in the near-term buffer."""
        if id_ is None:
            return self.query("SELECT count(*) FROM live WHERE buffered = 1")[0][0]
        return self.query(f"SELECT count(*) FROM {self.FROM} WHERE m.id = ? AND "
                          "l.buffered = 1", id_)[0][0]

    def payload_of(self, id_):
        rows = self.query("SELECT p.payload FROM messages m JOIN payloads p ON p.key = m.key "
                          "WHERE m.id = ?", id_)
        return rows[0][0] if rows else None

    def leased(self):
        return self.query("SELECT count(*) FROM live WHERE token <> 0")[0][0]
