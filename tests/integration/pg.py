#!/usr/bin/env python3
"""A throwaway PostgreSQL 15 cluster for the tests and benches.

    with pg.Cluster() as cluster:
        url = cluster.create_database("t1")     # postgresql://postgres@127.0.0.1:PORT/t1
        ...
        cluster.drop_database("t1")

Cluster() runs initdb and pg_ctl from /usr/lib/postgresql/15/bin in a
temporary folder, as the unprivileged system user `postdate-test` when run
as root (created if missing; postgres refuses to run as root), listening
on 127.0.0.1 at a free port (and on more addresses when asked: the root
side of the simulated hosts' bridge, see hosts.py) and on a unix socket in
the folder. fsync stays on, since the ingest bench measures real commits;
max_connections is 200 and shared_buffers modest, so that many clusters
and stacks fit on one machine. Authentication is `trust` from loopback,
the unix socket and the private ranges the simulated hosts use; the
superuser is `postgres`. The cluster is stopped and its folder removed by
stop(), on leaving the `with`, and at exit (atexit), failures included.

From a shell:

    python3 tests/integration/pg.py start DIR [--listen ADDR]...
        starts a cluster in DIR (made if missing) and prints its URL
    python3 tests/integration/pg.py stop DIR
        stops it and removes DIR

The engine a test or bench runs on is picked by one environment variable,
POSTDATE_TEST_DATABASE: unset or `sqlite` for a SQLite file (the default),
`pg` for a database in a cluster of this module (see database_setting()).
"""

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["Cluster", "BIN", "USER", "engine", "database_setting"]

BIN = "/usr/lib/postgresql/15/bin"
USER = "postdate-test"

# Where the simulated hosts (hosts.py) live: they reach a cluster by TCP
# on the root side of their bridge.
TRUSTED = ("127.0.0.1/32", "::1/128", "10.0.0.0/8", "192.168.0.0/16")

_running = []           # every started Cluster, stopped at exit


def engine():
    """The engine the tests run on: 'sqlite' (default) or 'pg', from
    POSTDATE_TEST_DATABASE."""
    value = os.environ.get("POSTDATE_TEST_DATABASE", "sqlite").strip().lower()
    if value in ("", "sqlite"):
        return "sqlite"
    if value in ("pg", "postgres", "postgresql"):
        return "pg"
    raise ValueError(f"POSTDATE_TEST_DATABASE={value!r}: expected sqlite or pg")


def database_setting(folder, name="postdate", cluster=None):
    """The `database =` value a test's configuration gets: an absolute
    SQLite path in folder, or, on pg, a fresh database `name` in cluster
    (one is started, and stopped at exit, when none is given)."""
    if engine() == "sqlite":
        return os.path.join(os.path.abspath(folder), name + ".db")
    cluster = cluster or shared_cluster()
    return cluster.create_database(name)


_shared = None


