"""The `slurm` executor end to end (issue 14): the real `eph daemon` hands runs to a private
single-node Slurm (slurmcluster.py: Debian's munged, slurmctld and slurmd, with cgroup v1
memory enforcement), and what it records is checked against what Slurm did: a run that
succeeds, one over its memory (OOM in the job's own cgroup), one past its timeout, a cancel,
a kill -9 of the daemon mid-job then a restart (re-attached by the job id, recorded once),
and a controller that is down (the run fails `provision` with Slurm's own words). One
cluster for the module (about 0.3 s to start)."""

import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_EXIT, eph_bin, store_rows, wait_for
from slurmcluster import NODE, SlurmCluster, missing
from test_mail import free_port

SMTPD = Path(__file__).resolve().parent / "smtpd_server.py"

TERMINAL = {"succeeded", "failed", "oom", "timeout", "killed", "cancelled", "lost", "skipped"}

pytestmark = pytest.mark.skipif(bool(missing()), reason=f"Slurm is not installed: {missing()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.close()


class Sched:
    """A scheduler using the cluster: a git repository for the jobs' code, a jobs file whose
    executor `hpc` is the cluster, a state directory, and `eph daemon`."""

    def __init__(self, base, cluster):
        self.dir = Path(base)
        self.cluster = cluster
        self.state = self.dir / "state"
        self.state.mkdir()
        self.shared = self.dir / "shared"
        self.shared.mkdir()
        self.repo = self.dir / "repo"
        self.repo.mkdir()
        self.git("init", "-q", "-b", "main")
        (self.repo / "README").write_text("the jobs' code\n")
        self.git("add", "-A")
        self.git("commit", "-qm", "start")
        self.jobs_file = self.dir / "ephemeron.yaml"
        self.daemons = []

    def env(self):
        # a variable of the daemon's that must not reach the jobs (a secret's source may be one)
        return self.cluster.env(EPH_STATE=str(self.state), EPH_TEST_DAEMON_ONLY="x-7f3a")

    def git(self, *args):
        subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                       cwd=self.repo, check=True, capture_output=True)

    def jobs(self, jobs, files=None, executor="", top=""):
        for name, text in (files or {}).items():
            (self.repo / name).write_text(textwrap.dedent(text))
        if files:
            self.git("add", "-A")
            self.git("commit", "-qm", "files")
        text = (f"source: {{ repo: {self.repo}, refresh: 0 }}\n"
                + textwrap.dedent(top)
                + "executors:\n  hpc:\n    type: slurm\n"
                f"    shared_dir: {self.shared}\n    partition: batch\n"
                + "".join(f"    {l}\n" for l in textwrap.dedent(executor).splitlines()
                          if l.strip())
                + "jobs:\n"
                + "".join(f"  {n}: {{ schedule: \"0 0 1 1 *\", executor: hpc, {e} }}\n"
                          for n, e in jobs.items()))
        self.jobs_file.write_text(text)

    def eph(self, *args, check=True):
        p = subprocess.run([eph_bin(), "-f", self.jobs_file, *args], capture_output=True,
                           text=True, env=self.env(), timeout=60)
        if p.returncode in SANITIZER_EXIT:
            pytest.fail(f"{SANITIZER_EXIT[p.returncode]} in eph {args}:\n{p.stderr[-4000:]}")
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr, self.logs())
        return p

    def daemon(self):
        log = self.dir / f"daemon{len(self.daemons)}.log"
        f = open(log, "ab")
        p = subprocess.Popen([eph_bin(), "daemon", self.jobs_file], stdout=subprocess.DEVNULL,
                             stderr=f, env=self.env())
        f.close()
        self.daemons.append((p, log))
        wait_for(lambda: "info started" in log.read_text(errors="replace") or
                 p.poll() is not None, what="the daemon to start")
        assert p.poll() is None, log.read_text()
        return p

    def logs(self):
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-5000:]}"
                         for _, log in self.daemons) + "\n" + self.cluster.log_tail()[-3000:]

    def rows(self, where="1", args=()):
        return store_rows(self.state, "runs", where, args)

    def row(self, rid):
        got = self.rows("id = ?", (rid,))
        return got[0] if got else None

    def run(self, job):
        before = {r["id"] for r in self.rows()}
        self.eph("run", job)
        wait_for(lambda: {r["id"] for r in self.rows()} - before, what=f"a run of {job}")
        return max({r["id"] for r in self.rows()} - before)

    def wait_state(self, rid, states, timeout=60):
        states = {states} if isinstance(states, str) else set(states)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.row(rid)
            if r and r["state"] in states:
                return r
            time.sleep(0.05)
        pytest.fail(f"run {rid} is {self.row(rid)}, not in {sorted(states)}\n{self.logs()}")

    def wait_end(self, rid, timeout=60):
        return self.wait_state(rid, TERMINAL, timeout)

    def job_of(self, rid):
        r = self.row(rid)
        return json.loads(r["handle"]).get("job") if r and r["handle"] else None

    def output(self, rid):
        try:
            return (self.state / "runs" / str(rid) / "output.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        for p, log in self.daemons:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=20)
                if p.returncode in SANITIZER_EXIT:
                    pytest.fail(f"{SANITIZER_EXIT[p.returncode]} in the daemon:\n"
                                + log.read_text()[-4000:])
                assert p.returncode == 0, log.read_text()[-4000:]

    def close(self):
        for p, _ in self.daemons:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def sched(tmp_path, cluster):
    s = Sched(tmp_path, cluster)
    yield s
    s.close()


def test_a_run_is_a_slurm_job_recorded_with_its_output_and_peak(sched, cluster):
    sched.jobs({"hello": "run: sh hello.sh, memory: 256MiB, timeout: 10m"},
               files={"hello.sh": "for i in 1 2 3; do echo n $i; done\n"
                                  "cat /proc/self/cgroup | grep memory\n"
                                  "env | sed 's/^/env /'\n"
                                  "mkdir -p \"$EPH_RESULTS/sub\"\n"
                                  "echo 42 > \"$EPH_RESULTS/sub/answer.txt\"\n"})
    sched.daemon()
    rid = sched.run("hello")
    row = sched.wait_end(rid)
    assert row["state"] == "succeeded", (row, sched.output(rid), sched.logs())
    out = sched.output(rid)
    assert " out n 1" in out and " out n 3" in out, out
    job = sched.job_of(rid)
    assert job and job.isdigit(), row
    # the command ran inside the Slurm job's own memory cgroup, which measured its peak
    assert f"/job_{job}/" in out, out
    assert "job's cgroup" in row["peak_method"], row
    # the job's environment: a login's, not the daemon's
    assert " out env PATH=" in out and " out env HOME=" in out, out
    assert "x-7f3a" not in out, out
    assert 0 < row["peak_bytes"] < 256 << 20, row
    info = cluster.job(job)
    assert info["JobName"].startswith("eph-") and info["JobName"].endswith(f"-{rid}"), info
    assert info["Partition"] == "batch", info
    # --mem from the job's memory, --time from its timeout plus kill_grace and time_grace
    assert "mem=256M" in info["TRES"], info
    assert info["TimeLimit"] == "00:16:00", info
    # its results came with the last pull
    assert (sched.state / "runs" / str(rid) / "results" / "sub" / "answer.txt").read_text() \
        == "42\n"
    # the shared run directory goes once everything is here
    wait_for(lambda: not list(sched.shared.glob(f"*/runs/{rid}")), 10, "the shared run dir")
    sched.stop()


def test_over_its_memory_a_run_ends_oom_and_past_its_timeout_timeout(sched):
    alloc = ("import time\n"
             "l = []\n"
             "for i in range(60):\n"
             "    l.append(bytearray(b'x') * (10 << 20))\n"
             "    time.sleep(0.02)\n"
             "print('allocated', flush=True)\n")
    sched.jobs({"hog": "run: python3 alloc.py, memory: 200MiB",
                "slow": "run: sleep 60, memory: 128MiB, timeout: 2s, kill_grace: 1s"},
               files={"alloc.py": alloc})
    sched.daemon()
    hog, slow = sched.run("hog"), sched.run("slow")
    row = sched.wait_end(hog)
    assert row["state"] == "oom", (row, sched.output(hog), sched.logs())
    assert "memory" in row["reason"], row
    assert "allocated" not in sched.output(hog)
    row = sched.wait_end(slow)
    assert row["state"] == "timeout", (row, sched.logs())
    sched.stop()


def test_cancel_reaches_a_running_job_and_a_pending_one(sched, cluster):
    # the node holds 2 GiB: the first job takes 1.5 GiB, so the second waits in the queue
    sched.jobs({"long": "run: sleep 300, memory: 1536MiB",
                "queued": "run: sleep 300, memory: 1024MiB"})
    sched.daemon()
    a = sched.run("long")
    wait_for(lambda: cluster.job(sched.job_of(a) or 0).get("JobState") == "RUNNING", 30,
             "the first job to run")
    wait_for(lambda: "out" in sched.output(a) or (sched.state / "runs" / str(a) /
                                                   "events.jsonl").exists(), 30,
             "the agent to start")
    b = sched.run("queued")
    wait_for(lambda: cluster.job(sched.job_of(b) or 0).get("JobState") == "PENDING", 30,
             "the second job to wait")
    sched.eph("cancel", str(b))
    row = sched.wait_end(b, 30)
    assert row["state"] == "cancelled", (row, cluster.job(sched.job_of(b)), sched.logs())
    t0 = time.monotonic()
    sched.eph("cancel", str(a))
    row = sched.wait_end(a, 30)
    assert row["state"] == "cancelled", (row, sched.logs())
    # the agent stopped its command and wrote the result itself
    assert "agent was asked to stop" in row["reason"], row
    assert time.monotonic() - t0 < 15
    # the agent ended the job itself (its exit status makes it COMPLETED or FAILED)
    wait_for(lambda: cluster.job(sched.job_of(a)).get("JobState") in
             ("COMPLETED", "FAILED", "CANCELLED"), 20, "the job to end")
    sched.stop()


def test_a_run_cancelled_while_it_is_submitted_has_its_job_cancelled(sched, cluster):
    # an sbatch that takes its time: the run is cancelled before the job id comes back
    slow = sched.dir / "slow-sbatch"
    slow.write_text(f"#!/bin/sh\nsleep 2\nexec {shutil.which('sbatch')} \"$@\"\n")
    slow.chmod(0o755)
    sched.jobs({"late": "run: sleep 60, memory: 64MiB"}, executor=f"sbatch: {slow}")
    sched.daemon()
    rid = sched.run("late")
    # its handle names the run directory and the job's name right before sbatch runs
    wait_for(lambda: (sched.row(rid) or {}).get("handle"), 30, "the submission")
    assert sched.job_of(rid) is None
    sched.eph("cancel", str(rid))
    row = sched.wait_end(rid, 30)
    assert row["state"] == "cancelled", (row, sched.logs())
    assert "being made" in row["reason"], row

    name = json.loads(sched.row(rid)["handle"])["name"]

    def its_jobs():
        p = cluster.scontrol("-o", "show", "job")
        return [dict(w.split("=", 1) for w in line.split() if "=" in w)
                for line in p.stdout.splitlines() if f" JobName={name} " in line]

    # the job submitted all the same is found by its name, and cancelled by eph
    wait_for(lambda: its_jobs() and all(j["JobState"] == "CANCELLED" for j in its_jobs()), 20,
             "the late job to be cancelled")
    sched.stop()


def test_a_daemon_killed_while_sbatch_is_out_finds_the_job_by_its_name(sched):
    slow = sched.dir / "slow-sbatch"
    slow.write_text(f"#!/bin/sh\nsleep 2\nexec {shutil.which('sbatch')} \"$@\"\n")
    slow.chmod(0o755)
    sched.jobs({"hello": "run: echo hello, memory: 64MiB"}, executor=f"sbatch: {slow}")
    d = sched.daemon()
    rid = sched.run("hello")
    wait_for(lambda: (sched.row(rid) or {}).get("handle"), 30, "the submission")
    d.kill()
    d.wait()
    assert sched.job_of(rid) is None
    # restarted at once: the orphaned sbatch is still on its way, and its job is looked for by
    # its name until it appears (SLURM_SUBMIT_GRACE_S), however long the submission takes
    sched.daemon()
    row = sched.wait_end(rid, 30)
    assert row["state"] == "succeeded", (row, sched.logs())
    assert sched.job_of(rid) is not None, row
    assert " out hello" in sched.output(rid)
    sched.stop()


def test_a_job_that_ends_without_a_result_is_recorded_from_slurms_state(sched, cluster):
    sched.jobs({"doomed": "run: sleep 60, memory: 128MiB"})
    sched.daemon()
    rid = sched.run("doomed")
    wait_for(lambda: (sched.state / "runs" / str(rid) / "events.jsonl").exists() and
             "exec" in (sched.state / "runs" / str(rid) / "events.jsonl").read_text(), 30,
             "the command to start")
    # the agent killed outright on its node (as an OOM killer would): no result.json; its
    # batch step ends by signal, which Slurm calls FAILED (and ends the command with it)
    job = sched.job_of(rid)
    pid = int(next(sched.shared.glob(f"*/runs/{rid}/agent.pid")).read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    row = sched.wait_end(rid, 30)
    assert row["state"] == "lost", (row, sched.logs())
    assert row["reason"].startswith(f"Slurm job {job} ended FAILED (reason "), row
    assert row["reason"].endswith(") without a result from the agent"), row
    # what the agent had written before is here all the same
    assert "exec" in (sched.state / "runs" / str(rid) / "events.jsonl").read_text()
    sched.stop()


def test_a_daemon_stopped_or_killed_mid_job_reattaches_by_the_job_id_and_records_once(sched):
    sched.jobs({"ticks": "run: sh ticks.sh, memory: 128MiB"},
               files={"ticks.sh": "for i in $(seq 12); do echo t $i; sleep 0.5; done\n"})
    d = sched.daemon()
    rid = sched.run("ticks")
    wait_for(lambda: " out t 2" in sched.output(rid), 30, "the run to be under way")
    job = sched.job_of(rid)
    # stopped: the job goes on, and the next daemon follows it (no leak at the stop)
    d.send_signal(signal.SIGTERM)
    assert d.wait(timeout=20) == 0, sched.logs()
    d = sched.daemon()
    wait_for(lambda: " out t 5" in sched.output(rid), 30, "the run to go on")
    # killed outright: the same
    d.kill()
    d.wait()
    time.sleep(1)
    sched.daemon()
    row = sched.wait_end(rid, 60)
    assert row["state"] == "succeeded", (row, sched.logs())
    assert sched.job_of(rid) == job
    # eph show and eph runs name where it ran, from scontrol
    assert json.loads(row["handle"]).get("host") == f"{NODE} (job {job})", row
    assert f"{NODE} (job {job})" in sched.eph("show", str(rid)).stdout
    # every line once, in order, across the three daemons
    assert [l.split()[-1] for l in sched.output(rid).splitlines() if " out t " in l] == \
        [str(i) for i in range(1, 13)], sched.output(rid)
    assert len(sched.rows()) == 1, sched.rows()
    sched.stop()


def test_a_controller_that_is_down_fails_submissions_in_slurms_words_and_is_told(sched,
                                                                               cluster):
    # the controller down while a job runs: the job goes on and is recorded as it ends, a new
    # run fails `provision` in Slurm's words, and once sbatch and scontrol have failed for
    # down_after (3 s here; they run only for runs submitted or followed, so the job lasts
    # longer than that) the admin hears of it, once, and once more when it answers again
    port = free_port()
    maildir = sched.dir / "maildir"
    ready = sched.dir / "smtpd-ready"
    smtpd = subprocess.Popen(["/usr/bin/python3", SMTPD, "--port", str(port), "--maildir", maildir,
                              "--ready", ready], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(ready.exists, 15, "the SMTP server")
        sched.jobs({"hello": "run: echo hi, memory: 64MiB",
                    "long": "run: sh -c 'echo start; sleep 10; echo end', memory: 64MiB"},
                   executor="down_after: 3s",
                   top=f"mail:\n  smtp: smtp://127.0.0.1:{port}\n  from: eph@example.com\n"
                       "  starttls: false\n  admin: [root@example.com]\n")
        sched.daemon()
        long = sched.run("long")
        wait_for(lambda: " out start" in sched.output(long), 30, "the long command to start")

        def mails():
            return sorted((maildir / "new").glob("*")) if (maildir / "new").exists() else []

        t0 = time.monotonic()
        cluster.stop_ctld()
        try:
            rid = sched.run("hello")
            row = sched.wait_end(rid, 90)
            assert row["state"] == "failed", row
            assert row["reason"].startswith("provision: "), row
            assert "Unable to contact slurm controller" in row["reason"], row
            # the job ran on without its controller, and its result was taken as it came:
            # scontrol failing all the while was evidence of nothing
            wait_for(lambda: len(mails()) == 1, 60, "the mail that the controller is down")
            assert time.monotonic() - t0 >= 2.9
            row = sched.wait_end(long, 60)
            assert row["state"] == "succeeded", (row, sched.logs())
            assert " out end" in sched.output(long)
        finally:
            cluster.start_ctld()
        down = mails()[0].read_text()
        assert "slurm controller unreachable (executor hpc)" in down, down
        # the last failure's words: sbatch's or scontrol's ("Slurmctld(primary) at HOST is DOWN")
        assert "Unable to contact slurm controller" in down or " is DOWN" in down, down
        assert "root@example.com" in down
        # back: the next run goes through, and the admin hears of it
        rid = sched.run("hello")
        assert sched.wait_end(rid)["state"] == "succeeded", sched.logs()
        wait_for(lambda: len(mails()) == 2, 30, "the mail that the controller answers again")
        up = next(m for m in mails() if m.read_text() != down).read_text()
        assert "slurm controller answers again (executor hpc)" in up, up
        sched.stop()
    finally:
        smtpd.terminate()
        smtpd.wait()


def test_eph_run_in_the_foreground_without_a_daemon(sched):
    sched.jobs({"hello": "run: echo hello there, memory: 128MiB"})
    p = sched.eph("run", "hello")
    assert "hello there" in p.stdout, p.stdout
    assert "succeeded" in p.stderr, p.stderr
    row = sched.rows()[0]
    assert row["state"] == "succeeded", row
    assert json.loads(row["handle"])["job"].isdigit(), row


def test_eph_gc_cleans_the_shared_caches_but_what_a_queued_run_names(sched, cluster):
    sched.jobs({"hello": "run: echo hello, memory: 64MiB"})
    sched.eph("run", "hello")
    base = next(sched.shared.glob("*/archives")).parent
    old = {p.name for p in (base / "archives").glob("*.tar")}
    assert len(old) == 1 and list((base / "sources").iterdir()), list(base.rglob("*"))
    # a new commit, run by a job held in Slurm's queue: its agent holds nothing yet, but its
    # spec in the shared runs/ names its archive
    sched.jobs({"hello": "run: echo hello, memory: 64MiB"}, files={"two": "2\n"},
               executor="extra_args: [--hold]")
    sched.daemon()
    rid = sched.run("hello")
    wait_for(lambda: cluster.job(sched.job_of(rid) or 0).get("JobState") == "PENDING", 30,
             "the held job")
    new = {p.name for p in (base / "archives").glob("*.tar")} - old
    assert len(new) == 1, list((base / "archives").iterdir())
    # everything unused for a month
    month = time.time() - 30 * 86400
    for sub in ("archives", "sources", "wheels", "venvs"):
        for p in (base / sub).glob("*") if (base / sub).exists() else ():
            os.utime(p, (month, month), follow_symlinks=False)
    got = json.loads(sched.eph("gc", "--json").stdout)
    removed = {(e["kind"], Path(e["path"]).name) for e in got["removed"]}
    kept = {(e["kind"], Path(e["path"]).name): e["reason"] for e in got["kept"]}
    (commit_old,) = [n[:-4] for n in old]
    (commit_new,) = [n[:-4] for n in new]
    assert ("archive", f"{commit_old}.tar") in removed, got
    assert ("sources", commit_old) in removed, got
    assert kept[("archive", f"{commit_new}.tar")] == "named by a run of the shared directory", got
    assert not (base / "archives" / f"{commit_old}.tar").exists()
    assert not (base / "sources" / commit_old).exists()
    assert (base / "archives" / f"{commit_new}.tar").exists()
    sched.eph("cancel", str(rid))
    assert sched.wait_end(rid, 30)["state"] == "cancelled", sched.logs()
    sched.stop()


def test_a_job_whose_agent_the_oom_killer_takes_is_recorded_oom_from_slurms_state(sched):
    # the job over its memory, where the kernel's OOM killer takes the agent rather than its
    # command (root may steer it: oom_score_adj 1000 for the agent, -1000 for the command and
    # the shell between them): no result.json, and Slurm ends the job OUT_OF_MEMORY, which
    # decides
    grab = textwrap.dedent("""\
        import os
        pid = os.getpid()
        while True:
            comm = open(f"/proc/{pid}/comm").read().strip()
            agent = comm == "eph-agent"
            open(f"/proc/{pid}/oom_score_adj", "w").write("1000" if agent else "-1000")
            if agent or pid == 1:
                break
            pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        print("steered", comm, flush=True)
        l = []
        for i in range(100):
            l.append(bytearray(b"x") * (10 << 20))
        """)
    sched.jobs({"rogue": "run: python3 grab.py, memory: 128MiB"}, files={"grab.py": grab})
    sched.daemon()
    rid = sched.run("rogue")
    row = sched.wait_end(rid, 60)
    job = sched.job_of(rid)
    assert " out steered eph-agent" in sched.output(rid), sched.output(rid)
    assert row["state"] == "oom", (row, sched.output(rid), sched.logs())
    assert row["reason"] == (f"killed by the memory limit (Slurm job {job} ended OUT_OF_MEMORY "
                             "before the agent wrote a result)"), row
    sched.stop()
