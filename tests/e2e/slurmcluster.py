"""A private single-node Slurm (Debian's munge, slurmctld and slurmd, 22.05) for the slurm
executor's tests and bench/slurm.py: its own munge socket and key, its own ports, state,
spool and log directories under one directory, and cgroup v1 memory enforcement
(task/cgroup with ConstrainRAMSpace), so a job over its --mem ends OUT_OF_MEMORY.

    c = SlurmCluster(Path(tmp))
    c.start()                 # munged (as user munge), slurmctld, slurmd; waits until idle
    c.env()                   # SLURM_CONF for the clients (sbatch, squeue, ...)
    c.stop_ctld(); c.start_ctld()   # the controller down, and back
    c.close()                 # every daemon stopped by its pid; nothing else touched

Nothing of the machine's own Slurm or munge is used or touched: the daemons are started
with explicit paths, and stopped by the pids they were started with."""

import glob
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# the node's name is this process's own: slurmd makes its cgroups at slurm_NODE in each v1
# hierarchy, so two clusters at once (pytest -n 2) keep apart there too; close() removes them
NODE = f"eph{os.getpid()}"
WANTED = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel"]


def _which(name):
    return shutil.which(name) or next(
        (f"{d}/{name}" for d in ("/usr/sbin", "/usr/bin", "/sbin")
         if os.access(f"{d}/{name}", os.X_OK)), None)


