"""What a stopped or killed daemon leaves behind is settled exactly once, by whoever comes
first: a run whose command never started runs at the next start (or is skipped past its
starting_deadline), a run whose command may have run and whose agent is gone is lost, and a
run that finished while no daemon ran is shown (and recorded) as finished by eph runs, show
and status. An agent being started while the daemon comes back is never run twice: its
starter holds the run's lock (agent.lock) and hands it to the agent."""

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import eph_bin, marker_pids, run_eph, wait_for
from test_daemon import TERMINAL, daemons, rows, write_jobs  # noqa: F401 (a fixture)
from test_daemon_mail import jobs_yaml, outbox
from test_mail import smtpd  # noqa: F401 (a fixture)


def jobs_with_a_blocker(tmp_path, marker, deadline="1h", tick="@every 2s"):
    """max_parallel 1: while `blocker` runs, a fire of `tick` is prepared (row and spec.json)
    and waits for the slot; its agent is not started."""
    out = tmp_path / "ran"
    return out, write_jobs(tmp_path / "ephemeron.yaml", f"""\
        max_parallel: 1
        jobs:
          blocker:
            schedule: "@every 1h"
            run: sleep 60
            env:
              EPH_TEST_MARKER: "{marker}"
          tick:
            schedule: "{tick}"
            run: echo $EPH_RUN_ID >> {out}
            catchup: none
            starting_deadline: {deadline}
        """)


def kill_9_with_a_run_prepared(tmp_path, state_dir, daemons, deadline="1h", manual=False):
    """A daemon kill -9'd while a run of `tick` (a fire, or with MANUAL one asked for with eph
    run) is prepared and not started; its blocker's agent is killed too (its command had
    started). Returns (out file, jobs, waiting row, blocker row)."""
    marker = f"eph-rec-{os.getpid()}-{time.monotonic_ns()}"
    out, jobs = jobs_with_a_blocker(tmp_path, marker, deadline,
                                    "@every 1h" if manual else "@every 2s")
    d = daemons(jobs, state_dir)
    p = run_eph(["-f", jobs, "run", "blocker"])
    assert p.returncode == 0, p.stderr
    wait_for(lambda: any(r["state"] == "running" for r in rows(state_dir, "job = 'blocker'")),
             what="the blocker to run")
    # its command, not only its agent: a blocker whose command never started would be run
    # again at the restart rather than be lost
    wait_for(lambda: marker_pids(marker), what="the blocker's command to start")
    if manual:
        p = run_eph(["-f", jobs, "run", "tick"])
        assert p.returncode == 0, p.stderr
    wait_for(lambda: rows(state_dir, "job = 'tick' AND state = 'waiting'"), 15,
             "a fire of tick to wait for the slot")
    d.stop(signal.SIGKILL)
    waiting = rows(state_dir, "job = 'tick' AND state = 'waiting'")
    assert len(waiting) == 1, waiting
    waiting = waiting[0]
    assert os.path.exists(f"{waiting['run_dir']}/spec.json")
    assert not os.path.exists(f"{waiting['run_dir']}/agent.pid")  # prepared, not started
    blocker = rows(state_dir, "job = 'blocker'")[0]
    os.kill(blocker["agent_pid"], signal.SIGKILL)
    for pid in marker_pids(marker):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{blocker['agent_pid']}"),
             what="the blocker's agent to be gone")
    return out, jobs, waiting, blocker


def ran_ids(out):
    return out.read_text().split() if out.exists() else []


@pytest.mark.parametrize("left", ["waiting", "provisioning", "manual"])
def test_a_run_prepared_before_a_kill_9_runs_once_at_the_restart(tmp_path, state_dir, daemons,
                                                                  left):
    out, jobs, waiting, blocker = kill_9_with_a_run_prepared(tmp_path, state_dir, daemons,
                                                             manual=left == "manual")
    x = waiting["id"]
    if left == "provisioning":  # as a kill between preparing the run and admitting it leaves it
        con = sqlite3.connect(state_dir / "eph.db")
        con.execute("UPDATE runs SET state = 'provisioning' WHERE id = ?", (x,))
        con.commit()
        con.close()

    # no daemon: eph runs records the blocker (its command ran, its agent is gone) and leaves
    # the run that never started to the daemon
    p = run_eph(["runs", "--json", "--limit", "0"])
    assert p.returncode == 0, p.stderr
    shown = {r["id"]: r for r in json.loads(p.stdout)}
    assert shown[blocker["id"]]["state"] == "lost"
    assert "ended without writing a result" in shown[blocker["id"]]["reason"]
    assert shown[x]["state"] == ("waiting" if left == "manual" else left)

    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: rows(state_dir, "id = ?", (x,))[0]["state"] in TERMINAL, 20,
             "the prepared run to run")
    time.sleep(0.5)
    assert d.stop() == 0
    row = rows(state_dir, "id = ?", (x,))[0]
    trigger = "manual" if left == "manual" else "schedule"
    assert (row["state"], row["trigger"], row["attempt"]) == ("succeeded", trigger, 1), row
    assert row["started_at"] >= row["scheduled_at"]
    assert ran_ids(out).count(str(x)) == 1
    assert f"run {x} tick prepared before the scheduler stopped, its command never started: " \
        "it runs now" in d.text()
    # the restart did not record the blocker again, and lost nothing else
    assert f"run {blocker['id']} " not in d.text()
    assert [r["id"] for r in rows(state_dir, "state = 'lost'")] == [blocker["id"]]


