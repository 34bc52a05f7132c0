"""Simulated hosts on one machine, for the many-dispatcher tests and benches.

    with hosts.Hosts(3, cpu_percent=25) as hs:
        sink = Sink(host=hs.gateway)            # reachable from every host
        p = hs[0].spawn([DISPATCH, "-c", conf, "--for", "30"])
        hs[1].partition(); ...; hs[1].heal()
        hs[2].kill()                            # kill -9 of all in host 2

Hosts(N) makes a bridge in the root namespace holding the first address
of a private /24 in 10.0.0.0/8 (`gateway`, free on this machine when
made), and N network namespaces, each joined to the bridge by a veth pair
and given the next addresses (`host.address`), loopback up and a default
route through the gateway. Names carry the pid of the test run and the
number of the Hosts in it (pd<pid>s<k>h<i> for a namespace, pdbr<pid>s<k>
for the bridge), so that runs at the same time, and a test in the
background beside another, do not meet; what a run that died left behind
(its pid is gone) is removed by the next one.

Every program started in a host (spawn(), run()) runs under
`ip netns exec` in a cgroup of its host with a CPU quota (cpu.max on a
cgroup v2 hierarchy with the cpu controller, else cpu.cfs_quota_us on the
v1 cpu hierarchy), e.g. 25% of one core, so that one dispatcher is bound
by its own share. kill() is kill -9 of everything in the host: the v2
cgroup's cgroup.kill where there is one, and every pid of its cgroups and
namespace until none is left. partition() adds an nftables table in the
host's namespace dropping every packet in and out; heal() removes it.
faketime=OFFSET (e.g. "-30s") runs the program with libfaketime preloaded:
CLOCK_REALTIME (time(), gettimeofday, clock_gettime) moves by OFFSET,
CLOCK_MONOTONIC does not (a host whose wall clock is wrong). Not with
programs built with ASan (make SANITIZE=1), which libfaketime hangs at
start: sanitized() tells, and spawn()/run() refuse.

Everything is removed by close(), on leaving the `with`, and at exit
(atexit), failures included. Needs root and `ip netns`: available()
says why not, for a test to skip with.
"""

import atexit
import glob
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import threading
import time

__all__ = ["Hosts", "Host", "available", "faketime_library"]

_open = []          # every Hosts not yet closed, closed at exit
_made = 0           # Hosts made by this process: the s<k> of their names
_making = threading.Lock()   # one at a time picks a free network and takes it


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


_availability = []  # the answer of available(), once found


def available():
    """None when simulated hosts can be made here, else why not (found
    once per process: tests in the background ask at the same time)."""
    with _making:
        if not _availability:
            _availability.append(_probe())
        return _availability[0]


def _probe():
    if os.geteuid() != 0:
        return "simulated hosts need root (ip netns, cgroups, nftables)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    name = f"pd{os.getpid()}probe"
    p = _ip("netns", "add", name, check=False)
    if p.returncode != 0:
        return f"ip netns is unavailable: {p.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    if _cgroup_cpu() is None:
        return "no cgroup hierarchy with the cpu controller"
    return None