def missing():
    """What of Slurm and munge is not installed here (scripts/deps.sh installs them)."""
    miss = [n for n in WANTED if _which(n) is None]
    try:
        pwd.getpwnam("munge")
    except KeyError:
        miss.append("user munge")
    return miss


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, base):
        # munged (user munge) must reach its socket: a directory of its own in /tmp, as the
        # test's tmp_path is private to root
        self.top = Path(tempfile.mkdtemp(prefix="eph-slurm-"))
        os.chmod(self.top, 0o755)
        self.base = Path(base)
        self.munge_dir = self.top / "munge"
        self.etc = self.top / "etc"
        self.state = self.top / "ctld"
        self.spool = self.top / "spool"
        self.logs = self.top / "log"
        self.socket = self.munge_dir / "munge.socket.2"
        self.conf = self.etc / "slurm.conf"
        self.ctld_port = free_port()
        self.slurmd_port = free_port()
        self.procs = {}  # name -> pid (daemons fork: their pid files)
        self.memory_mib = 2048

    def env(self, **kw):
        return dict(os.environ, SLURM_CONF=str(self.conf), **kw)

    # ---- configuration

    def _write_conf(self):
        for d in (self.etc, self.state, self.spool, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count() or 1
        self.conf.write_text(f"""\
ClusterName=ephtest
SlurmctldHost={socket.gethostname()}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={self.state}
SlurmdSpoolDir={self.spool}/%n
SlurmctldPidFile={self.top}/slurmctld.pid
SlurmdPidFile={self.top}/slurmd.pid
SlurmctldLogFile={self.logs}/slurmctld.log
SlurmdLogFile={self.logs}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MinJobAge=600
KillWait=5
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
InactiveLimit=0
SlurmctldTimeout=3
SlurmdTimeout=30
MessageTimeout=5
NodeName={NODE} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={self.memory_mib} State=UNKNOWN
PartitionName=batch Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
""")
        (self.etc / "cgroup.conf").write_text("""\
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
""")

    # ---- the daemons

    def _start_munge(self):
        uid, gid = pwd.getpwnam("munge").pw_uid, grp.getgrnam("munge").gr_gid
        self.munge_dir.mkdir(mode=0o700)
        os.chown(self.munge_dir, uid, gid)
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        os.chown(key, uid, gid)
        pidf = self.munge_dir / "munged.pid"
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged"), "--force",
                        f"--socket={self.socket}", f"--key-file={key}",
                        f"--pid-file={pidf}", f"--log-file={self.munge_dir}/munged.log",
                        f"--seed-file={self.munge_dir}/munged.seed"],
                       check=True, capture_output=True, timeout=20)
        self.procs["munged"] = self._pid_of(pidf)

    def _pid_of(self, pidfile, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                return int(Path(pidfile).read_text().split()[0])
            except (FileNotFoundError, ValueError, IndexError):
                time.sleep(0.02)
        raise RuntimeError(f"no pid in {pidfile}: {self.log_tail()}")

    def start_ctld(self):
        pidf = self.top / "slurmctld.pid"
        pidf.unlink(missing_ok=True)
        subprocess.run([_which("slurmctld"), "-f", str(self.conf)], check=True,
                       capture_output=True, env=self.env(), timeout=30)
        self.procs["slurmctld"] = self._pid_of(pidf)
        self.wait_ctld()

    def wait_ctld(self, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p = subprocess.run([_which("scontrol"), "ping"], capture_output=True, text=True,
                               env=self.env(), timeout=20)
            if "is UP" in p.stdout:
                return
            time.sleep(0.1)
        raise RuntimeError(f"slurmctld does not answer: {self.log_tail()}")

    def stop_ctld(self):
        self._stop("slurmctld")

    def _start_slurmd(self):
        pidf = self.top / "slurmd.pid"
        subprocess.run([_which("slurmd"), "-f", str(self.conf), "-N", NODE], check=True,
                       capture_output=True, env=self.env(), timeout=30)
        self.procs["slurmd"] = self._pid_of(pidf)

    def node_state(self):
        p = subprocess.run([_which("scontrol"), "-o", "show", "node", NODE], capture_output=True,
                           text=True, env=self.env(), timeout=20)
        for word in p.stdout.split():
            if word.startswith("State="):
                return word[6:]
        return ""

    def start(self):
        self._write_conf()
        self._start_munge()
        self.start_ctld()
        self._start_slurmd()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.node_state().startswith("IDLE"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"node {NODE} is {self.node_state()}: {self.log_tail()}")

    def log_tail(self):
        out = []
        for f in sorted(self.logs.glob("*.log")) + [self.munge_dir / "munged.log"]:
            try:
                out.append(f"--- {f.name}\n" + f.read_text(errors="replace")[-3000:])
            except OSError:
                pass
        return "\n".join(out)

    def _stop(self, name):
        pid = self.procs.pop(name, None)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def sbatch(self, *args):
        return subprocess.run([_which("sbatch"), *args], capture_output=True, text=True,
                              env=self.env(), timeout=30)

    def scontrol(self, *args):
        return subprocess.run([_which("scontrol"), *args], capture_output=True, text=True,
                              env=self.env(), timeout=30)

    def job(self, job_id):
        """`scontrol -o show job ID` as a dict ({} once it is forgotten)."""
        p = self.scontrol("-o", "show", "job", str(job_id))
        return dict(w.split("=", 1) for w in p.stdout.split() if "=" in w)

    def _steps(self):
        """The pids of this cluster's slurmstepd (they outlive slurmd): found by the
        SLURM_CONF slurmd passed them."""
        mark = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if not f.read().startswith(b"slurmstepd"):
                        continue
                with open(f"/proc/{d}/environ", "rb") as f:
                    if mark in f.read().split(b"\0"):
                        pids.append(int(d))
            except OSError:
                pass
        return pids

    def close(self):
        # jobs first (their steps end while slurmd runs), then the daemons, by the pids we
        # started, and any step of ours left over
        if "slurmctld" in self.procs:
            subprocess.run([_which("scancel"), "-u", "root"], env=self.env(),
                           capture_output=True, timeout=20)
            end = time.monotonic() + 15
            while time.monotonic() < end and self._steps():
                time.sleep(0.1)
        for name in ("slurmd", "slurmctld", "munged"):
            self._stop(name)
        for pid in self._steps():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # the node's cgroups (slurm_NODE/uid_N/job_N/...), deepest first, once empty
        for top in glob.glob(f"/sys/fs/cgroup/*/slurm_{NODE}"):
            for d, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        shutil.rmtree(self.top, ignore_errors=True)
