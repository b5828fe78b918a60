"""Restarting the daemon loses no retry: a retry pending when the daemon stops, and a run found
lost at the next start, are retried by the next start, once; a run that is owed no retry
gets its mail."""

import os
import signal
import subprocess
import time

from conftest import eph_bin, marker_pids, wait_for
from test_daemon import TERMINAL, daemons, rows, write_jobs  # noqa: F401 (a fixture)
from test_daemon_mail import jobs_yaml, outbox
from test_mail import smtpd  # noqa: F401 (a fixture)


def flaky(state_dir):
    return rows(state_dir, "job = 'flaky'")


def manual_run(jobs, state_dir):
    p = subprocess.run([eph_bin(), "-f", str(jobs), "run", "flaky"], capture_output=True,
                       text=True, env=dict(os.environ, EPH_STATE=str(state_dir)))
    assert p.returncode == 0, p.stderr


def test_a_retry_pending_at_stop_is_made_by_the_next_start(tmp_path, state_dir, daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          flaky:
            schedule: "@every 1h"
            run: exit 3
            retries: 1
            retry_backoff: 3s
        """)
    d = daemons(jobs, state_dir)
    manual_run(jobs, state_dir)
    wait_for(lambda: "retry 1 of 1 in 3s" in d.text(), what="the retry to be scheduled")
    assert d.stop() == 0
    assert "retry 1 pending: the next start schedules it" in d.text()
    assert len(flaky(state_dir)) == 1
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: len(flaky(state_dir)) == 2 and flaky(state_dir)[1]["state"] in TERMINAL,
             15, "the retry after the restart")
    time.sleep(1.0)  # and nothing more
    assert d.stop() == 0
    got = flaky(state_dir)
    assert [(r["attempt"], r["trigger"], r["state"]) for r in got] == [
        (1, "manual", "failed"), (2, "retry", "failed")]
    # its backoff counted from the failure, not from the restart
    assert got[1]["created_at"] - got[0]["ended_at"] >= 2.9

    # a third start owes nothing: no third attempt
    d = daemons(jobs, state_dir, "daemon3.log")
    time.sleep(1.0)
    assert d.stop() == 0
    assert len(flaky(state_dir)) == 2


def test_a_run_lost_while_the_daemon_was_down_is_retried(tmp_path, state_dir, daemons):
    marker = f"eph-lost-{os.getpid()}-{time.monotonic_ns()}"
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        jobs:
          flaky:
            schedule: "@every 1h"
            run: sleep 30
            retries: 1
            retry_backoff: 1s
            env:
              EPH_TEST_MARKER: "%s"
        """ % marker)
    d = daemons(jobs, state_dir)
    manual_run(jobs, state_dir)
    wait_for(lambda: flaky(state_dir) and flaky(state_dir)[0]["state"] == "running",
             what="the run to start")
    agent = flaky(state_dir)[0]["agent_pid"]
    # "running" is recorded when the agent starts; only a command that started makes a run
    # that dies lost (one that never started is run again at the restart: test_reconcile.py)
    wait_for(lambda: marker_pids(marker), what="the command to start")
    d.stop(signal.SIGKILL)
    os.kill(agent, signal.SIGKILL)  # the agent dies without a result: the run is lost
    for pid in marker_pids(marker):  # and its command with it
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{agent}"), what="the agent to be gone")
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: len(flaky(state_dir)) == 2, 15, "the retry of the lost run")
    assert "retry 1 of 1 in" in d.text()
    got = flaky(state_dir)
    assert [(r["attempt"], r["trigger"], r["state"]) for r in got[:1]] == [
        (1, "manual", "lost")]
    assert (got[1]["attempt"], got[1]["trigger"]) == (2, "retry")
    run_id = got[1]["id"]
    subprocess.run([eph_bin(), "cancel", str(run_id)], capture_output=True,
                   env=dict(os.environ, EPH_STATE=str(state_dir)))
    wait_for(lambda: flaky(state_dir)[1]["state"] in TERMINAL, what="the cancel")
    assert d.stop() == 0


def test_a_failure_whose_retry_succeeds_after_a_restart_sends_no_mail(tmp_path, state_dir,
                                                                      daemons, smtpd):
    s = smtpd().start()
    mark = tmp_path / "failed-once"
    jobs = write_jobs(tmp_path / "ephemeron.yaml", jobs_yaml(s.port, f"""\
          flaky:
            schedule: "@every 1h"
            run: test -e {mark} || {{ touch {mark}; exit 3; }}
            retries: 1
            retry_backoff: 3s
            notify: {{ on: [failure] }}
        """))
    d = daemons(jobs, state_dir)
    manual_run(jobs, state_dir)
    wait_for(lambda: "retry 1 of 1 in 3s" in d.text(), what="the retry to be scheduled")
    assert d.stop() == 0
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: len(flaky(state_dir)) == 2 and flaky(state_dir)[1]["state"] in TERMINAL,
             15, "the retry after the restart")
    assert [r["state"] for r in flaky(state_dir)] == ["failed", "succeeded"]
    time.sleep(1.5)  # time for a message, if one were queued
    assert d.stop() == 0
    assert s.messages() == []  # the failed attempt was retried: nothing to say
    assert outbox(state_dir) == []
