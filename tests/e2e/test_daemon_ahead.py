"""Runs started ahead of their instant (docs/daemon.md "Fires"): the daemon starts a fire's
agent before its instant when the outcome there is certain; the agent prepares everything and
holds the command until spec.json's not_before. The command must never start early, the
recorded start and the timeout count from the end of that wait, and a cancel during the wait
ends the run with no command run."""

import datetime
import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from conftest import SANITIZER_EXIT, wait_for
from test_agent import AGENT, cgroup_parents, mirror  # noqa: F401 (a fixture)
from test_daemon import daemons  # noqa: F401 (a fixture)

# every test here runs real schedules against the clock: scripts/check runs them again with
# both cores busy (conftest.py)
pytestmark = pytest.mark.timing

_run_ids = iter(range(900000 + os.getpid() % 1000 * 100, 10**9))
_made = []


@pytest.fixture(autouse=True)
def no_cgroup_left():
    _made.clear()
    yield
    left = [os.path.join(p, d) for p in cgroup_parents() if os.path.isdir(p)
            for d in os.listdir(p) if any(d.startswith(f"run-{i}-") for i in _made)]
    assert left == [], "cgroups left behind"


def make_run(tmp_path, **spec):
    d = tmp_path / "run"
    d.mkdir()
    s = {"version": 1, "run_id": next(_run_ids), "job": "t", "attempt": 1,
         "scheduled_at": int(time.time()), "argv": None, "shell": None, "env": {},
         "cwd": str(tmp_path), "memory": 64 << 20, "timeout": 0, "kill_grace": 1,
         "commit": None, "enforce": "auto"}
    s.update(spec)
    _made.append(s["run_id"])
    (d / "spec.json").write_text(json.dumps(s))
    return d


def events(d):
    p = d / "events.jsonl"
    return [json.loads(l) for l in p.read_text().splitlines()] if p.exists() else []


def agent_done(p):
    assert p.returncode not in SANITIZER_EXIT, p.stderr.read().decode()


def test_the_command_waits_for_not_before_and_its_timeout_counts_from_then(tmp_path):
    # not_before 2.5 s away, a 2 s timeout, a command of 0.5 s: had the timeout counted from
    # the agent's start it would have expired during the wait
    nb = time.time() + 2.5
    d = make_run(tmp_path, not_before=nb, timeout=2,
                 shell='date +%s.%N; sleep 0.5; echo done')
    p = subprocess.Popen([*AGENT, str(d)], stderr=subprocess.PIPE)
    assert p.wait(timeout=60) == 0
    agent_done(p)
    res = json.loads((d / "result.json").read_text())
    assert res["outcome"] == "succeeded", res
    out = [l.split(" ", 2) for l in (d / "output.log").read_text().splitlines()]
    started = float(out[0][2])
    assert started >= nb
    assert out[-1][2] == "done"
    evs = events(d)
    wait = [e for e in evs if e["ev"] == "wait"]
    assert len(wait) == 1 and wait[0]["until"] == pytest.approx(nb, abs=1e-3)
    assert wait[0]["t"] < nb
    ex = next(e for e in evs if e["ev"] == "phase" and e["phase"] == "exec"
              and e["state"] == "start")
    # the exec phase (and the run's recorded start) begin when the wait ended, not at fork
    assert ex["t"] >= round(nb, 3) - 0.001 and ex["waited"] > 0
    assert res["started_at"] == ex["t"]
    assert res["started_at"] <= started
    assert res["phases"]["exec"] < 2


def test_a_not_before_in_the_past_does_not_wait(tmp_path):
    d = make_run(tmp_path, not_before=time.time() - 60, argv=["true"])
    p = subprocess.Popen([*AGENT, str(d)], stderr=subprocess.PIPE)
    assert p.wait(timeout=60) == 0
    agent_done(p)
    evs = events(d)
    assert not [e for e in evs if e["ev"] == "wait"]
    ex = next(e for e in evs if e["ev"] == "phase" and e["phase"] == "exec"
              and e["state"] == "start")
    assert ex["waited"] == 0


