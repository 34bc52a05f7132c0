"""Deployment hardening: the systemd units verify cleanly and confine the
programs, and the programs need no root: the FastCGI programs and dispatch
do their whole job as an unprivileged user with no new privileges."""

import glob
import os
import shutil
import subprocess
import tempfile

from harness import TOP
from sink import Sink

SERVICES = ["postdate-dispatch.service", "postdate-dispatch-watch.service",
            "postdate-fcgi@.service"]
HARDENING = ["NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/postdate",
             "PrivateTmp=yes", "User=postdate", "CapabilityBoundingSet=",
             "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"]


def unit_lines(name):
    with open(os.path.join(TOP, "cron", name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def test_every_service_is_confined_and_unprivileged():
    for name in SERVICES:
        lines = unit_lines(name)
        for want in HARDENING:
            assert want in lines, f"{name} lacks {want}"
        assert not any(line.startswith("User=root") for line in lines), name


def test_systemd_units_verify_without_warnings():
    with tempfile.TemporaryDirectory() as d:
        # The units name the installed paths; point them at this build.
        for path in glob.glob(os.path.join(TOP, "cron", "*.service")) + \
                glob.glob(os.path.join(TOP, "cron", "*.socket")) + \
                glob.glob(os.path.join(TOP, "cron", "*.timer")):
            with open(path) as f:
                text = f.read()
            text = text.replace("/usr/local/bin/dispatch", os.path.join(TOP, "bin", "dispatch"))
            text = text.replace("/usr/local/lib/postdate/cgi-bin/",
                                os.path.join(TOP, "cgi-bin") + "/")
            name = os.path.basename(path).replace("@.", "@schedule.")
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        units = sorted(os.listdir(d))
        assert len(units) == 5, units
        p = subprocess.run(["systemd-analyze", "verify", "--man=no"] +
                           [os.path.join(d, u) for u in units],
                           capture_output=True, text=True, timeout=60, cwd=d)
        # Unknown keys and bad values are only warnings: any line about our
        # units is a failure.
        ours = [line for line in (p.stdout + p.stderr).splitlines() if d in line]
        assert p.returncode == 0 and not ours, p.stdout + p.stderr


def as_nobody(args, **kw):
    """Runs args as nobody:nogroup with no new privileges (when root)."""
    if os.geteuid() == 0:
        args = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "--no-new-privs"] + args
    return subprocess.run(args, capture_output=True, timeout=60, **kw)


def test_programs_and_dispatch_work_as_an_unprivileged_user():
    d = tempfile.mkdtemp(prefix="postdate-nobody-")
    try:
        os.chmod(d, 0o755)
        if os.geteuid() == 0:
            shutil.chown(d, "nobody", "nogroup")
        conf = os.path.join(d, "postdate.conf")
        with open(conf, "w") as f:
            f.write("database = nobody.db\nallow_targets = 127.0.0.0/8\n")
        os.chmod(conf, 0o644)
        with Sink() as sink:
            body = f"url={sink.url('/unprivileged')}&payload=hi".encode()
            env = {"PATH": "/usr/bin:/bin", "POSTDATE_CONF": conf, "GATEWAY_INTERFACE": "CGI/1.1",
                   "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)),
                   "CONTENT_TYPE": "application/x-www-form-urlencoded"}
            # Under `make test SANITIZE=1`, where the sanitizers write their reports.
            env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
            p = as_nobody([os.path.join(TOP, "cgi-bin", "schedule")], input=body, env=env)
            assert p.stdout.startswith(b"Status: 201"), p
            p = as_nobody([os.path.join(TOP, "bin", "dispatch"), "-c", conf, "--once"])
            assert p.returncode == 0, p.stderr
            got = sink.wait_for(1, "/unprivileged")
            assert got[0].body == b"hi"
        db = os.path.join(d, "nobody.db")
        assert os.stat(db).st_uid == os.stat(d).st_uid, "the database is not the user's own"
    finally:
        shutil.rmtree(d, ignore_errors=True)