def test_a_run_prepared_before_a_kill_9_is_skipped_past_its_starting_deadline(
        tmp_path, state_dir, daemons):
    out, jobs, waiting, blocker = kill_9_with_a_run_prepared(tmp_path, state_dir, daemons, "1s")
    x = waiting["id"]
    wait_for(lambda: time.time() - waiting["scheduled_at"] > 1.5, what="the deadline to pass")
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: rows(state_dir, "id = ?", (x,))[0]["state"] in TERMINAL, 20,
             "the prepared run to be settled")
    assert d.stop() == 0
    row = rows(state_dir, "id = ?", (x,))[0]
    assert row["state"] == "skipped", row
    assert "more than starting_deadline (1.0s) past" in row["reason"]
    assert str(x) not in ran_ids(out)
    assert rows(state_dir, "id = ?", (blocker["id"],))[0]["state"] == "lost"


def test_an_agent_being_started_as_the_daemon_comes_back_runs_once(tmp_path, state_dir,
                                                                   daemons):
    out, jobs, waiting, _ = kill_9_with_a_run_prepared(tmp_path, state_dir, daemons)
    x, rundir = waiting["id"], waiting["run_dir"]
    # a starter (the killed daemon, in real life) took the run's lock and is about to start
    # its agent when the next daemon starts
    lock = os.open(f"{rundir}/agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: f"run {x} tick re-attached (its agent is starting)" in d.text(),
             what="the daemon to leave the run to its agent")
    # the agent starts with the lock handed over, as fd 3; the starter lets go of its copy
    agent = subprocess.Popen([eph_bin(), "agent", rundir], preexec_fn=lambda: os.dup2(lock, 3),
                             close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(lock)
    assert agent.wait(30) == 0, agent.stderr.read()
    wait_for(lambda: rows(state_dir, "id = ?", (x,))[0]["state"] in TERMINAL, 20,
             "the daemon to record the run")
    assert d.stop() == 0
    assert rows(state_dir, "id = ?", (x,))[0]["state"] == "succeeded"
    assert ran_ids(out).count(str(x)) == 1
    assert "its command never started" not in d.text()

    # an agent started again for a run whose command already ran does nothing
    before = open(f"{rundir}/output.log").read()
    p = subprocess.run([eph_bin(), "agent", rundir], capture_output=True, text=True)
    assert p.returncode == 2
    assert "the run's command has already started: nothing to do" in p.stderr
    assert open(f"{rundir}/output.log").read() == before
    assert ran_ids(out).count(str(x)) == 1


def test_a_run_that_finished_after_the_daemon_stopped_is_shown_finished(tmp_path, state_dir,
                                                                       daemons):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", f"""\
        jobs:
          slow:
            schedule: "@every 1h"
            run: while [ ! -e {tmp_path}/go-$EPH_RUN_ID ]; do sleep 0.05; done; echo done
        """)
    d = daemons(jobs, state_dir)
    for _ in range(2):
        assert run_eph(["-f", jobs, "run", "slow"]).returncode == 0
    wait_for(lambda: [r["state"] for r in rows(state_dir)] == ["running", "running"],
             what="both runs to start")
    assert d.stop() == 0  # their agents go on
    a, b = rows(state_dir)

    def state_shown(args, run):
        p = run_eph(args)
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        if isinstance(got, list):  # eph runs
            return {r["id"]: r["state"] for r in got}[run["id"]]
        if "jobs" in got:  # eph status: the last terminal run of the job
            last = got["jobs"][0]["last"]
            return last["state"] if last and last["run"] == run["id"] else None
        return got["state"]  # eph show

    assert state_shown(["runs", "--json"], a) == "running"  # it is: nothing to record
    (tmp_path / f"go-{a['id']}").touch()
    wait_for(lambda: os.path.exists(f"{a['run_dir']}/result.json"), what="run A to end")
    # no daemon: each command shows it finished (the first records it)
    assert state_shown(["runs", "--json"], a) == "succeeded"
    assert state_shown(["show", str(a["id"]), "--json"], a) == "succeeded"
    assert state_shown(["-f", jobs, "status", "--json"], a) == "succeeded"
    assert state_shown(["runs", "--json"], b) == "running"
    row = rows(state_dir, "id = ?", (a["id"],))[0]
    assert row["exit_code"] == 0 and row["ended_at"] > row["started_at"] > 0, row

    # three commands at once, and a daemon starting meanwhile: B is recorded once, by the
    # first of them
    (tmp_path / f"go-{b['id']}").touch()
    wait_for(lambda: os.path.exists(f"{b['run_dir']}/result.json"), what="run B to end")
    cmds = [subprocess.Popen([eph_bin(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for args in (["runs", "--json"], ["show", str(b["id"]), "--json"],
                         ["-f", str(jobs), "status", "--json"])]
    d = daemons(jobs, state_dir, "daemon2.log")
    outs = [c.communicate(timeout=30) for c in cmds]
    assert [c.returncode for c in cmds] == [0, 0, 0], outs
    assert d.stop() == 0
    assert d.text().count(f"run {b['id']} slow succeeded") <= 1
    assert f"run {a['id']} " not in d.text()  # recorded before: nothing to do
    assert [r["state"] for r in rows(state_dir)] == ["succeeded", "succeeded"]


def test_a_run_recorded_without_a_daemon_gets_its_mail_at_the_next_start(tmp_path, state_dir,
                                                                        daemons, smtpd):
    s = smtpd().start()
    go = tmp_path / "go"
    jobs = write_jobs(tmp_path / "ephemeron.yaml", jobs_yaml(s.port, f"""\
          slow:
            schedule: "@every 1h"
            run: while [ ! -e {go} ]; do sleep 0.05; done; echo done
            notify: {{ on: [success] }}
        """))
    d = daemons(jobs, state_dir)
    assert run_eph(["-f", jobs, "run", "slow"]).returncode == 0
    wait_for(lambda: rows(state_dir) and rows(state_dir)[0]["state"] == "running",
             what="the run to start")
    assert d.stop() == 0
    run = rows(state_dir)[0]
    go.touch()
    wait_for(lambda: os.path.exists(f"{run['run_dir']}/result.json"), what="the run to end")
    p = run_eph(["runs", "--json"])  # records it: its mail is the daemon's to decide
    assert json.loads(p.stdout)[0]["state"] == "succeeded"
    assert outbox(state_dir) == []
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: len(s.messages()) == 1, 20, "the run's mail")
    assert "slow: succeeded" in s.messages()[0]["Subject"]
    assert d.stop() == 0
    d = daemons(jobs, state_dir, "daemon3.log")  # decided once: not again
    time.sleep(1.0)
    assert d.stop() == 0
    assert len(outbox(state_dir)) == 1 and len(s.messages()) == 1


def test_a_run_never_prepared_is_fired_again_or_skipped_past_its_deadline(tmp_path, state_dir,
                                                                          daemons):
    out = tmp_path / "ran"
    jobs = write_jobs(tmp_path / "ephemeron.yaml", f"""\
        jobs:
          tick:
            schedule: "@every 1h"
            run: echo $EPH_RUN_ID >> {out}
            catchup: none
            starting_deadline: 1h
        """)
    assert daemons(jobs, state_dir).stop() == 0  # the store, as the daemon makes it
    # the rows of two fires that a killed daemon was creating (fetching their code): no
    # run directory yet; one an instant ago, one 2 h ago
    now = time.time()
    recent, old = int(now) - 1, int(now) - 7200
    con = sqlite3.connect(state_dir / "eph.db")
    for at in (old, recent):
        con.execute("INSERT INTO runs (job, trigger, scheduled_at, state, executor, created_at)"
                    " VALUES ('tick', 'schedule', ?, 'queued', 'local', ?)", (at, at + 0.01))
    con.commit()
    con.close()
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: all(r["state"] in TERMINAL for r in rows(state_dir)) and
             any(r["scheduled_at"] == recent and r["state"] == "succeeded"
                 for r in rows(state_dir)), 20, "the fires to be settled")
    assert d.stop() == 0
    got = {r["scheduled_at"]: r for r in rows(state_dir)}
    assert len(rows(state_dir)) == 2
    assert got[old]["state"] == "skipped"
    assert "more than starting_deadline (1h" in got[old]["reason"]
    assert (got[recent]["state"], got[recent]["trigger"]) == ("succeeded", "schedule")
    assert ran_ids(out) == [str(got[recent]["id"])]
    assert "withdrawn: the scheduler stopped before the run was prepared; fired again" \
        in d.text()
