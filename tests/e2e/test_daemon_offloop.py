"""Nothing slow on the daemon's loop, end to end: git made to hang (a `git` wrapper first on
PATH that sleeps, for the calls a test chooses, once a marker file exists) in the fetch of a
run's code, in the daemon's own fetch of its jobs file (--from-repo) and in the `git log` of a
mail, while another job keeps firing on its grid and `eph status` answers; and a SIGTERM during
such a call stops the daemon at once, leaving no process behind; a kill -9 during a run's fetch
leaves a run the next start fires again."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import eph_bin, run_eph, wait_for
from test_daemon import daemons, rows, write_jobs  # noqa: F401 (a fixture)
from test_daemon_from_repo import commit, make_repo
from test_mail import smtpd  # noqa: F401 (a fixture)

TERMINAL = {"succeeded", "failed", "oom", "timeout", "killed", "cancelled", "lost", "skipped"}


@pytest.fixture
def hang(tmp_path, monkeypatch):
    """A `git` first on PATH that, once hang.arm(WORD) was called, sleeps instead of running
    for every call with WORD among its arguments, recording its pid. Returns the helper; every
    sleeper still alive at teardown is killed (by pid)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    marker = tmp_path / "hang-word"
    pids = tmp_path / "hung.pids"
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True,
                          text=True).stdout.strip()
    wrapper = bindir / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ -e {marker} ]; then w=$(cat {marker}); case " $* " in *" $w "*)\n'
        f"  echo $$ >>{pids}; exec sleep 60;; esac; fi\n"
        f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")

    class Hang:
        def arm(self, word):
            marker.write_text(word)

        def disarm(self):
            marker.unlink()

        def pids(self):
            return [int(x) for x in pids.read_text().split()] if pids.exists() else []

    h = Hang()
    yield h
    for pid in h.pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid):
    """The live processes whose parent is PID."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
    return out


def status_answers_promptly(times=3, within=2.0):
    """`eph status --json` gets the daemon's own answer, TIMES times, each within WITHIN s."""
    for _ in range(times):
        t0 = time.monotonic()
        p = run_eph(["status", "--json"], timeout=30)
        took = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["daemon"]["pid"] > 0, p.stdout
        assert took < within, f"eph status took {took:.1f}s"
        time.sleep(0.3)


def on_grid(state_dir, job, since, until, late=2.5):
    """The fires of JOB scheduled in [SINCE, UNTIL]: each run started within LATE s of its
    instant (a fire skipped by `forbid`, the previous run being slow, was on time too).
    Returns them."""
    got = [r for r in rows(state_dir, "job = ? AND scheduled_at BETWEEN ? AND ?",
                           (job, since, until))]
    for r in got:
        if r["state"] != "skipped":
            assert r["started_at"] is not None, r
            assert r["started_at"] - r["scheduled_at"] < late, r
    return got


JOBS = """\
source:
  refresh: 1s
jobs:
  tick:
    schedule: "@every 1s"
    run: echo tick
    memory: 64MiB
"""


def test_a_hanging_fetch_of_the_jobs_file_holds_up_no_run(tmp_path, state_dir, daemons, hang):
    """--from-repo: the daemon's own fetch hangs, holding the mirror's lock; the runs, pinned to
    the jobs file's commit, need no fetch and keep starting on their grid."""
    repo, c1 = make_repo(tmp_path, JOBS)
    d = daemons("ephemeron.yaml", state_dir, extra=("--from-repo", f"file://{repo}"))
    wait_for(lambda: any(r["state"] == "succeeded" for r in rows(state_dir)), what="a run")
    hang.arm("fetch")
    wait_for(lambda: hang.pids(), what="the daemon's fetch to hang")
    since = int(time.time()) + 1
    status_answers_promptly()
    wait_for(lambda: time.time() > since + 4, what="4 s of hang")
    assert hang.pids() and all(alive(p) for p in hang.pids()), "the fetch no longer hangs"
    wait_for(lambda: len([r for r in rows(state_dir, "scheduled_at >= ? AND state = ?",
                                          (since, "succeeded"))]) >= 4, 10,
             "runs on the grid during the hang")
    got = on_grid(state_dir, "tick", since, since + 3)
    assert len(got) == 4, got
    assert {r["commit_id"] for r in got if r["state"] != "skipped"} == {c1}
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 5
    wait_for(lambda: not any(alive(p) for p in hang.pids()), 5, "the hung git to be killed")


def origin(tmp_path):
    bare = tmp_path / "origin.git"
    work, c = make_repo(tmp_path, "echo from the repository\n")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return f"file://{bare}", c


