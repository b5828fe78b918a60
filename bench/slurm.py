#!/usr/bin/python3
"""bench/slurm.py: the slurm executor against Slurm's own submit → start, on one private
single-node cluster (tests/e2e/slurmcluster.py: munged, slurmctld and slurmd of Debian's
Slurm 22.05, SchedulerParameters=batch_sched_delay=0,sched_min_interval=0).

  bare   `sbatch --parsable --wrap 'exec date +%s.%N'`: the moment sbatch is started → the
         command's own clock reading (Slurm's submit → start, sbatch's own run included);
  eph    `eph run JOB` through the real `eph daemon`, the job's command `date +%s.%N` by
         argv on executor type slurm: the run's created_at (its row, written when the daemon
         takes the request) → the command's clock reading; its exit → the run recorded (the
         daemon's log line of the outcome).

After warm-up runs (the agent copied into shared_dir, the commit's archive made), one at a
time, each submitted once the last one's job has left the node and the node is idle, then
after a random 0.5 to 1.5 s: Slurm starts jobs on periodic passes, and a submission at a
fixed delay would always meet the same phase of them. `date` prints as its first act: its reading stands for its execve. One machine, one
clock: every difference is exact.

Needs root (Slurm runs as root here) and the plain build (its eph-agent is static).
usage: /usr/bin/python3 bench/slurm.py [--quick] [BUILD_DIR]   (default build)
"""
import datetime
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "e2e"))
from slurmcluster import SlurmCluster, missing  # noqa: E402

QUICK = "--quick" in sys.argv
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BUILD = Path(os.path.abspath(ARGS[0] if ARGS else "build"))
EPH = BUILD / "eph"
N = 5 if QUICK else 20
WARM = 2
RNG = random.Random(14)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def row_of(line, what):
    print(f"  {what:<34} median {statistics.median(line) * 1000:7.0f} ms   "
          f"p90 {pct(line, 90) * 1000:7.0f} ms   min {min(line) * 1000:7.0f} ms   "
          f"max {max(line) * 1000:7.0f} ms   (n={len(line)})")


def settle(cluster, job):
    """Waits until JOB has left the node and the node is idle, and a moment more: each
    submission then finds the same quiet cluster, whatever came before it."""
    while cluster.job(job).get("JobState") not in ("COMPLETED", "FAILED", ""):
        time.sleep(0.01)
    while not cluster.node_state().startswith("IDLE"):
        time.sleep(0.01)
    # Slurm starts jobs on its own periodic passes: a submission at a fixed time after the
    # node became idle would always meet the same phase of them (measured: always 0.48 s, or
    # always 1.4 s, depending only on what came before); a random one samples them all
    time.sleep(RNG.uniform(0.5, 1.5))


def bare(cluster, d):
    """Slurm's own submit → start."""
    out = []
    for i in range(WARM + N):
        f = d / f"bare-{i}.out"
        t0 = time.time()
        p = cluster.sbatch("--parsable", f"--output={f}", "--mem=64M",
                           "--wrap", "exec date +%s.%N")
        assert p.returncode == 0, p.stderr
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                text = f.read_text().strip()
                if text:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.005)
        else:
            raise RuntimeError(f"bare job {p.stdout} never printed")
        if i >= WARM:
            out.append(float(text.split()[-1]) - t0)
        settle(cluster, p.stdout.strip().split(";")[0])
    return out


class Sched:
    def __init__(self, d, cluster):
        self.d = d
        self.cluster = cluster
        self.state = d / "state"
        self.state.mkdir()
        self.shared = d / "shared"
        self.shared.mkdir()
        repo = d / "repo"
        repo.mkdir()
        git = ["git", "-c", "user.email=b@example.com", "-c", "user.name=b"]
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
        (repo / "README").write_text("bench\n")
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-qm", "b"], cwd=repo, check=True)
        self.jobs = d / "ephemeron.yaml"
        self.jobs.write_text(
            f"source: {{ repo: {repo}, refresh: 0 }}\n"
            "executors:\n"
            f"  hpc: {{ type: slurm, shared_dir: {self.shared}, partition: batch }}\n"
            "jobs:\n"
            "  now:\n"
            "    schedule: \"0 0 1 1 *\"\n"
            "    executor: hpc\n"
            "    memory: 64MiB\n"
            "    command: [date, \"+%s.%N\"]\n")
        self.log = d / "daemon.log"
        self.env = cluster.env(EPH_STATE=str(self.state))
        with open(self.log, "ab") as f:
            self.p = subprocess.Popen([EPH, "daemon", "--log-json", self.jobs],
                                      stdout=subprocess.DEVNULL, stderr=f, env=self.env)
        end = time.monotonic() + 20
        while "started" not in self.log.read_text(errors="replace"):
            assert time.monotonic() < end and self.p.poll() is None, self.log.read_text()
            time.sleep(0.02)

    def rows(self):
        path = self.state / "eph.db"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()

    def run(self):
        before = {r["id"] for r in self.rows()}
        subprocess.run([EPH, "-f", self.jobs, "run", "now"], env=self.env, check=True,
                       capture_output=True)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            new = [r for r in self.rows() if r["id"] not in before]
            if new and new[0]["state"] in ("succeeded", "failed", "lost", "oom", "cancelled"):
                return new[0]
            time.sleep(0.01)
        raise RuntimeError("the run did not end: " + self.log.read_text()[-3000:])

    def recorded_at(self, rid):
        """When the daemon logged run RID's outcome (its --log-json line)."""
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("run") == rid and " after " in o.get("msg", ""):
                return datetime.datetime.fromisoformat(
                    o["t"].replace("Z", "+00:00")).timestamp()
        return None

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=30)


def eph(cluster, d):
    s = Sched(d, cluster)
    to_exec, to_rec = [], []
    try:
        for i in range(WARM + N):
            r = s.run()
            assert r["state"] == "succeeded", r
            # as for the bare jobs: the next starts on a node the last one has left
            settle(cluster, json.loads(r["handle"])["job"])
            out = (s.state / "runs" / str(r["id"]) / "output.log").read_text()
            t_cmd = float(out.split()[-1])
            if i >= WARM:
                to_exec.append(t_cmd - r["created_at"])
                rec = s.recorded_at(r["id"])
                if rec is not None:
                    to_rec.append(rec - t_cmd)
    finally:
        s.stop()
    return to_exec, to_rec


def main():
    if missing():
        sys.exit(f"bench/slurm.py: not installed: {missing()}")
    d = Path(tempfile.mkdtemp(prefix="eph-bench-slurm-", dir="/var/tmp"))
    cluster = SlurmCluster(d / "cluster")
    try:
        cluster.start()
        b = bare(cluster, d)
        e, rec = eph(cluster, d)
    finally:
        cluster.close()
        shutil.rmtree(d, ignore_errors=True)
    print(f"slurm executor, one node, {N} runs each after {WARM} warm-up "
          f"({os.cpu_count()} cores):")
    row_of(b, "bare sbatch: submit -> start")
    row_of(e, "eph run: created -> execve")
    if rec:
        row_of(rec, "eph run: exit -> recorded")
    print(f"  eph - bare (medians): {(statistics.median(e) - statistics.median(b)) * 1000:+.0f} ms")


if __name__ == "__main__":
    main()