def faketime_library():
    """The path of libfaketime (the thread-safe build), or None."""
    for pattern in ("/usr/lib/*/faketime/libfaketimeMT.so.1",
                    "/usr/lib/*/faketime/libfaketime.so.1"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def sanitized(program):
    """Whether program was built with AddressSanitizer (make SANITIZE=1):
    libfaketime preloaded into one hangs it at start (its constructor
    reads the clock before ASan's runtime is ready), so faketime and
    SANITIZE=1 do not go together."""
    try:
        with open(program, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def faketime_env(offset, env=None):
    """env (default os.environ) with libfaketime preloaded, moving the
    wall clock by offset ("-30s", "+2m", ...) and leaving the monotonic
    clock alone."""
    lib = faketime_library()
    if lib is None:
        raise RuntimeError("libfaketime is not installed (Debian package faketime)")
    env = dict(os.environ if env is None else env)
    env["LD_PRELOAD"] = (lib + " " + env.get("LD_PRELOAD", "")).strip()
    env["FAKETIME"] = offset
    env["DONT_FAKE_MONOTONIC"] = "1"
    # Read FAKETIME once rather than a file on every call.
    env["FAKETIME_NO_CACHE"] = "0"
    return env


# ---- cgroups ----

def _mounts():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, point, kind, options = line.split()[:4]
            yield point, kind, options.split(",")


def _cgroup_v2():
    """The cgroup v2 mount point, or None."""
    for point, kind, _ in _mounts():
        if kind == "cgroup2":
            return point
    return None


def _cgroup_cpu():
    """("v2", mount) when a cgroup v2 hierarchy has the cpu controller,
    else ("v1", mount) of the v1 cpu hierarchy, else None."""
    v2 = _cgroup_v2()
    if v2 is not None:
        try:
            with open(os.path.join(v2, "cgroup.controllers")) as f:
                if "cpu" in f.read().split():
                    return ("v2", v2)
        except OSError:
            pass
    for point, kind, options in _mounts():
        if kind == "cgroup" and "cpu" in options:
            return ("v1", point)
    return None


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _pids_in(cgroup):
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _remove_cgroup(path, attempts=100):
    """rmdir of a cgroup, once what was killed in it has gone."""
    for _ in range(attempts):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            for pid in _pids_in(path):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)


# ---- addresses ----

def _used_networks():
    out = _ip("-o", "-4", "addr", "show", check=False).stdout
    nets = []
    for m in re.finditer(r"inet (\S+)", out):
        nets.append(ipaddress.ip_interface(m.group(1)).network)
    out = _ip("-o", "-4", "route", "show", "table", "all", check=False).stdout
    for m in re.finditer(r"^(?:\S+ )?(\d+\.\d+\.\d+\.\d+/\d+)", out, re.M):
        nets.append(ipaddress.ip_network(m.group(1), strict=False))
    return nets


def _free_network(seed):
    """A /24 in 10.0.0.0/8 that no interface or route here overlaps, tried
    from one that seed (the pid) picks, so that runs at once differ."""
    used = _used_networks()
    for i in range(65536):
        k = (seed * 7919 + i) % 65536
        net = ipaddress.ip_network(f"10.{k >> 8}.{k & 255}.0/24")
        if net.network_address.packed[1] == 0:
            continue            # 10.0.x.x is often taken by VPNs and clouds
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free /24 in 10.0.0.0/8")


def _remove_leftovers():
    """Namespaces, bridges and cgroups of runs whose pid is gone."""
    def dead(pid):
        return not os.path.exists(f"/proc/{pid}")
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        m = re.match(r"pd(\d+)s\d+h\d+\b", line)
        if m and dead(int(m.group(1))):
            _ip("netns", "del", line.split()[0], check=False)
    for m in re.finditer(r"^\d+: (pdbr(\d+)s\d+)[:@]",
                         _ip("-o", "link", "show", check=False).stdout, re.M):
        if dead(int(m.group(2))):
            _ip("link", "del", m.group(1), check=False)
    for root in {_cgroup_v2(), (_cgroup_cpu() or (None, None))[1]} - {None}:
        for path in glob.glob(os.path.join(root, "postdate-hosts-*")):
            m = re.search(r"postdate-hosts-(\d+)-\d+$", path)
            if m and dead(int(m.group(1))):
                for child in glob.glob(os.path.join(path, "h*")):
                    _remove_cgroup(child)
                _remove_cgroup(path)


class Host:
    """One simulated host: a network namespace, its address, its cgroups."""

    def __init__(self, hosts, index, address, cgroups):
        self.hosts = hosts
        self.index = index
        self.name = f"{hosts.tag}h{index}"
        self.address = address          # its address on the bridge, a str
        self.cgroups = cgroups          # the cgroup folders it is in (cpu, and v2 for kill)
        self.procs = []                 # the Popen of every spawn()

    def command(self, argv):
        """argv as it runs in this host: joins the host's cgroups, then
        ip netns exec (faketime is a matter of env())."""
        join = " && ".join(f'echo $$ > "{os.path.join(c, "cgroup.procs")}"'
                           for c in self.cgroups)
        return ["sh", "-c", join + ' && exec ip netns exec "$0" "$@"', self.name,
                *map(str, argv)]

    def env(self, faketime=None, env=None, argv=None):
        if faketime and argv and sanitized(str(argv[0])):
            raise RuntimeError(f"{argv[0]} is built with ASan, which libfaketime hangs")
        return faketime_env(faketime, env) if faketime else dict(os.environ if env is None
                                                                  else env)

    def spawn(self, argv, faketime=None, env=None, **kw):
        """Starts argv in this host (Popen); kill()/close() end it."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.command(argv), env=self.env(faketime, env, argv), **kw)
        self.procs.append(p)
        return p

    def run(self, argv, faketime=None, env=None, timeout=60, **kw):
        """Runs argv in this host to completion (subprocess.run)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.command(argv), env=self.env(faketime, env, argv),
                              timeout=timeout, **kw)

    def pids(self):
        """Every process in this host: in its cgroups or its namespace."""
        pids = set()
        for c in self.cgroups:
            pids.update(_pids_in(c))
        out = _ip("netns", "pids", self.name, check=False).stdout
        pids.update(int(x) for x in out.split())
        return pids

    def kill(self, timeout=10):
        """kill -9 of everything in this host; returns once all are gone."""
        for c in self.cgroups:
            kill_file = os.path.join(c, "cgroup.kill")
            if os.path.exists(kill_file):
                _write(kill_file, "1")
        deadline = time.time() + timeout
        while True:
            left = self.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for p in self.procs:
                if p.poll() is None:
                    try:
                        p.wait(timeout=0.05)
                    except subprocess.TimeoutExpired:
                        pass
            if not left and all(p.poll() is not None for p in self.procs):
                return
            if time.time() > deadline:
                raise RuntimeError(f"host {self.name}: still running after kill -9: {left}")
            time.sleep(0.02)

    def partition(self):
        """Drops every packet in and out of this host (nftables)."""
        rules = ("table inet pdpartition {\n"
                 " chain in { type filter hook input priority -300; policy drop; }\n"
                 " chain out { type filter hook output priority -300; policy drop; }\n"
                 "}\n")
        subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=rules,
                       text=True, check=True, capture_output=True)

    def heal(self):
        """Ends a partition()."""
        subprocess.run(["ip", "netns", "exec", self.name, "nft", "delete", "table", "inet",
                        "pdpartition"], check=True, capture_output=True)

    def cpu_usage_s(self):
        """CPU time used so far by this host's processes, in seconds (a v2
        cgroup's cpu.stat, which every v2 cgroup has, else cpuacct)."""
        for c in self.cgroups:
            try:
                with open(os.path.join(c, "cpu.stat")) as f:
                    for line in f:
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) / 1e6
            except OSError:
                pass
        raise RuntimeError(f"host {self.name}: no cpu.stat with usage_usec")

    def throttled(self):
        """How many CPU periods this host's quota throttled it in."""
        for c in self.cgroups:
            try:
                with open(os.path.join(c, "cpu.stat")) as f:
                    for line in f:
                        if line.startswith("nr_throttled "):
                            return int(line.split()[1])
            except OSError:
                pass
        return 0


