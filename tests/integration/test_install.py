"""`make install` and the deployment the README's "Deploying" section gives:
files in FHS places naming the installed paths, postdate-setup making the
user, folders and configuration, and the installed programs, under
spawn-fcgi as the README starts them, behind the installed nginx and Apache
site configurations, with the installed crontab's dispatcher command, doing
the whole job as an unprivileged user.

The stack runs from a DESTDIR staging tree: every absolute path the
installed files name is taken under DESTDIR, the only change made to them
(and the port, 8080 being anyone's).
"""

import http.client
import json
import os
import pwd
import grp
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from apache import Apache
from harness import TOP, Response, free_port
from sink import Sink
from test_deploy import as_nobody

PROGRAMS = {"schedule": 2, "status": 2, "cancel": 1, "queue": 2, "topics": 1, "recurring": 1,
            "health": 1, "metrics": 1}


def make_install(destdir, *variables):
    p = subprocess.run(["make", "-s", "install", f"DESTDIR={destdir}", *variables], cwd=TOP,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def read(path):
    with open(path) as f:
        return f.read()


def mode_of(path):
    st = os.stat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            stat.S_IMODE(st.st_mode))


def test_make_install_puts_files_in_fhs_places_naming_the_installed_paths():
    d = tempfile.mkdtemp(prefix="postdate-install-")
    os.chmod(d, 0o755)
    try:
        make_install(d, "PREFIX=/opt/pd", "RUNDIR=/run/pd", "STATEDIR=/srv/pd",
                     "LOGDIR=/srv/pd-log", "POSTDATE_USER=pdsvc")
        executables = ["opt/pd/bin/dispatch", "opt/pd/sbin/postdate-setup"] + \
            [f"opt/pd/lib/postdate/cgi-bin/{p}" for p in PROGRAMS]
        data = ["opt/pd/share/postdate/www/index.html", "opt/pd/share/postdate/www/app.js",
                "opt/pd/share/postdate/postdate.crontab", "opt/pd/lib/tmpfiles.d/postdate.conf",
                "etc/postdate/nginx.conf", "etc/postdate/apache.conf",
                "etc/postdate/postdate.conf.example"] + \
            [f"opt/pd/lib/systemd/system/{u}" for u in
             ("postdate-fcgi@.service", "postdate-fcgi@.socket", "postdate-dispatch.service",
              "postdate-dispatch.timer", "postdate-dispatch-watch.service")] + \
            ["etc/logrotate.d/postdate"]
        for rel in executables:
            assert stat.S_IMODE(os.stat(os.path.join(d, rel)).st_mode) == 0o755, rel
        for rel in data:
            assert stat.S_IMODE(os.stat(os.path.join(d, rel)).st_mode) == 0o644, rel
        for page in [p for p in os.listdir(os.path.join(TOP, "man"))
                     if re.fullmatch(r".*\.[1-8]", p)] if os.path.isdir(
                         os.path.join(TOP, "man")) else []:
            assert os.path.isfile(os.path.join(d, "opt/pd/share/man", "man" + page[-1], page))

        # Every installed file that names a path names the installed one:
        # nothing of the defaults is left, and what it runs or serves exists.
        named = []
        for rel in data[2:] + ["opt/pd/sbin/postdate-setup"]:
            text = read(os.path.join(d, rel))
            for default in ("/usr/local", "/run/postdate", "/var/lib/postdate",
                            "/var/log/postdate", "User=postdate", "SocketUser=postdate"):
                assert default not in text, f"{rel} still names {default}"
            named += re.findall(r"/opt/pd/[A-Za-z0-9_./@%-]*[A-Za-z0-9_]", text)
        assert named
        for path in set(named):
            path = path.replace("%i", "schedule")
            if path.startswith(("/opt/pd/lib/postdate", "/opt/pd/bin", "/opt/pd/share",
                                "/opt/pd/sbin", "/opt/pd/lib/tmpfiles.d")):
                assert os.path.exists(d + path), f"an installed file names {path}, not installed"
        site = read(os.path.join(d, "etc/postdate/nginx.conf"))
        assert "root /opt/pd/share/postdate/www;" in site
        # Every route the shipped site passes on names the installed folder.
        with open(os.path.join(TOP, "etc", "nginx.conf")) as f:
            routes = f.read().count("fastcgi_pass unix:/run/postdate/")
        assert routes >= 9 and site.count("fastcgi_pass unix:/run/pd/") == routes, site
        apache = read(os.path.join(d, "etc/postdate/apache.conf"))
        assert "DocumentRoot /opt/pd/share/postdate/www" in apache
        assert "proxy:unix:/run/pd/schedule.sock|" in apache
        unit = read(os.path.join(d, "opt/pd/lib/systemd/system/postdate-fcgi@.service"))
        assert "ExecStart=/opt/pd/lib/postdate/cgi-bin/%i -c /etc/postdate.conf" in unit
        assert "User=pdsvc" in unit and "ReadWritePaths=/srv/pd" in unit
        assert "/srv/pd-log/*.log {\n\tsu pdsvc adm\n" in read(os.path.join(
            d, "etc/logrotate.d/postdate"))
        assert "d /run/pd 0755 pdsvc pdsvc -" in read(os.path.join(
            d, "opt/pd/lib/tmpfiles.d/postdate.conf"))
        cron = read(os.path.join(d, "opt/pd/share/postdate/postdate.crontab"))
        assert "/opt/pd/bin/dispatch -c /etc/postdate.conf --for 60 2>>/srv/pd-log/dispatch.log" \
            in cron and "| logger" not in cron.split("\n* ")[-1], cron

        # postdate-setup's usage and exit statuses, as every program's.
        setup = os.path.join(d, "opt/pd/sbin/postdate-setup")
        p = subprocess.run([setup, "--help"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and "usage: postdate-setup" in p.stdout, p
        assert "/srv/pd (the database)" in p.stdout and "user and group pdsvc" in p.stdout, p.stdout
        p = subprocess.run([setup, "--bogus"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "usage:" in p.stderr, p
        p = as_nobody([setup])
        assert p.returncode == 1 and b"run as root" in p.stderr, p

        # A site configuration the operator changed is kept on reinstall.
        with open(os.path.join(d, "etc/postdate/nginx.conf"), "a") as f:
            f.write("# mine\n")
        out = make_install(d, "PREFIX=/opt/pd", "RUNDIR=/run/pd")
        assert read(os.path.join(d, "etc/postdate/nginx.conf")).endswith("# mine\n")
        assert os.path.isfile(os.path.join(d, "etc/postdate/nginx.conf.new")), out
        assert "kept" in out, out

        # make uninstall removes the programs and data, not /etc/postdate.
        p = subprocess.run(["make", "-s", "uninstall", f"DESTDIR={d}", "PREFIX=/opt/pd"],
                           cwd=TOP, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        for rel in executables + data[:4] + data[7:]:
            assert not os.path.exists(os.path.join(d, rel)), rel
        assert os.path.isfile(os.path.join(d, "etc/postdate/nginx.conf"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Deployment:
    """A DESTDIR install made ready by postdate-setup, run as the README says."""

    def __init__(self):
        self.procs = []            # Popen of nginx, Apache's helper aside, and cron's command
        self.fcgi_pids = []
        self.user = None
        self.apache = None
        self.d = tempfile.mkdtemp(prefix="postdate-deploy-")
        os.chmod(self.d, 0o755)
        # A user of its own, made by postdate-setup and removed afterwards.
        self.user = "pdt" + secrets.token_hex(4)
        make_install(self.d, f"POSTDATE_USER={self.user}")
        self.setup = subprocess.run([self.path("/usr/local/sbin/postdate-setup"),
                                     "--root", self.d], capture_output=True, text=True,
                                    timeout=60)
        self.made_user = "made the user" in self.setup.stdout
        self.conf = self.path("/etc/postdate.conf")
        self.run = self.path("/run/postdate")
        self.logs = self.path("/var/log/postdate")

    def path(self, installed):
        """Where a path an installed file names is, in the staging tree."""
        return self.d + installed

    def staged(self, text):
        for p in ("/usr/local/", "/etc/postdate", "/run/postdate", "/var/lib/postdate",
                  "/var/log/postdate"):
            text = text.replace(p, self.d + p)
        return text

    def start_programs(self):
        # The configuration as the operator finishes it: the sink is on loopback.
        text = read(self.conf).replace("database = /var/lib/postdate",
                                       f"database = {self.d}/var/lib/postdate")
        with open(self.conf, "w") as f:
            f.write(text + "allow_targets = 127.0.0.0/8\n")
        # The README's spawn-fcgi lines, as they are there, run by root.
        readme = read(os.path.join(TOP, "README.md"))
        block = re.search(r"```sh\n(\s*for p in .*?spawn-fcgi .*?done)\n\s*```", readme, re.S)
        assert block, "README.md has no spawn-fcgi loop under Deploying"
        script = self.staged(block.group(1)).replace("-u postdate -U postdate",
                                                     f"-u {self.user} -U {self.user}")
        p = subprocess.run(["/bin/sh", "-ec", script], capture_output=True, text=True,
                           timeout=60, env=self.env())
        self.fcgi_pids += [int(x) for x in re.findall(r"child spawned successfully: PID: (\d+)",
                                                     p.stdout + p.stderr)]
        assert p.returncode == 0, f"the README's spawn-fcgi lines: {p.stdout}{p.stderr}"
        assert len(self.fcgi_pids) == sum(PROGRAMS.values()), p.stdout + p.stderr

    def env(self):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        # Under `make test SANITIZE=1`, where the sanitizers write their reports.
        env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
        return env

    def start_nginx(self):
        self.port = free_port()
        site = self.staged(read(self.path("/etc/postdate/nginx.conf")))
        site = site.replace("listen 127.0.0.1:8080", f"listen 127.0.0.1:{self.port}")
        ngx = os.path.join(self.d, "nginx")
        os.makedirs(os.path.join(ngx, "tmp"))
        shutil.chown(os.path.join(ngx, "tmp"), "www-data", "www-data")
        with open(os.path.join(ngx, "site.conf"), "w") as f:
            f.write(site)
        # What /etc/nginx/nginx.conf holds on Debian, around the site.
        with open(os.path.join(ngx, "nginx.conf"), "w") as f:
            f.write(f"""user www-data;
worker_processes 1;
pid {ngx}/nginx.pid;
error_log {ngx}/error.log warn;
events {{ worker_connections 256; }}
http {{
	include /etc/nginx/mime.types;
	access_log off;
	client_body_temp_path {ngx}/tmp/body;
	fastcgi_temp_path {ngx}/tmp/fastcgi;
	proxy_temp_path {ngx}/tmp/proxy;
	uwsgi_temp_path {ngx}/tmp/uwsgi;
	scgi_temp_path {ngx}/tmp/scgi;
	include {ngx}/site.conf;
}}
""")
        p = subprocess.Popen(["nginx", "-p", ngx, "-c", f"{ngx}/nginx.conf", "-e",
                              f"{ngx}/error.log", "-g", "daemon off;"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.nginx = p
        deadline = time.time() + 15
        while time.time() < deadline:
            assert p.poll() is None, read(f"{ngx}/error.log")
            try:
                if self.request("GET", "/api/health").status in (200, 503):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("nginx did not answer: " + read(f"{ngx}/error.log"))

    def start_apache(self):
        port = free_port()
        site = self.staged(read(self.path("/etc/postdate/apache.conf")))
        site = site.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        self.apache = Apache(site, port)

    def start_cron_command(self):
        """The installed crontab's command, as cron runs it: /bin/sh -c, as
        the user, cron's few environment variables, no terminal."""
        lines = [x for x in read(self.path("/usr/local/share/postdate/postdate.crontab"))
                 .splitlines() if x.strip() and not x.startswith("#")]
        assert len(lines) == 1, lines
        command = self.staged(lines[0].split(None, 5)[5])
        home = pwd.getpwnam(self.user).pw_dir
        env = dict(self.env(), SHELL="/bin/sh", HOME=home, LOGNAME=self.user,
                   PATH="/usr/bin:/bin")
        p = subprocess.Popen(["setpriv", f"--reuid={self.user}", f"--regid={self.user}",
                              "--init-groups", "/bin/sh", "-c", command],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(p)
        self.cron = p

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def token(self):
        return re.search(r"^token = (\S+)$", read(self.conf), re.M).group(1)

    def close(self):
        if self.apache is not None:
            self.apache.close()
        for p in self.procs:
            if p.poll() is None:
                # cron's command runs in a session of its own: its group.
                if p is getattr(self, "cron", None):
                    os.killpg(p.pid, signal.SIGTERM)
                else:
                    p.send_signal(signal.SIGQUIT)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for pid in self.fcgi_pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in self.fcgi_pids:
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        if self.made_user:
            subprocess.run(["userdel", self.user], capture_output=True, timeout=30)
            subprocess.run(["groupdel", self.user], capture_output=True, timeout=30)
        shutil.rmtree(self.d, ignore_errors=True)


def test_installed_stack_runs_as_the_readme_says_as_an_unprivileged_user():
    if os.geteuid() != 0:
        print("skipped: making a user and running spawn-fcgi -u need root")
        return
    dep = Deployment()
    try:
        assert dep.setup.returncode == 0, dep.setup.stdout + dep.setup.stderr
        assert dep.made_user, dep.setup.stdout
        pw = pwd.getpwnam(dep.user)
        assert pw.pw_shell == "/usr/sbin/nologin" and pw.pw_uid < 1000, pw
        # What postdate-setup made, with its owners and modes.
        u = dep.user
        assert mode_of(dep.conf) == ("root", u, 0o640)
        assert mode_of(dep.path("/var/lib/postdate")) == (u, u, 0o750)
        assert mode_of(dep.logs) == (u, "adm", 0o750)
        assert mode_of(dep.run) == (u, u, 0o755)
        assert re.search(r"^token = [0-9a-f]{48}$", read(dep.conf), re.M), read(dep.conf)
        # The installed tmpfiles.d entry makes /run/postdate as at boot (into a
        # scratch root, which systemd-tmpfiles reads the users from).
        scratch = os.path.join(dep.d, "boot")
        os.makedirs(os.path.join(scratch, "etc"))
        for name in ("passwd", "group"):
            shutil.copy(f"/etc/{name}", os.path.join(scratch, "etc", name))
        p = subprocess.run(["systemd-tmpfiles", "--create", f"--root={scratch}",
                            dep.path("/usr/local/lib/tmpfiles.d/postdate.conf")],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert mode_of(os.path.join(scratch, "run/postdate")) == (u, u, 0o755)
        # Nobody else can read the token.
        assert as_nobody(["cat", dep.conf]).returncode != 0
        # A second run changes nothing and says so without failing.
        again = subprocess.run([dep.path("/usr/local/sbin/postdate-setup"), "--root", dep.d],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "made the user" not in again.stdout, again
        token = dep.token()

        dep.start_programs()
        dep.start_nginx()
        health = dep.request("GET", "/api/health")
        assert health.status == 200 and health.json["ok"] is True, health
        dep.start_cron_command()
        auth = {"Authorization": f"Bearer {token}",
                "Content-Type": "application/x-www-form-urlencoded"}
        with Sink() as sink:
            body = f"url={sink.url('/installed')}&payload=through+nginx"
            r = dep.request("POST", "/api/schedule", body, auth)
            assert r.status == 201, r
            got = sink.wait_for(1, "/installed", timeout=30)
            assert got[0].body == b"through nginx"
            # The installed Apache site in front of the same sockets (its
            # children are www-data, the sockets' group), a chunked body.
            dep.start_apache()
            big = "y" * 20000
            r = dep.apache.request("POST", "/api/schedule",
                                   f"url={sink.url('/apache')}&payload={big}".encode(), auth,
                                   chunked=True)
            assert r.status == 201, r
            got = sink.wait_for(1, "/apache", timeout=30)
            assert got[0].body == big.encode()
            status = dep.request("GET", "/api/status?id=" + r.json["id"],
                                 headers={"Authorization": f"Bearer {token}"})
            for _ in range(100):
                if status.json["state"] == "delivered":
                    break
                time.sleep(0.1)
                status = dep.request("GET", "/api/status?id=" + r.json["id"],
                                     headers={"Authorization": f"Bearer {token}"})
            assert status.json["state"] == "delivered", status
            # The installed logrotate file rotates the logs in place, and the
            # crontab's dispatcher goes on writing to the emptied file.
            rotate = os.path.join(dep.d, "logrotate.conf")
            with open(rotate, "w") as f:
                f.write(dep.staged(read(dep.path("/etc/logrotate.d/postdate"))))
            p = subprocess.run(["logrotate", "-f", "-s", os.path.join(dep.d, "logrotate.state"),
                                rotate], capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stdout + p.stderr
            assert "delivered " + r.json["id"] in read(f"{dep.logs}/dispatch.log.1")
            r2 = dep.request("POST", "/api/schedule",
                             f"url={sink.url('/rotated')}&payload=after", auth)
            assert r2.status == 201, r2
            sink.wait_for(1, "/rotated", timeout=30)
            for _ in range(100):
                if "delivered " + r2.json["id"] in read(f"{dep.logs}/dispatch.log"):
                    break
                time.sleep(0.1)
            log = read(f"{dep.logs}/dispatch.log")
            assert "delivered " + r2.json["id"] in log and r.json["id"] not in log, log
        # Everything the programs wrote is the user's: the database, the logs.
        assert mode_of(dep.path("/var/lib/postdate/postdate.db"))[0] == u
        assert mode_of(f"{dep.logs}/postdate.log")[0] == u
        # The crontab's dispatcher logged each delivery to its file, timestamped.
        log = read(f"{dep.logs}/dispatch.log.1")
        assert mode_of(f"{dep.logs}/dispatch.log")[0] == u
        assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z dispatch: info: delivered "
                         + re.escape(r.json["id"]), log, re.M), log
        assert dep.cron.poll() is None, dep.cron.stdout.read()
    finally:
        dep.close()
