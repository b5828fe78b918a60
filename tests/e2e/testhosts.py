"""Test hosts for the remote executors: each a network namespace with its own address, a real
sshd (Debian's openssh-server) with its own host key, its own mount namespace (a private /tmp
and home directory, where the agent's directory lives) and a memory cgroup of the host's size.
The scheduler side is a namespace too, so that both ends of every connection are in
namespaces the test made: a set-up that fails has no route out, rather than the machine's own.

    net = TestNet(tmp_path)             # the scheduler's namespace
    h = net.host(memory=512 << 20)      # a host, sshd up; h.addr, h.known_hosts_line()
    net.run(["ssh", *net.ssh_args(h), "true"])   # a command in the scheduler's namespace
    net.close()                         # sshd and everything on the hosts ended, all removed

Everything is named after this process's pid, so that concurrent suites never collide, and
every process is ended by the pid this module started (or found in a cgroup it made)."""
import os
import signal
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SUBNET = "10.253"  # only ever inside namespaces made here; never routed anywhere


def sh(*argv, check=True, **kw):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, text=True,
                          **kw)


def memory_cgroup_root():
    """The cgroup v1 memory hierarchy (these machines) or the cgroup v2 mount."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ")
            fstype, _, opts = post.split()[:3]
            if fstype == "cgroup" and "memory" in opts.split(","):
                return Path(pre.split()[4]), 1
    return Path("/sys/fs/cgroup"), 2


class Host:
    def __init__(self, net, n, memory, user="root"):
        self.net, self.n, self.memory, self.user = net, n, memory, user
        self.ns = f"eph-h{os.getpid()}-{n}"
        self.addr = f"{SUBNET}.{n}.2"
        self.dir = net.dir / f"host{n}"
        self.home = self.dir / "home"  # the login user's home inside the host
        self.sshd = None
        cgroot, self.cgv = memory_cgroup_root()
        self.cgroup = cgroot / f"eph-test-{os.getpid()}" / f"host{n}"

    # -- set-up

    def start(self):
        self.dir.mkdir(parents=True)
        self.home.mkdir(mode=0o700)
        (self.dir / "tmp").mkdir(mode=0o1777)
        sh("ip", "netns", "add", self.ns)
        self.net.made.append(("netns", self.ns))
        out, inside = f"ve{os.getpid() % 100000}h{self.n}", "eth0"
        sh("ip", "link", "add", out, "netns", self.net.ns, "type", "veth", "peer", "name",
           inside, "netns", self.ns)
        self.net.ip("addr", "add", f"{SUBNET}.{self.n}.1/30", "dev", out)
        self.net.ip("link", "set", out, "up")
        self.link = out
        self.ip("addr", "add", f"{self.addr}/30", "dev", inside)
        self.ip("link", "set", inside, "up")
        self.ip("link", "set", "lo", "up")
        # permanent neighbours: with the link cut, packets are then silently lost (as on a
        # real network) instead of failing at once with "no route to host"
        self.net.ip("neigh", "replace", self.addr, "lladdr", self.mac(inside, self.ip),
                    "dev", out, "nud", "permanent")
        self.ip("neigh", "replace", f"{SUBNET}.{self.n}.1", "lladdr", self.mac(out, self.net.ip),
                "dev", inside, "nud", "permanent")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"host{self.n}", "-f",
           self.dir / "host_key")
        (self.dir / "authorized_keys").write_text(self.net.client_pub())
        self.cgroup.mkdir(parents=True, exist_ok=True)
        self.net.made.append(("cgroup", self.cgroup))
        limit = "memory.limit_in_bytes" if self.cgv == 1 else "memory.max"
        (self.cgroup / limit).write_text(str(self.memory))
        self.write_config()
        self.start_sshd()
        return self

    # Inside the host, its directory is seen at /mnt/h (its /tmp hides the test's /tmp).
    INSIDE = "/mnt/h"

    def write_config(self):
        (self.dir / "sshd_config").write_text(
            f"ListenAddress {self.addr}\n"
            "Port 22\n"
            f"HostKey {self.INSIDE}/host_key\n"
            f"AuthorizedKeysFile {self.INSIDE}/authorized_keys\n"
            f"PidFile {self.INSIDE}/sshd.pid\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PrintMotd no\n"
            "MaxStartups 100\n"
            "MaxSessions 100\n")

    def start_sshd(self):
        """sshd -D in the host's namespaces, inside its memory cgroup: everything a login
        starts (the agent, the command) is charged to the host's memory."""
        # the cgroup is joined before `ip netns exec`, which mounts a sysfs of its own
        # `ip netns exec` mounts a sysfs of its own, without the cgroup mounts: the memory
        # hierarchy is mounted again inside, so that an agent there finds its cgroup (the
        # host's) and puts its command under it
        i = self.INSIDE
        cg = ("mount -t tmpfs cgroup /sys/fs/cgroup && mkdir /sys/fs/cgroup/memory && "
              "mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory" if self.cgv == 1
              else "mount -t cgroup2 cgroup2 /sys/fs/cgroup")
        script = (f"mount -t tmpfs tmpfs /mnt && mkdir {i} && mount --bind {self.dir} {i} && "
                  f"mount --bind {i}/home /root && mount --bind {i}/tmp /tmp && {cg} && "
                  f"mkdir -p /run/sshd && "
                  f"exec {SSHD} -D -e -f {i}/sshd_config")
        log = open(self.dir / "sshd.log", "ab")
        self.sshd = subprocess.Popen(
            ["sh", "-c", f'echo $$ >{self.cgroup}/cgroup.procs && exec "$@"', "sh",
             "ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", script], stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.net.run(["bash", "-c", f"exec 3<>/dev/tcp/{self.addr}/22"], check=False,
                            timeout=5).returncode == 0:
                return
            if self.sshd.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"sshd of host{self.n} did not come up: "
                           + (self.dir / "sshd.log").read_text(errors="replace"))

    @staticmethod
    def mac(dev, ip):
        return ip("-o", "link", "show", dev).stdout.split("link/ether ")[1].split()[0]

    # -- use

    def ip(self, *args):
        return sh("ip", "-n", self.ns, *args)

    def known_hosts_line(self):
        key = (self.dir / "host_key.pub").read_text().split()
        return f"{self.addr} {key[0]} {key[1]}\n"

    def target(self):
        return f"{self.user}@{self.addr}"

    def procs(self):
        """Pids in the host's cgroup and those below it (sshd, logins, agents, and the
        commands, which an agent puts in a cgroup of their own under the host's)."""
        pids = []
        for d, _, _ in os.walk(self.cgroup):
            try:
                pids += [int(p) for p in (Path(d) / "cgroup.procs").read_text().split()]
            except FileNotFoundError:
                pass
        return pids

    def cut(self):
        """The link goes down at the host's end: packets are dropped, nothing is refused or
        unreachable (as when a cable is cut)."""
        self.ip("link", "set", "eth0", "down")

    def mend(self):
        self.ip("link", "set", "eth0", "up")

    def vanish(self):
        """The host dies: its sshd and every process on it are killed."""
        for pid in self.procs():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.sshd is not None:
            self.sshd.wait(timeout=10)

    def close(self):
        self.vanish()
        deadline = time.monotonic() + 10
        while self.procs() and time.monotonic() < deadline:
            for pid in self.procs():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        # the cgroups made below the host's (an agent's for its command, left by an agent
        # killed with its host), deepest first, so that the host's own can go
        for d, _, _ in sorted(os.walk(self.cgroup), key=lambda w: -len(w[0])):
            if Path(d) != self.cgroup:
                try:
                    os.rmdir(d)
                except OSError:
                    pass