class Hosts:
    """N simulated hosts; see the module text."""

    def __init__(self, n, cpu_percent=25):
        reason = available()
        if reason:
            raise RuntimeError(reason)
        global _made
        self.closed = False
        with _making:
            _made += 1
            self.seq = _made
        pid = os.getpid()
        self.tag = f"pd{pid}s{self.seq}"           # ≤ 15 bytes with "v<i>": a link name
        self.bridge = f"pdbr{pid}s{self.seq}"
        self.hosts = []
        self._cgroup_roots = []
        _open.append(self)
        try:
            with _making:
                _remove_leftovers()
                self.network = _free_network(pid * 31 + self.seq)
                addrs = list(self.network.hosts())
                self.gateway = str(addrs[0])
                _ip("link", "add", self.bridge, "type", "bridge")
                _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            kind, cpu_root = _cgroup_cpu()
            roots = [(kind, cpu_root)]
            v2 = _cgroup_v2()
            if kind == "v1" and v2 is not None:
                roots.append(("v2-kill", v2))       # for cgroup.kill
            for k, root in roots:
                top = os.path.join(root, f"postdate-hosts-{pid}-{self.seq}")
                os.makedirs(top, exist_ok=True)
                self._cgroup_roots.append(top)
                if k == "v2":
                    _write(os.path.join(top, "cgroup.subtree_control"), "+cpu")
            for i in range(n):
                self.hosts.append(self._make_host(i, addrs[1 + i], roots, cpu_percent))
        except BaseException:
            self.close()
            raise

    def _make_host(self, i, address, roots, cpu_percent):
        name, veth = f"{self.tag}h{i}", f"{self.tag}v{i}"
        _ip("netns", "add", name)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        for args in (("addr", "add", f"{address}/24", "dev", "eth0"),
                     ("link", "set", "eth0", "up"), ("link", "set", "lo", "up"),
                     ("route", "add", "default", "via", self.gateway)):
            _ip("-n", name, *args)
        cgroups = []
        for kind, root in roots:
            c = os.path.join(root, f"postdate-hosts-{os.getpid()}-{self.seq}", f"h{i}")
            os.makedirs(c, exist_ok=True)
            period = 100000
            quota = int(period * cpu_percent / 100) if cpu_percent else None
            if kind == "v2":
                _write(os.path.join(c, "cpu.max"), f"{quota or 'max'} {period}")
            elif kind == "v1":
                _write(os.path.join(c, "cpu.cfs_period_us"), str(period))
                _write(os.path.join(c, "cpu.cfs_quota_us"), str(quota or -1))
            cgroups.append(c)
        return Host(self, i, str(address), cgroups)

    def __getitem__(self, i):
        return self.hosts[i]

    def __len__(self):
        return len(self.hosts)

    def __iter__(self):
        return iter(self.hosts)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for h in self.hosts:
            try:
                h.kill()
            except RuntimeError:
                pass
            for c in h.cgroups:
                _remove_cgroup(c)
            _ip("netns", "del", h.name, check=False)
        for top in self._cgroup_roots:
            _remove_cgroup(top)
        _ip("link", "del", self.bridge, check=False)
        if self in _open:
            _open.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@atexit.register
def _close_all():
    for h in list(_open):
        h.close()
