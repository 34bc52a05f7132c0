"""The PostgreSQL 15 cluster the tests and benches run on (pg.py): it
starts as an unprivileged user, answers psql through its URL (TCP and unix
socket), keeps fsync on, and makes and drops per-test databases."""

import os
import subprocess

import pg


def psql(url, sql):
    p = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_pg_cluster_starts_and_answers():
    with pg.Cluster() as cluster:
        data = cluster.data
        assert psql(cluster.url(), "SELECT 6 * 7") == "42"
        assert psql(cluster.url(), "SHOW server_version").startswith("15.")
        assert psql(cluster.url(), "SHOW fsync") == "on"
        assert int(psql(cluster.url(), "SHOW max_connections")) >= 200
        # The server runs as the unprivileged user, never as root.
        pid = int(open(os.path.join(data, "postmaster.pid")).readline())
        assert os.stat(f"/proc/{pid}").st_uid != 0 or os.geteuid() != 0
        assert psql(cluster.socket_url(), "SELECT current_database()") == "postgres"

        url = cluster.create_database("pd_cluster_test")
        psql(url, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
        assert psql(url, "SELECT sum(x) FROM t") == "3"
        # Made again, it is empty: each test starts from nothing.
        url = cluster.create_database("pd_cluster_test")
        assert psql(url, "SELECT count(*) FROM pg_tables WHERE tablename = 't'") == "0"
        cluster.drop_database("pd_cluster_test")
        assert psql(cluster.url(), "SELECT count(*) FROM pg_database "
                                   "WHERE datname = 'pd_cluster_test'") == "0"
    # Stopped and gone on leaving the with.
    assert not os.path.exists(data)