def test_a_preparation_that_ends_past_not_before_starts_the_run_at_its_command(tmp_path,
                                                                             mirror):
    # The agent starts before not_before, but its source phase (held here with the
    # worktree's build lock) ends after it: there is nothing left to wait for, and the run's
    # started_at is still when its command started, never the agent's own (earlier) start.
    import fcntl
    m, commit = mirror
    state = tmp_path / "state"
    (state / "src").mkdir(parents=True)
    nb = time.time() + 1.0
    d = make_run(tmp_path, not_before=nb, shell="date +%s.%N", cwd=None,
                 state_dir=str(state), scheduled_at=int(nb),
                 source={"mirror": str(m), "commit": commit, "repo": "file:///x",
                         "branch": "main"})
    with open(state / "src" / f"{commit}.build", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = subprocess.Popen([*AGENT, str(d)], stderr=subprocess.PIPE)
        wait_for(lambda: any(e["ev"] == "phase" and e["phase"] == "source" for e in events(d)),
                 what="the source phase to start")
        wait_for(lambda: time.time() > nb + 0.05, what="not_before to pass")
    assert p.wait(timeout=60) == 0
    agent_done(p)
    res = json.loads((d / "result.json").read_text())
    assert res["outcome"] == "succeeded", res
    evs = events(d)
    assert not [e for e in evs if e["ev"] == "wait"]
    ex = next(e for e in evs if e["ev"] == "phase" and e["phase"] == "exec"
              and e["state"] == "start")
    assert ex["waited"] == 0
    assert res["started_at"] == ex["t"] >= nb, (res, evs)
    assert res["wall_seconds"] == pytest.approx(res["ended_at"] - res["started_at"], abs=2e-3)
    started = float((d / "output.log").read_text().split(" ", 2)[2])
    assert res["started_at"] <= started


def test_a_cancel_during_the_wait_ends_the_run_with_no_command_run(tmp_path):
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    d = make_run(tmp_path, not_before=time.time() + 60, argv=["touch", str(marker)])
    p = subprocess.Popen([*AGENT, str(d)], stderr=subprocess.PIPE)
    wait_for(lambda: any(e["ev"] == "wait" for e in events(d)), what="the agent to wait")
    p.send_signal(signal.SIGTERM)
    # well before not_before: the wait ended with the cancel
    assert p.wait(timeout=30) == 1
    agent_done(p)
    res = json.loads((d / "result.json").read_text())
    assert res["outcome"] == "cancelled", res
    assert "waited for its instant" in res["reason"]
    assert "exec" not in res["phases"]
    assert not marker.exists()
    assert not [e for e in events(d) if e["ev"] == "phase" and e["phase"] == "exec"]
    assert res["enforced"] is None


def test_scheduled_commands_never_start_before_their_instant(tmp_path, state_dir, daemons, run):
    jobs = tmp_path / "ephemeron.yaml"
    jobs.write_text('jobs:\n  tick:\n    schedule: "@every 1s"\n'
                    '    command: ["date", "+%s.%N"]\n    memory: 32MiB\n')
    d = daemons(jobs, state_dir)

    def done():
        p = run(["runs", "tick", "--json", "--limit", "100"])
        return len([r for r in json.loads(p.stdout) if r["state"] == "succeeded"]) >= 6

    wait_for(done, timeout=40, what="six runs")
    assert d.stop() == 0
    wait_for(lambda: all(r["state"] not in ("running", "provisioning", "queued", "waiting")
                         for r in json.loads(run(["runs", "tick", "--json"]).stdout)),
             what="every run to end")
    p = run(["runs", "tick", "--json", "--limit", "100"])
    assert p.returncode == 0, p.stderr
    runs = [r for r in json.loads(p.stdout) if r["trigger"] == "schedule"]
    assert len(runs) >= 6
    ahead = 0
    for r in runs:
        if r["state"] == "skipped":  # a previous run outlived a second (a loaded machine)
            continue
        assert r["state"] == "succeeded", r
        with open(r["log_path"]) as f:
            started = float(f.readline().split()[2])
        # the command's own clock: never before its instant
        assert started >= r["scheduled_at"], r
        assert r["started_at"] >= r["scheduled_at"], r
        with open(os.path.join(r["run_dir"], "events.jsonl")) as f:
            evs = [json.loads(l) for l in f]
        # started ahead, it waited for the instant, unless it was ready only after it (an
        # agent started 12 ms before its instant on a loaded machine)
        if any(e["ev"] == "wait" for e in evs):
            ahead += 1
            assert next(e for e in evs if e["ev"] == "start")["t"] < r["scheduled_at"], evs
    # the path under test was taken: agents started before their instant, and waited
    assert ahead >= 1, runs
    assert "ahead: the command waits for its instant" in d.text()


def held_ahead(runs_dir, seen, margin):
    """The id of a run of RUNS_DIR whose agent holds its command with more than MARGIN seconds
    left before the instant (its "wait" event's `until`), or None. Runs looked at are added to
    SEEN, so that one that started to wait too close to its instant is passed over."""
    try:
        names = os.listdir(runs_dir)
    except FileNotFoundError:
        return None
    for rid in names:
        if rid in seen:
            continue
        try:
            with open(os.path.join(runs_dir, rid, "events.jsonl")) as f:
                evs = [json.loads(ln) for ln in f if ln.endswith("\n")]
        except FileNotFoundError:
            continue
        if any(e["ev"] == "phase" for e in evs):
            seen.add(rid)  # it ran (or was not started ahead)
            continue
        wait = [e for e in evs if e["ev"] == "wait"]
        if not wait:
            continue  # still preparing
        seen.add(rid)
        if wait[0]["until"] - time.time() > margin:
            return rid
    return None


def test_a_stop_before_the_instant_withdraws_a_run_started_ahead(tmp_path, state_dir, daemons,
                                                                 run):
    # The daemon is stopped while a run's agent waits for its instant (its agent starts
    # 150 ms ahead; on a loaded machine it may have little of that left once prepared): the
    # run is withdrawn as a prepared one is, and its command never runs. The test watches the
    # run directories and stops the daemon as soon as an agent holds its command with enough
    # time left for the daemon to see it (passing over the instants where it has not); the
    # stop still races the instant, so a stop that came too late (the run left to its agent,
    # which the next start collects) is tried again with another daemon.
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = tmp_path / "ephemeron.yaml"
    jobs.write_text('jobs:\n  tick:\n    schedule: "@every 1s"\n'
                    f'    run: touch {marks}/$EPH_RUN_ID\n    memory: 32MiB\n')
    runs_dir = state_dir / "runs"
    seen = set()
    for attempt in range(5):
        d = daemons(jobs, state_dir, f"daemon{attempt}.log")
        end = time.monotonic() + 20
        rid = None
        while rid is None and time.monotonic() < end:
            rid = held_ahead(runs_dir, seen, 0.03)
            if rid is None:
                time.sleep(0.002)
        assert rid is not None, "no agent held its command 30 ms before its instant in 20 s"
        d.stop()
        if f"run {rid} tick withdrawn" in d.text():
            break
    else:
        pytest.fail("never stopped in time to withdraw a run started ahead")
    assert "ahead: the command waits for its instant" in d.text()
    time.sleep(1.5)
    assert not (marks / rid).exists()
    assert not (state_dir / "runs" / rid).exists()
    p = run(["runs", "tick", "--json", "--limit", "1000"])
    got = json.loads(p.stdout)
    assert all(str(r["id"]) != rid for r in got)
    # nothing is left running without a daemon
    assert all(r["state"] in ("succeeded", "cancelled") for r in got), got


def test_a_stop_while_a_run_started_ahead_prepares_leaves_it_to_its_agent(tmp_path, state_dir,
                                                                         daemons, run):
    # The agent of a run started ahead is still preparing when the daemon stops: it is not
    # cancelled (its fire would be lost), it runs the command once it is ready, and the next
    # start records the run. The preparation is held with the worktree's build lock.
    import fcntl
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "hello.sh").write_text("echo hello from the commit\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    (state_dir / "src").mkdir()
    lock = open(state_dir / "src" / f"{commit}.build", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    jobs = tmp_path / "ephemeron.yaml"
    jobs.write_text(f'source:\n  repo: {repo}\njobs:\n  held:\n    schedule: "@every 1h"\n'
                    '    run: sh hello.sh\n    memory: 32MiB\n  tick:\n    schedule: "@every 2s"\n'
                    '    run: sh hello.sh\n    memory: 32MiB\n    concurrency: allow\n')
    # A run is started ahead only when the daemon prepared it before its instant (on a loaded
    # machine preparing may take longer than the 150 ms it has): then it starts at its instant
    # and its agent waits for the lock like the others. `allow` lets the next fire be started
    # ahead all the same, whatever runs.
    try:
        d = daemons(jobs, state_dir)
        end = time.monotonic() + 30
        while not (m := re.search(r"run (\d+) tick started \(.*; ahead:", d.text())):
            assert time.monotonic() < end, "no run started ahead"
            time.sleep(0.002)  # stop the daemon as early as we can, before the instant
        rid = m.group(1)
        assert d.stop() == 0
        log = d.text()
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    d = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: json.loads(run(["show", rid, "--json"]).stdout)["state"] == "succeeded",
             20, "the run left to its agent to be recorded")
    got = json.loads(run(["show", rid, "--json"]).stdout)
    assert got["commit"] == commit
    assert got["started_at"] >= got["scheduled_at"], got
    assert d.stop() == 0
    # never withdrawn, whenever the stop came; said so when it came before the instant (on a
    # loaded machine the stop may come after it: then the run is like any running one)
    assert f"run {rid} tick withdrawn" not in log
    stopping = re.search(r"^(\S+) info stopping \(SIGTERM\)", log, re.M).group(1)
    stopped_at = datetime.datetime.fromisoformat(stopping.replace("Z", "+00:00")).timestamp()
    if stopped_at < got["scheduled_at"] - 0.05:
        assert f"run {rid} tick started ahead, still preparing: left to its agent" in log
