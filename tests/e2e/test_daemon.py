"""`eph daemon` end to end: the real daemon with real agents on `@every 1s`-style schedules,
its policies, its control socket, reload, and restart safety after kill -9."""

import glob
import json
import os
import random
import signal
import subprocess
import textwrap
import time

import pytest

from conftest import SANITIZER_EXIT, eph_bin, marker_pids, store_rows, wait_for
from test_agent import cgroup_parents

# every test here runs real schedules against the clock: scripts/check runs them again with
# both cores busy (conftest.py)
pytestmark = pytest.mark.timing

# a jobs file whose only job does not fire for months: "no more fires" without an empty file
IDLE_JOBS = 'jobs:\n  idle:\n    schedule: "0 0 1 1 *"\n    command: ["true"]\n'
TERMINAL = {"succeeded", "failed", "oom", "timeout", "killed", "cancelled", "lost", "skipped"}


class Daemon:
    """One `eph daemon` process; its stderr (the log) goes to a file."""

    def __init__(self, jobs_file, state_dir, log_path, extra=()):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        env = dict(os.environ, EPH_STATE=str(state_dir))
        self.p = subprocess.Popen([eph_bin(), "daemon", str(jobs_file), *extra],
                                  stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        wait_for(lambda: "info started" in self.text() or self.p.poll() is not None,
                 what="the daemon to start")

    def text(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        if self.p.returncode in SANITIZER_EXIT:
            pytest.fail(f"{SANITIZER_EXIT[self.p.returncode]} reported a problem in the daemon:\n"
                        + self.text()[-4000:])
        return self.p.returncode


@pytest.fixture
def daemons():
    """Starts daemons; stops every one still running at teardown (by its own pid)."""
    started = []

    def start(jobs_file, state_dir, log_name="daemon.log", extra=()):
        d = Daemon(jobs_file, state_dir, state_dir.parent / log_name, extra)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop(signal.SIGKILL if d.p.poll() is None else signal.SIGTERM)


def rows(state_dir, where="1", args=()):
    return store_rows(state_dir, "runs", where, args)


def write_jobs(path, text):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(textwrap.dedent(text))
    os.replace(tmp, path)
    return path


def wait_all_terminal(state_dir, timeout=20.0):
    wait_for(lambda: all(r["state"] in TERMINAL for r in rows(state_dir)), timeout,
             "every run to be terminal")


def test_fires_on_its_grid_without_missing_or_doubling(tmp_path, state_dir, daemons, run):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          every1:
            schedule: "@every 1s"
            command: ["echo", "tick"]
            memory: 32MiB
          every2:
            schedule: "@every 2s"
            run: echo tock
            memory: 32MiB
        """)
    d = daemons(jobs, state_dir)
    time.sleep(1.0)
    # a second daemon on the same state directory is refused, naming the first
    p = run(["daemon", jobs])
    assert p.returncode == 1
    assert p.stderr.strip() == f"eph daemon: already running (pid {d.p.pid})"
    time.sleep(59.0)  # a minute on the grid, as the issue asks
    write_jobs(jobs, IDLE_JOBS)  # no more fires: the live run (if any) ends under this daemon
    wait_for(lambda: "reloaded" in d.text(), what="the reload")
    wait_all_terminal(state_dir)
    assert d.stop() == 0
    for job, step, least in (("every1", 1, 58), ("every2", 2, 29)):
        got = rows(state_dir, "job = ?", (job,))
        sched = [r["scheduled_at"] for r in got if r["trigger"] == "schedule"]
        assert len(sched) >= least, got
        assert all(s % step == 0 for s in sched)
        assert sched == list(range(sched[0], sched[0] + step * len(sched), step)), sched
        for r in got:
            assert r["state"] == "succeeded", r
            # never before its instant, and within a second of it
            assert 0 <= r["started_at"] - r["scheduled_at"] < 1.0, r
    log = d.text()
    assert "info run 1 " in log and " started (schedule " in log
    assert "stopping (SIGTERM)" in log


def test_concurrency_forbid_allow_replace(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          forbid:
            schedule: "@every 1s"
            run: sleep 2.5
            concurrency: forbid
          allow:
            schedule: "@every 1s"
            run: sleep 2.5
            concurrency: allow
          replace:
            schedule: "@every 1s"
            run: sleep 2.5
            concurrency: replace
        """)
    d = daemons(jobs, state_dir)
    time.sleep(5.5)
    write_jobs(jobs, IDLE_JOBS)  # no more fires: let the live runs end
    wait_all_terminal(state_dir, 10)
    d.stop()
    forbid = rows(state_dir, "job = 'forbid'")
    skipped = [r for r in forbid if r["state"] == "skipped"]
    assert skipped and all(r["reason"].startswith("previous run ") and
                           r["reason"].endswith(" still running") for r in skipped)
    ran = [r for r in forbid if r["state"] != "skipped" and r["started_at"]]
    for a, b in zip(ran, ran[1:]):
        assert b["started_at"] >= a["ended_at"] - 0.01, (a, b)  # never two at once
    allow = [r for r in rows(state_dir, "job = 'allow'") if r["started_at"]]
    assert any(b["started_at"] < a["ended_at"] for a, b in zip(allow, allow[1:])), allow
    assert not [r for r in rows(state_dir, "job = 'allow'") if r["state"] == "skipped"]
    replace = rows(state_dir, "job = 'replace'")
    assert [r for r in replace if r["state"] == "cancelled"], replace


def test_catchup_none_latest_all(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        defaults:
          concurrency: allow
          starting_deadline: 1h
        jobs:
          none:
            schedule: "@every 1s"
            command: ["true"]
            catchup: none
          latest:
            schedule: "@every 1s"
            command: ["true"]
            catchup: latest
          all:
            schedule: "@every 1s"
            command: ["true"]
            catchup: all
        """)
    d = daemons(jobs, state_dir)
    wait_for(lambda: {r["job"] for r in rows(state_dir) if r["state"] == "succeeded"} ==
             {"none", "latest", "all"}, 20, "a run of each job")
    d.stop()
    time.sleep(4.0)
    d = daemons(jobs, state_dir, "daemon2.log")
    # "started" is logged once the start-up fires are recorded: the catch-ups, then the fire
    # of the current second (on time: a scheduled one)
    d.stop()
    # What the gap was is read from the store, not from this process's clock around the
    # daemons' lives (which a loaded machine stretches): the fires a job's first daemon
    # handled, then the ones its second daemon caught up, then that daemon's own. The second
    # started 4 s after the first ended, so at least 2 instants fell between them (the first
    # handles an instant up to 150 ms ahead of it, and each rounds its clock down).
    ats = {j: [(r["scheduled_at"], r["trigger"]) for r in rows(state_dir, "job = ?", (j,))]
           for j in ("none", "latest", "all")}
    for j, v in ats.items():
        at = [a for a, _ in v]
        assert len(at) == len(set(at)), (j, v)  # nothing was run twice
        assert {t for _, t in v} <= {"schedule", "catchup"}, (j, v)
    catch = {j: sorted(a for a, t in v if t == "catchup") for j, v in ats.items()}
    # all: every instant from the first to the last, the gap's as catch-ups, in one block
    # followed by the second daemon's first fire
    at = sorted(a for a, _ in ats["all"])
    assert at == list(range(at[0], at[-1] + 1)), ats["all"]
    assert len(catch["all"]) >= 2, ats["all"]
    assert catch["all"] == list(range(catch["all"][0], catch["all"][-1] + 1))
    assert (catch["all"][-1] + 1, "schedule") in ats["all"], ats["all"]
    assert catch["all"][0] - 1 in at, ats["all"]  # the first daemon's last fire
    # latest: only the last instant of the gap (both daemons read one clock for every job)
    assert catch["latest"] == [catch["all"][-1]], ats["latest"]
    # none: the gap stays a gap
    assert catch["none"] == [], ats["none"]
    at = [a for a, _ in ats["none"]]
    assert catch["all"][-1] not in at and catch["all"][-1] + 1 in at, ats["none"]


def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          work:
            schedule: "@every 1s"
            run: echo begin; sleep 1.3; echo end
            concurrency: allow
            memory: 32MiB
        """)
    rnd = random.Random(5)
    for i in range(4):
        d = daemons(jobs, state_dir, f"daemon{i}.log")
        time.sleep(1.0 + rnd.random() * 1.5)
        d.stop(signal.SIGKILL)
    d = daemons(jobs, state_dir, "daemon-last.log")
    time.sleep(0.5)
    write_jobs(jobs, IDLE_JOBS)  # no more fires: let the live runs end under this daemon
    wait_all_terminal(state_dir, 15)
    d.stop()
    wait_for(lambda: not marker_pids(str(state_dir)), 10, "no agent or command left")
    got = rows(state_dir)
    assert len(got) >= 8
    at = [r["scheduled_at"] for r in got if r["trigger"] in ("schedule", "catchup")]
    assert len(at) == len(set(at)), "a fire was doubled"
    for r in got:
        assert r["state"] in TERMINAL
        if r["state"] == "succeeded":
            out = open(f"{r['run_dir']}/output.log").read()
            assert " out begin\n" in out and " out end\n" in out, out
    # every terminal state was recorded once: the restarts logged each run's end once (a run
    # withdrawn before it was prepared is deleted, not recorded, and its fire made again: the
    # new run may get its id back, as SQLite reuses the largest rowid once it is deleted)
    logs = "".join(open(p).read() for p in sorted(tmp_path.glob("daemon*.log")))
    for r in got:
        if r["state"] == "skipped":
            continue
        ends = [ln for ln in logs.splitlines()
                if f" run {r['id']} work " in ln and " withdrawn: " not in ln
                and (" after " in ln or "(recorded at restart)" in ln
                     or ": the scheduler stopped" in ln or "lost:" in ln)]
        assert len(ends) <= 1, ends
    # where the agents put their runs' cgroups: the cgroup this test runs in, or the top level
    for cg in cgroup_parents():
        if not os.path.isdir(cg):
            continue
        for r in got:
            # each agent names its cgroup run-<id>-<agent pid> and removes it at the end
            if r.get("agent_pid"):
                assert not os.path.exists(f"{cg}/run-{r['id']}-{r['agent_pid']}"), r
            for d in glob.glob(f"{cg}/run-{r['id']}-*"):
                procs = [int(x) for x in open(f"{d}/cgroup.procs").read().split()]
                assert not set(procs) & set(marker_pids(str(state_dir)))


def test_reload_broken_keeps_old_good_takes_effect(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          old:
            schedule: "@every 1s"
            command: ["true"]
        """)
    d = daemons(jobs, state_dir)
    time.sleep(1.2)
    write_jobs(jobs, """\
        jobs:
          old:
            schedule: "@every 1s"
            command: ["true"]
            memroy: 1GiB
        """)
    wait_for(lambda: "reload" in d.text() and "failed" in d.text(), 5, "the failed reload")
    n_old = len(rows(state_dir, "job = 'old'"))
    time.sleep(2.2)
    assert len(rows(state_dir, "job = 'old'")) >= n_old + 2  # still firing
    assert f"{jobs}:5:5: unknown key" in d.text(), d.text()
    write_jobs(jobs, """\
        jobs:
          new:
            schedule: "@every 1s"
            command: ["true"]
        """)
    wait_for(lambda: rows(state_dir, "job = 'new'"), 5, "the new job to fire")
    os.kill(d.p.pid, signal.SIGHUP)
    wait_for(lambda: "(SIGHUP)" in d.text(), 5, "the SIGHUP reload")
    n_old = len(rows(state_dir, "job = 'old'"))
    time.sleep(1.5)
    assert len(rows(state_dir, "job = 'old'")) == n_old  # gone
    assert d.stop() == 0


def test_admission_runs_big_jobs_one_after_the_other(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        executors:
          local:
            memory_budget: 100MiB
        jobs:
          big-a:
            schedule: "@every 3s"
            run: sleep 1
            memory: 64MiB
          big-b:
            schedule: "@every 3s"
            run: sleep 1
            memory: 64MiB
        """)
    d = daemons(jobs, state_dir)
    wait_for(lambda: len([r for r in rows(state_dir) if r["state"] == "succeeded"]) >= 2, 10,
             "both jobs to run once")
    d.stop()
    wait_all_terminal(state_dir)
    ran = sorted((r for r in rows(state_dir) if r["started_at"]), key=lambda r: r["started_at"])
    assert {r["job"] for r in ran} == {"big-a", "big-b"}
    for a, b in zip(ran, ran[1:]):
        assert a["ended_at"] is None or b["started_at"] >= a["ended_at"] - 0.01, (a, b)
    assert "waiting for memory" in d.text()


def test_status_run_cancel_through_the_daemon(tmp_path, state_dir, daemons, run):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          hourly:
            schedule: "@hourly"
            run: echo hello from the daemon
          long:
            schedule: "@daily"
            run: sleep 30
        """)
    p = run(["-f", jobs, "status"])
    assert p.returncode == 0 and p.stdout.startswith("daemon: not running\n")
    p = run(["cancel", "1"])
    assert p.returncode == 1 and "no daemon is running" in p.stderr
    d = daemons(jobs, state_dir)
    st = oct(os.stat(state_dir / "eph.sock").st_mode & 0o777)
    assert st == "0o600"
    p = run(["-f", jobs, "run", "hourly", "--follow"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hello from the daemon\n"
    assert "hourly: succeeded after" in p.stderr
    p = run(["-f", jobs, "run", "long", "--json"])
    assert p.returncode == 0, p.stderr
    rid = json.loads(p.stdout)["run"]
    wait_for(lambda: rows(state_dir, "id = ?", (rid,))[0]["state"] == "running", 10,
             "the long run to start")
    p = run(["-f", jobs, "status", "--json"])
    st = json.loads(p.stdout)
    assert st["daemon"]["running"] and st["daemon"]["pid"] == d.p.pid
    byname = {j["job"]: j for j in st["jobs"]}
    assert byname["long"]["state"] == "running"
    assert byname["hourly"]["last"]["state"] == "succeeded"
    assert byname["hourly"]["next"].endswith(":00:00+00:00") or byname["hourly"]["next"]
    p = run(["cancel", str(rid)])
    assert p.returncode == 0, p.stderr
    wait_for(lambda: rows(state_dir, "id = ?", (rid,))[0]["state"] == "cancelled", 10,
             "the cancel")
    p = run(["cancel", str(rid)])
    assert p.returncode == 1 and "not live" in p.stderr
    p = run(["-f", jobs, "run", "nosuch"])
    assert p.returncode == 1 and 'no job "nosuch"' in p.stderr
    assert d.stop() == 0
    assert not (state_dir / "eph.sock").exists()


def test_retries_back_off_and_jitter_is_recorded(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        max_parallel: 1
        jobs:
          flaky:
            schedule: "@every 1h"
            run: exit 3
            retries: 2
            retry_backoff: 1s
          jittery:
            schedule: "@every 2s"
            command: ["true"]
            jitter: 1s
        """)
    d = daemons(jobs, state_dir)
    os.kill(d.p.pid, 0)
    p = subprocess.run([eph_bin(), "-f", str(jobs), "run", "flaky"], capture_output=True,
                       text=True, env=dict(os.environ, EPH_STATE=str(state_dir)))
    assert p.returncode == 0, p.stderr
    wait_for(lambda: len(rows(state_dir, "job = 'flaky'")) == 3 and
             all(r["state"] in TERMINAL for r in rows(state_dir, "job = 'flaky'")), 15,
             "the two retries")
    time.sleep(1.0)  # and no fourth attempt
    d.stop()
    flaky = rows(state_dir, "job = 'flaky'")
    assert [(r["attempt"], r["trigger"], r["state"]) for r in flaky] == [
        (1, "manual", "failed"), (2, "retry", "failed"), (3, "retry", "failed")]
    # backoff: 1 s after the first failure, 2 s after the second
    assert flaky[1]["created_at"] - flaky[0]["ended_at"] >= 0.9
    assert flaky[2]["created_at"] - flaky[1]["ended_at"] >= 1.9
    assert "retry 1 of 2 in 1s" in d.text() and "retry 2 of 2 in 2s" in d.text()
    jit = [r for r in rows(state_dir, "job = 'jittery'") if r["started_at"]]
    assert jit
    for r in jit:
        assert 0 <= r["jitter"] <= 1
        assert r["started_at"] - r["scheduled_at"] >= r["jitter"] - 0.05, r
    # max_parallel 1: no two runs of the daemon overlapped
    ran = sorted((r for r in rows(state_dir) if r["started_at"]), key=lambda r: r["started_at"])
    for a, b in zip(ran, ran[1:]):
        assert b["started_at"] >= a["ended_at"] - 0.05, (a, b)


def test_retention_deletes_the_oldest_runs_and_their_directories(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        retention:
          runs_per_job: 3
        jobs:
          often:
            schedule: "@every 1s"
            command: ["true"]
        """)
    d = daemons(jobs, state_dir)
    wait_for(lambda: "retention: deleted" in d.text(), 10, "a retention pass")
    time.sleep(1.5)
    d.stop()
    got = rows(state_dir, "job = 'often'")
    assert 3 <= len(got) <= 4, got  # the limit, plus the one whose end triggers the next pass
    kept = {str(r["id"]) for r in got}
    assert set(os.listdir(state_dir / "runs")) == kept
    assert min(int(i) for i in kept) > 1
