"""The daemon around its executor: a run is recorded for what happened to it, and always
releases its admission. A start that fails is `failed` (nothing ran), not `lost`; a run whose
directory cannot be watched is followed by the tick; a graceful stop records nothing for runs
whose command never ran (the next start runs them, as after a kill -9)."""

import os
import signal
import time

from conftest import marker_pids, run_eph, wait_for
from test_daemon import TERMINAL, daemons, rows, write_jobs  # noqa: F401 (a fixture)
from test_reconcile import jobs_with_a_blocker, ran_ids


def test_a_run_whose_agent_cannot_start_is_failed_not_lost(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          once:
            schedule: "@every 1h"
            run: echo ran
        """)
    # the next run's agent.log is a directory: its agent cannot be started (EISDIR)
    (state_dir / "runs" / "1" / "agent.log").mkdir(parents=True)
    d = daemons(jobs, state_dir)
    p = run_eph(["-f", jobs, "run", "once"])
    assert p.returncode == 0, p.stderr
    wait_for(lambda: rows(state_dir, "id = 1") and rows(state_dir, "id = 1")[0]["state"]
             in TERMINAL, what="the run to end")
    row = rows(state_dir, "id = 1")[0]
    assert row["state"] == "failed", row
    assert row["reason"].startswith("could not start the agent: "), row
    assert "cannot start" in d.text()
    assert d.stop() == 0


def test_a_run_whose_directory_cannot_be_watched_is_followed_and_releases_its_slot(
        tmp_path, state_dir, daemons):
    """A daemon restarted while a run's directory is gone (inotify refuses it): the run is
    followed by the tick, recorded when its agent ends, and its slot (max_parallel 1) goes to
    the next run."""
    marker = f"eph-watch-{os.getpid()}-{time.monotonic_ns()}"
    out, jobs = jobs_with_a_blocker(tmp_path, marker)
    d = daemons(jobs, state_dir)
    p = run_eph(["-f", jobs, "run", "blocker"])
    assert p.returncode == 0, p.stderr
    wait_for(lambda: marker_pids(marker), what="the blocker's command to start")
    d.stop(signal.SIGKILL)
    blocker = rows(state_dir, "job = 'blocker'")[0]
    os.rename(blocker["run_dir"], tmp_path / "moved")
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: f"run {blocker['id']} blocker re-attached" in d.text(),
             what="the blocker to be re-attached")
    os.kill(blocker["agent_pid"], signal.SIGKILL)
    for pid in marker_pids(marker):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: rows(state_dir, "id = ?", (blocker["id"],))[0]["state"] == "lost", 15,
             "the blocker to be recorded lost")
    wait_for(lambda: rows(state_dir, "job = 'tick' AND state = 'succeeded'"), 20,
             "a run of tick to get the slot")
    assert d.stop() == 0


def test_a_graceful_stop_leaves_a_waiting_run_to_the_next_start(tmp_path, state_dir, daemons):
    marker = f"eph-stop-{os.getpid()}-{time.monotonic_ns()}"
    out, jobs = jobs_with_a_blocker(tmp_path, marker)
    d = daemons(jobs, state_dir)
    p = run_eph(["-f", jobs, "run", "blocker"])
    assert p.returncode == 0, p.stderr
    wait_for(lambda: marker_pids(marker), what="the blocker's command to start")
    wait_for(lambda: rows(state_dir, "job = 'tick' AND state = 'waiting'"), 15,
             "a fire of tick to wait for the slot")
    assert d.stop(signal.SIGTERM) == 0
    # its command never ran: not lost, left as it was
    assert not rows(state_dir, "state = 'lost'"), rows(state_dir)
    waiting = rows(state_dir, "job = 'tick' AND state = 'waiting'")
    assert len(waiting) == 1, rows(state_dir)
    x = waiting[0]["id"]
    blocker = rows(state_dir, "job = 'blocker'")[0]
    os.kill(blocker["agent_pid"], signal.SIGKILL)
    for pid in marker_pids(marker):
        os.kill(pid, signal.SIGKILL)
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: rows(state_dir, "id = ?", (x,))[0]["state"] in TERMINAL, 20,
             "the waiting run to run at the next start")
    assert d.stop() == 0
    assert rows(state_dir, "id = ?", (x,))[0]["state"] == "succeeded"
    assert ran_ids(out).count(str(x)) == 1