def test_a_hanging_fetch_of_a_run_holds_neither_the_loop_nor_a_stop(tmp_path, state_dir,
                                                                     daemons, hang):
    """refresh 0: every run fetches; one fetch hangs (holding the mirror's lock: the next runs
    of the repository wait for it). The loop goes on: the control socket answers, the fires of
    the grid are still made at their instants. SIGTERM stops the daemon at once, its children
    and their git with it, and leaves no run unsettled."""
    url, _ = origin(tmp_path)
    jobs = write_jobs(tmp_path / "ephemeron.yaml", f"""\
        source:
          repo: {url}
          refresh: 0
        jobs:
          tick:
            schedule: "@every 1s"
            run: echo tick
            memory: 64MiB
        """)
    d = daemons(jobs, state_dir)
    wait_for(lambda: any(r["state"] == "succeeded" for r in rows(state_dir)), what="a run")
    hang.arm("fetch")
    wait_for(lambda: hang.pids(), what="a run's fetch to hang")
    since = int(time.time()) + 1
    status_answers_promptly()
    # fired on the grid meanwhile: created (their code waits for the fetch in progress)
    wait_for(lambda: {r["scheduled_at"] for r in rows(state_dir, "scheduled_at >= ?",
                                                      (since,))} >= {since, since + 1, since + 2},
             10, "fires on the grid during the hang")
    wait_for(lambda: len(rows(state_dir, "scheduled_at >= ?", (since,))) >= 6, 10,
             "6 runs prepared during the hang")

    def fetchers():
        return [p for p in children(d.p.pid)
                if b"fetch" in open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")]
    # the hung one and the runs waiting for it; at most 4 children at once, the rest queued
    assert 2 <= len(fetchers()) <= 4, fetchers()
    fetchers = fetchers()
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 5, d.text()
    assert "stopped" in d.text()
    wait_for(lambda: not any(alive(p) for p in hang.pids() + fetchers), 5,
             "the eph fetch children and their git to end")
    # each run is settled: withdrawn (its instant had not come), or ended
    assert all(r["state"] in TERMINAL for r in rows(state_dir)), rows(state_dir)


def test_a_hanging_git_log_for_a_mail_does_not_delay_a_fire(tmp_path, state_dir, daemons, hang,
                                                             smtpd):
    """Each run's mail carries its commit's subject line, read off the loop while the run is
    prepared; a `git log` that hangs delays neither the next fires nor the mail."""
    url, c = origin(tmp_path)
    s = smtpd().start()
    jobs = write_jobs(tmp_path / "ephemeron.yaml", f"""\
        source:
          repo: {url}
          refresh: 1h
        defaults:
          notify: {{ email: [ops@example.com], on: [success] }}
        mail:
          smtp: smtp://127.0.0.1:{s.port}
          from: eph@example.com
          starttls: false
        jobs:
          tick:
            schedule: "@every 1s"
            run: echo tick
            memory: 64MiB
        """)
    d = daemons(jobs, state_dir)
    wait_for(lambda: s.messages(), what="a first message")
    body = s.messages()[0].get_content()
    assert f"Commit:     {c} first\n" in body, body
    hang.arm("log")
    wait_for(lambda: hang.pids(), what="a git log to hang")
    since = int(time.time()) + 1
    wait_for(lambda: time.time() > since + 5, 10, "5 s of hang")
    wait_for(lambda: len(on_grid(state_dir, "tick", since, since + 4)) == 5, 10,
             "5 runs on the grid")
    assert len(hang.pids()) >= 3, "git log does not hang for each run"
    n = len(s.messages())
    wait_for(lambda: len(s.messages()) >= n + 3, 10, "mail about the runs meanwhile")
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 5
    wait_for(lambda: not any(alive(p) for p in hang.pids()), 5, "the hung git to be killed")


def test_a_stop_during_the_first_fetch_of_the_jobs_file_leaves_no_git(tmp_path, state_dir, hang):
    """--from-repo fetches before the loop runs: a SIGTERM then ends its git too."""
    repo, _ = make_repo(tmp_path, JOBS)
    hang.arm("clone")  # the first fetch makes the mirror
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        p = subprocess.Popen([eph_bin(), "daemon", "--from-repo", f"file://{repo}"],
                             stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for(lambda: hang.pids(), what="the first fetch to hang")
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert time.monotonic() - t0 < 5
    assert rc == 0, log_path.read_text()
    assert "stopped while fetching" in log_path.read_text()
    wait_for(lambda: not any(alive(p) for p in hang.pids()), 5, "the hung git to be killed")


def test_a_kill_9_while_a_runs_code_is_fetched_fires_it_again_at_the_restart(tmp_path, state_dir,
                                                                             daemons, hang):
    """The daemon is killed while a run's code is being fetched by its child: the run has its
    row only (no run directory). The next start withdraws it and fires it again, and it runs
    once; the orphaned child is no obstacle once it is gone."""
    url, _ = origin(tmp_path)
    out = tmp_path / "ran"
    jobs = write_jobs(tmp_path / "ephemeron.yaml", f"""\
        source:
          repo: {url}
          refresh: 0
        jobs:
          tick:
            schedule: "@every 2s"
            run: echo $EPH_RUN_ID >> {out}
            catchup: none
            starting_deadline: 1h
        """)
    d = daemons(jobs, state_dir)
    wait_for(lambda: any(r["state"] == "succeeded" for r in rows(state_dir)), what="a run")
    hang.arm("fetch")
    wait_for(lambda: hang.pids(), what="a run's fetch to hang")
    fetchers = [p for p in children(d.p.pid)
                if b"fetch" in open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")]
    preparing = rows(state_dir, "state = 'queued' AND run_dir IS NULL")
    assert len(preparing) == 1, rows(state_dir)  # forbid skips the fires meanwhile
    x = preparing[0]
    assert fetchers, "no eph fetch child"
    assert d.stop(signal.SIGKILL) != 0
    for pid in fetchers + hang.pids():  # what the killed daemon left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    hang.disarm()
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: any(r["scheduled_at"] == x["scheduled_at"] and r["state"] == "succeeded"
                         for r in rows(state_dir)), 20, "the fire to run again")
    assert d.stop() == 0
    again = rows(state_dir, "scheduled_at = ?", (x["scheduled_at"],))
    assert len(again) == 1, again
    assert again[0]["trigger"] == "schedule"
    assert out.read_text().split().count(str(again[0]["id"])) == 1
    assert "withdrawn: the scheduler stopped before the run was prepared; fired again" \
        in d.text()