class TestNet:
    __test__ = False  # not a test class of pytest
    """The scheduler's namespace and the hosts it reaches; close() removes everything."""

    def __init__(self, tmp_path):
        self.dir = Path(tmp_path) / "net"
        self.dir.mkdir()
        self.ns = f"eph-s{os.getpid()}"
        self.hosts = []
        self.made = []  # what to remove, in order of making
        sh("ip", "netns", "add", self.ns)
        self.made.append(("netns", self.ns))
        self.ip("link", "set", "lo", "up")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "eph-test", "-f",
           self.dir / "id_ed25519")
        self.identity = self.dir / "id_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("")

    def client_pub(self):
        return (self.dir / "id_ed25519.pub").read_text()

    def host(self, memory=1 << 30):
        h = Host(self, len(self.hosts) + 1, memory)
        self.hosts.append(h)
        h.start()
        with open(self.known_hosts, "a") as f:
            f.write(h.known_hosts_line())
        return h

    def ip(self, *args):
        return sh("ip", "-n", self.ns, *args)

    def argv(self, argv):
        """ARGV run in the scheduler's namespace."""
        return ["ip", "netns", "exec", self.ns, *[str(a) for a in argv]]

    def run(self, argv, check=True, timeout=60, **kw):
        return subprocess.run(self.argv(argv), capture_output=True, text=True, check=check,
                              timeout=timeout, **kw)

    def ssh_args(self, h, known_hosts=None, identity=None):
        """Plain OpenSSH options for reaching H as the executor would: pinned host keys,
        no user configuration or agent."""
        return ["-F", "/dev/null", "-i", str(identity or self.identity),
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
                h.target()]

    def close(self):
        for h in self.hosts:
            h.close()
        for kind, what in reversed(self.made):
            if kind == "netns":
                sh("ip", "netns", "del", what, check=False)
            elif kind == "cgroup":
                for _ in range(100):
                    try:
                        os.rmdir(what)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)
        parent = memory_cgroup_root()[0] / f"eph-test-{os.getpid()}"
        try:
            os.rmdir(parent)
        except OSError:
            pass
