"""A real Apache 2.4 (Debian's apache2, mod_proxy_fcgi) in front of a
running postdate, on a loopback port, serving a given site file: the
repository's etc/apache.conf, or the one `make install` wrote.

    with Apache(site_text, port) as a:
        a.request("POST", "/api/schedule", body, headers)

The site's own paths are rewritten by the caller; this only adds the
server-wide part (modules, pid file, logs) that Debian's apache2.conf
would, in a folder of its own, and runs apache2 in the foreground.
"""

import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import time

from harness import Response

MODULES = "/usr/lib/apache2/modules"
# What etc/apache.conf needs (its header names proxy_fcgi and headers),
# and what Debian's default configuration loads beneath them.
LOAD = ["mpm_event", "authz_core", "proxy", "proxy_fcgi", "headers", "dir", "mime"]


class Apache:
    def __init__(self, site_text, port):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="postdate-apache-")
        os.chmod(self.dir, 0o755)
        site = os.path.join(self.dir, "site.conf")
        with open(site, "w") as f:
            f.write(site_text)
        lines = [f"ServerRoot {self.dir}", f"DefaultRuntimeDir {self.dir}",
                 f"PidFile {self.dir}/apache2.pid", f"Mutex file:{self.dir} default",
                 f"ErrorLog {self.dir}/error.log", "LogLevel warn",
                 "ServerName localhost", "TypesConfig /etc/mime.types",
                 "StartServers 1", "ServerLimit 2", "ThreadsPerChild 25", "MaxRequestWorkers 50"]
        lines += [f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in LOAD]
        if os.geteuid() == 0:
            # Apache will not serve as root; its children are www-data, as on Debian.
            lines += ["User www-data", "Group www-data"]
        lines.append(f"Include {site}")
        self.conf = os.path.join(self.dir, "apache2.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        check = subprocess.run(["apache2", "-t", "-f", self.conf], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            self.close()
            raise RuntimeError("apache2 -t refused the configuration:\n" + check.stderr)
        self.proc = subprocess.Popen(["apache2", "-f", self.conf, "-DFOREGROUND"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "w"))
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                err = self.log()
                self.close()
                raise RuntimeError("apache2 exited:\n" + err)
            try:
                if self.request("GET", "/api/health").status in (200, 503):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        err = self.log()
        self.close()
        raise RuntimeError("apache2 did not answer:\n" + err)

    def log(self):
        text = ""
        for name in ("stderr", "error.log"):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    text += f.read()[-3000:]
            except OSError:
                pass
        return text

    def request(self, method, path, body=None, headers=None, chunked=False, timeout=30):
        """One request; with chunked=True the body goes as HTTP/1.1 chunks
        (no Content-Length), as a streaming client sends it."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if chunked:
                c.putrequest(method, path)
                for k, v in (headers or {}).items():
                    c.putheader(k, v)
                c.putheader("Transfer-Encoding", "chunked")
                c.endheaders()
                step = 4096
                for i in range(0, len(body), step):
                    part = body[i:i + step]
                    try:
                        c.send(b"%x\r\n%s\r\n" % (len(part), part))
                    except OSError:
                        break         # the server answered and closed before the end
                else:
                    c.send(b"0\r\n\r\n")
            else:
                c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def raw(self, data, timeout=10):
        """Sends bytes as they are and returns what came back."""
        import socket
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            while True:
                try:
                    part = s.recv(65536)
                except OSError:
                    break
                if not part:
                    break
                out += part
            return out

    def close(self):
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
