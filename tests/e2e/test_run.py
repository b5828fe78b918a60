"""`eph run JOB` in the foreground, end to end: a real jobs file, real processes under a real
memory limit, the store, and what `eph runs`, `show` and `logs` then say about the run."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import agent_gone, eph_bin, marker_pids, run_eph, store_rows, wait_for

PY = "/usr/bin/python3"
HOG = """\
import sys
mib = int(sys.argv[1])
b = bytearray(mib << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
print("held", mib)
"""
SLEEPER = """\
import time
print("sleeping", flush=True)
time.sleep(4)
print("woke")
"""

JOBS = textwrap.dedent(f"""\
    defaults:
      timeout: 2m
    jobs:
      hello:
        schedule: "@hourly"
        run: echo "hello from $EPH_JOB run $EPH_RUN_ID attempt $EPH_ATTEMPT in $(pwd)"; echo oops >&2
      fails:
        schedule: "@hourly"
        run: echo bye; exit 3
      hog-small:
        schedule: "@hourly"
        command: [{PY}, hog.py, "300"]
        memory: 200MiB
      hog-big:
        schedule: "@hourly"
        command: [{PY}, hog.py, "300"]
        memory: 1GiB
      sleeper:
        schedule: "@hourly"
        command: [{PY}, sleeper.py]
      forever:
        schedule: "@hourly"
        run: echo started; exec sleep 600
        env:
          MARKER: eph-e2e-forever
      in-sub:
        schedule: "@hourly"
        run: pwd; echo "$GREETING"
        workdir: sub
        env:
          GREETING: "hi there"
    """)


@pytest.fixture
def jobs(tmp_path, state_dir):
    (tmp_path / "sub").mkdir()
    (tmp_path / "hog.py").write_text(HOG)
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    f = tmp_path / "ephemeron.yaml"
    f.write_text(JOBS)
    return f


def db_rows(state_dir):
    return store_rows(state_dir, "runs")


def test_success_prints_output_and_summary(run, jobs, state_dir, tmp_path):
    p = run(["-f", jobs, "run", "hello"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"hello from hello run 1 attempt 1 in {tmp_path}\n"
    lines = p.stderr.splitlines()
    assert lines[0] == "oops"
    assert lines[1].startswith("hello: succeeded after ")
    assert lines[1].endswith("run 1")
    (row,) = db_rows(state_dir)
    assert row["state"] == "succeeded" and row["exit_code"] == 0 and row["trigger"] == "manual"
    assert row["run_dir"] == f"{state_dir}/runs/1"
    assert os.path.exists(f"{state_dir}/runs/1/result.json")


def test_failure_exits_1_with_the_exit_code(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "fails"])
    assert p.returncode == 1
    assert p.stdout == "bye\n"
    assert "fails: failed after" in p.stderr and "(exit 3)" in p.stderr
    (row,) = db_rows(state_dir)
    assert (row["state"], row["exit_code"]) == ("failed", 3)


def test_oom_under_the_limit(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "hog-small"])
    assert p.returncode == 1
    assert "hog-small: oom after" in p.stderr
    assert "of 200 MiB limit" in p.stderr
    (row,) = db_rows(state_dir)
    assert row["state"] == "oom"
    assert row["memory_limit"] == 200 << 20
    assert row["peak_bytes"] <= 200 << 20


def test_enough_memory_succeeds_and_measures_the_peak(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "hog-big"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "held 300\n"
    (row,) = db_rows(state_dir)
    assert row["state"] == "succeeded"
    assert 300 << 20 <= row["peak_bytes"] <= 400 << 20, row["peak_bytes"]
    s = run(["show", "1", "--json"])
    assert s.returncode == 0, s.stderr
    shown = json.loads(s.stdout)
    assert shown["state"] == "succeeded"
    assert shown["peak_bytes"] == row["peak_bytes"]


def test_workdir_and_env(run, jobs, state_dir, tmp_path):
    p = run(["-f", jobs, "run", "in-sub"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{tmp_path}/sub\nhi there\n"


def test_runs_show_logs_on_real_runs(run, jobs, state_dir):
    assert run(["-f", jobs, "run", "sleeper"]).returncode == 0
    assert run(["-f", jobs, "run", "fails"]).returncode == 1
    r = run(["runs"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "JOB", "TRIGGER"]
    assert lines[1].split()[:2] == ["2", "fails"] and "failed" in lines[1]
    assert lines[2].split()[:2] == ["1", "sleeper"] and "succeeded" in lines[2]
    s = run(["show", "sleeper"])
    assert s.returncode == 0, s.stderr
    assert "run 1: sleeper" in s.stdout
    assert "memory over time" in s.stdout
    raw = run(["logs", "1", "--raw"])
    assert raw.stdout == "sleeping\nwoke\n"
    log = run(["logs", "fails"])
    assert log.stdout.endswith(" out bye\n")


def start_run(jobs, job):
    return subprocess.Popen([eph_bin(), "-f", str(jobs), "run", job], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.timing  # races a signal with the run's progress
def test_ctrl_c_cancels_and_records_cancelled(jobs, state_dir):
    p = start_run(jobs, "forever")
    wait_for(lambda: os.path.exists(f"{state_dir}/runs/1/output.log")
             and b"started" in open(f"{state_dir}/runs/1/output.log", "rb").read(),
             what="the run to start")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, err
    assert "forever: cancelled after" in err
    (row,) = db_rows(state_dir)
    assert row["state"] == "cancelled"
    assert marker_pids("eph-e2e-forever") == []


@pytest.mark.timing  # races a signal with the run's progress
def test_kill_9_of_eph_run_does_not_stop_the_run(run, jobs, state_dir):
    p = start_run(jobs, "sleeper")
    wait_for(lambda: os.path.exists(f"{state_dir}/runs/1/output.log")
             and b"sleeping" in open(f"{state_dir}/runs/1/output.log", "rb").read(),
             what="the run to start")
    p.kill()
    p.wait()
    assert db_rows(state_dir)[0]["state"] == "running"
    # the next writer records what the killed one could not, once its agent has ended: a
    # live agent is followed, not recorded (docs/daemon.md "Restart safety"), and it is still
    # alive for a moment after it wrote result.json
    wait_for(lambda: os.path.exists(f"{state_dir}/runs/1/result.json")
             and agent_gone(f"{state_dir}/runs/1"), what="the agent to end")
    assert run(["-f", jobs, "run", "hello"]).returncode == 0
    first = db_rows(state_dir)[0]
    assert first["state"] == "succeeded"
    assert first["ended_at"] > first["started_at"]
    assert run(["logs", "1", "--raw"]).stdout == "sleeping\nwoke\n"


def test_run_json_and_bad_usage(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "fails", "--json"])
    assert p.returncode == 1
    o = json.loads(p.stdout)
    assert o["state"] == "failed" and o["exit_code"] == 3 and o["job"] == "fails"
    assert run(["-f", jobs, "run", "nope"]).returncode == 2
    assert run(["-f", jobs, "run"]).returncode == 2
    assert run(["-f", jobs, "run", "a", "b"]).returncode == 2


def test_a_store_being_created_reads_as_no_runs_yet(run, state_dir):
    # the first eph that records a run creates eph.db, then its schema in a transaction of
    # its own: a reader in between finds a database of schema version 0, with nothing in it
    sqlite3.connect(f"{state_dir}/eph.db").close()
    assert (state_dir / "eph.db").exists()
    p = run(["runs"])
    assert (p.returncode, p.stdout, p.stderr) == (0, "no runs yet\n", "")
    p = run(["runs", "--json"])
    assert (p.returncode, json.loads(p.stdout)) == (0, [])


@pytest.mark.timing  # races a signal with the run's progress
def test_ctrl_c_while_the_code_is_fetched_cancels_the_run(tmp_path, state_dir):
    """The run's row exists while its code is fetched: a Ctrl-C then must not leave it queued
    forever (the git here is a wrapper that takes 2 s to clone)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    (work / "job.sh").write_text("sleep 30\n")
    subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "one"], cwd=work, check=True, env=env)
    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True,
                              check=True).stdout.strip()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "git").write_text(
        f'#!/bin/sh\ncase "$1" in clone) sleep 2;; esac\nexec {real_git} "$@"\n')
    (bindir / "git").chmod(0o755)
    jobs = tmp_path / "ephemeron.yaml"
    jobs.write_text(textwrap.dedent(f"""\
        source:
          repo: file://{work}
          branch: main
        jobs:
          slow-code:
            schedule: "@hourly"
            run: sh job.sh
        """))
    p = subprocess.Popen([eph_bin(), "-f", str(jobs), "run", "slow-code"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    wait_for(lambda: db_rows(state_dir), what="the run's row")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    (row,) = db_rows(state_dir)
    assert row["state"] == "cancelled", (row, err)


def test_a_relative_state_dir_is_taken_from_the_current_directory(tmp_path, jobs):
    """EPH_STATE=st: the run directory the agent gets, and spec.json's state_dir, are
    absolute (the agent refuses a relative RUN_DIR)."""
    p = run_eph(["-f", jobs, "run", "hello"], cwd=tmp_path, env={"EPH_STATE": "st"})
    assert p.returncode == 0, p.stderr
    assert "hello from hello run 1" in p.stdout
    spec = json.loads((tmp_path / "st" / "runs" / "1" / "spec.json").read_text())
    assert spec["state_dir"] == str(tmp_path / "st")
    p = run_eph(["runs"], cwd=tmp_path, env={"EPH_STATE": "st"})
    assert p.returncode == 0 and "succeeded" in p.stdout