def shared_cluster():
    """One cluster for a whole test run, started on first use."""
    global _shared
    if _shared is None:
        _shared = Cluster()
    return _shared


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_user():
    """The uid and gid to run postgres as: postdate-test when root (made
    with useradd when missing), else whoever runs the tests."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", USER], check=True)
        pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid


class Cluster:
    """A running PostgreSQL; see the module text."""

    def __init__(self, folder=None, listen=(), port=None):
        self.uid, self.gid = _ensure_user()
        self.owns_folder = folder is None
        self.dir = folder or tempfile.mkdtemp(prefix="postdate-pg-")
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.socket_dir = self.dir
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = port or _free_port()
        self.listen = ["127.0.0.1", *listen]
        self.started = False
        os.chown(self.dir, self.uid, self.gid)
        # The temporary folder is 0700; postgres needs only its own access.
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    # ---- running things as the cluster's user ----

    def _as_user(self, argv, **kw):
        if os.geteuid() == 0 and self.uid != 0:
            argv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                    "--init-groups", "--", *argv]
        return subprocess.run(argv, cwd=self.dir, **kw)

    def _start(self):
        t0 = time.time()
        p = self._as_user([os.path.join(BIN, "initdb"), "-D", self.data, "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"],
                          capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"initdb failed (every folder above {self.dir} must be "
                               f"searchable by uid {self.uid}):\n{p.stdout}{p.stderr}")
        settings = {
            "listen_addresses": "'" + ",".join(self.listen) + "'",
            "port": self.port,
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": 200,
            "shared_buffers": "'64MB'",
            # Real commits: the ingest bench compares with pgbench on the same cluster.
            "fsync": "on",
            "synchronous_commit": "on",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %d '",
        }
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# tests/integration/pg.py\n")
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n")
            for net in TRUSTED:
                f.write(f"host all all {net} trust\n")
        _running.append(self)
        self.started = True
        p = self._as_user([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-l", self.log_path,
                           "-w", "-t", "60", "start"], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{p.stdout}{p.stderr}\n{self.log()}")
        self.start_seconds = time.time() - t0

    # ---- using it ----

    def url(self, database="postgres", host="127.0.0.1"):
        """A libpq connection URL for database, by TCP to host."""
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def socket_url(self, database="postgres"):
        """The same by the unix socket in the cluster's folder."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def psql(self, *sql, database="postgres", check=True):
        """Runs each sql (its own transaction) with one psql over TCP;
        returns the output (unaligned, no headers)."""
        commands = [a for s in sql for a in ("-c", s)]
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.url(database), *commands],
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {p.stderr.strip()}")
        return p.stdout.strip()

    def create_database(self, name, template="template0", strategy="wal_log"):
        """Makes database name (dropped first if there) and returns its URL.
        About 80 ms here (2 cores, fsync on) plus psql's own 50 ms; the
        strategy (WAL_LOG, PostgreSQL 15's default, or FILE_COPY) and the
        template (0 or 1) made no measurable difference, and WAL_LOG takes
        no checkpoint that would stall a bench running beside it."""
        _check_name(name)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                  f'CREATE DATABASE "{name}" TEMPLATE {template} STRATEGY {strategy}')
        return self.url(name)

    def drop_database(self, name):
        _check_name(name)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # ---- stopping ----

    def stop(self):
        if self.started:
            self.started = False
            self._as_user([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-m", "fast",
                           "-w", "-t", "30", "stop"], capture_output=True)
        if self in _running:
            _running.remove(self)
        if self.owns_folder:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _check_name(name):
    if not name or len(name) > 63 or not all(c.isalnum() or c == "_" for c in name):
        raise ValueError(f"database name {name!r}: letters, digits and _ only, at most 63")


@atexit.register
def _stop_all():
    for c in list(_running):
        c.stop()


def main(argv):
    usage = ("usage: pg.py start DIR [--listen ADDR]... | pg.py stop DIR\n"
             "  start: a PostgreSQL 15 cluster in DIR (made if missing), left\n"
             "         running; prints its libpq URL\n"
             "  stop:  stops the cluster in DIR and removes DIR\n")
    if len(argv) >= 1 and argv[0] in ("-h", "--help"):
        sys.stdout.write(usage)
        return 0
    if len(argv) < 2 or argv[0] not in ("start", "stop"):
        sys.stderr.write(usage)
        return 2
    command, folder = argv[0], os.path.abspath(argv[1])
    if command == "start":
        listen, rest = [], argv[2:]
        while rest:
            if rest[0] != "--listen" or len(rest) < 2:
                sys.stderr.write(usage)
                return 2
            listen.append(rest[1])
            rest = rest[2:]
        c = Cluster(folder=folder, listen=listen)
        _running.remove(c)          # left running for the shell
        print(c.url())
        return 0
    data = os.path.join(folder, "data")
    if not os.path.isdir(data):
        sys.stderr.write(f"pg.py: no cluster in {folder}\n")
        return 1
    st = os.stat(data)
    argv = [os.path.join(BIN, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0 and st.st_uid != 0:
        argv = ["setpriv", f"--reuid={st.st_uid}", f"--regid={st.st_gid}", "--init-groups",
                "--", *argv]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        return 1
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
