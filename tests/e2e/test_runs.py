"""End-to-end tests of `eph runs`, `eph show` and `eph logs` against a real store.

No command records runs yet, so the fixtures build the store the way eph does: a database
with the schema of src/store/schema.sql at the version the binary knows, in WAL mode, and
run directories with the files of docs/rundir.md. Once `eph run` exists, the tests that
need a finished real run can use it instead."""

import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, eph_bin, run_eph

SCHEMA = (ROOT / "src/store/schema.sql").read_text()
SCHEMA_VERSION = int(
    re.search(r"#define STORE_SCHEMA_VERSION (\d+)", (ROOT / "src/store/store.h").read_text())[1]
)
T0 = 1764007200.0  # 2025-11-24T18:00:00Z


def make_db(state):
    db = sqlite3.connect(state / "eph.db")
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    for v in range(2, SCHEMA_VERSION + 1):  # the forward migrations, as store_open runs them
        db.executescript((ROOT / f"src/store/migrate_{v}.sql").read_text())
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.commit()
    return db


def add_run(db, state, job, *, state_name="succeeded", trigger="schedule", start=T0, wall=41.2,
            limit=2 << 30, peak=1 << 30, exit_code=0, signal=None, reason=None, samples=(),
            output=None, result=True, events=None):
    cur = db.execute(
        "INSERT INTO runs (job, trigger, scheduled_at, attempt, state, reason, executor, "
        "memory_limit, peak_bytes, peak_method, enforced, exit_code, signal, created_at, "
        "started_at, ended_at, cpu_user, cpu_system, commit_id) "
        "VALUES (?, ?, ?, 1, ?, ?, 'local', ?, ?, 'cgroup1 memory.max_usage_in_bytes', "
        "'cgroup1', ?, ?, ?, ?, ?, ?, ?, 'abc123')",
        (job, trigger, int(start), state_name, reason, limit, peak, exit_code, signal,
         start - 0.5, start, start + wall if state_name != "running" else None, 1.5, 0.25))
    rid = cur.lastrowid
    if state_name != "running":
        db.execute("INSERT INTO phases (run_id, name, started_at, ended_at, seconds) "
                   "VALUES (?, 'exec', ?, ?, ?)", (rid, start, start + wall, wall))
    d = state / "runs" / str(rid)
    d.mkdir(parents=True)
    db.execute("UPDATE runs SET run_dir = ?, log_path = ? WHERE id = ?",
               (str(d), str(d / "output.log"), rid))
    db.executemany("INSERT INTO samples (run_id, t, bytes) VALUES (?, ?, ?)",
                   [(rid, t, b) for t, b in samples])
    db.commit()
    if output is not None:
        (d / "output.log").write_bytes(output)
    if events is not None:
        (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if result:
        (d / "result.json").write_text(json.dumps({"version": 1, "outcome": state_name}))
    return rid, d


RAMP = [(T0 + i, min(i, 30) * (1 << 30) // 30) for i in range(42)]


@pytest.fixture
def store(state_dir):
    db = make_db(state_dir)
    yield db
    db.close()


def test_empty_state_says_no_runs_and_creates_nothing(state_dir):
    p = run_eph(["runs"])
    assert p.returncode == 0 and p.stdout == "no runs yet\n"
    p = run_eph(["runs", "--json"])
    assert p.returncode == 0 and json.loads(p.stdout) == []
    for cmd in (["show", "1"], ["logs", "1"], ["show", "some-job"]):
        p = run_eph(cmd)
        assert p.returncode == 2, cmd
        assert "no runs yet" in p.stderr
    assert not (state_dir / "eph.db").exists()


def test_runs_lists_newest_first_with_limit_and_job(store, state_dir):
    a, _ = add_run(store, state_dir, "fetch-prices", wall=3.0, peak=50 << 20, limit=512 << 20)
    b, _ = add_run(store, state_dir, "train-model", state_name="oom", exit_code=None, signal=9,
                   peak=2 << 30, start=T0 + 60)
    c, _ = add_run(store, state_dir, "fetch-prices", state_name="failed", exit_code=3,
                   start=T0 + 120, trigger="manual")
    p = run_eph(["runs"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "JOB", "TRIGGER"]
    ids = [int(line.split()[0]) for line in lines[1:]]
    assert ids == [c, b, a]
    assert "SIGKILL" in lines[2] and "oom" in lines[2] and "2.00 GiB / 2.00 GiB" in lines[2]
    assert lines[3].rstrip().endswith("0") and "50.00 MiB / 512 MiB" in lines[3]
    assert re.search(r"\bfailed\b.*\b3$", lines[1])
    # columns are aligned: every row has its STATE where the header has it
    col = lines[0].index("STATE")
    assert all(line[col:].split()[0] in ("failed", "oom", "succeeded") for line in lines[1:])

    p = run_eph(["runs", "fetch-prices", "--limit", "1"])
    assert [int(x.split()[0]) for x in p.stdout.splitlines()[1:]] == [c]
    p = run_eph(["runs", "--json", "-n", "2"])
    runs = json.loads(p.stdout)
    assert [r["id"] for r in runs] == [c, b]
    assert runs[1]["state"] == "oom" and runs[1]["signal"] == 9
    assert runs[1]["signal_name"] == "SIGKILL" and runs[1]["exit_code"] is None
    assert runs[0]["exit_code"] == 3 and runs[0]["trigger"] == "manual"
    assert runs[1]["phases"] == {"source": None, "runtime": None, "exec": 41.2}
    assert runs[1]["phase_list"] == [{"name": "exec", "started_at": runs[1]["started_at"],
                                      "ended_at": runs[1]["ended_at"], "seconds": 41.2}]
    p = run_eph(["runs", "--limit", "x"])
    assert p.returncode == 2


def test_show_prints_everything_and_an_ascii_chart_off_a_terminal(store, state_dir):
    rid, d = add_run(store, state_dir, "train-model", samples=RAMP,
                     reason="exit code 0")
    p = run_eph(["show", str(rid)], env={"COLUMNS": "100"})
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for want in ("run %d: train-model" % rid, "succeeded: exit code 0", "schedule, attempt 1",
                 "41.2s", "exec 41.2s", "cgroup1", "abc123", "code 0",
                 "peak 1.00 GiB of 2.00 GiB limit (50%)", "user 1.50s, system 0.25s",
                 str(d), "memory over time (42 samples"):
        assert want in out, want
    chart = out[out.index("memory over time"):].splitlines()[1:]
    assert len(chart) == 8 + 2
    assert all(len(line) <= 100 for line in chart)
    assert any(line.rstrip().endswith("limit") for line in chart)
    assert "#" in out and out.isascii()
    assert chart[-1].split()[0] == "0.0s" and chart[-1].split()[-1] == "41.2s"
    # the bars grow from left to right: the top bar row starts later than the bottom one
    bars = [line for line in chart[:-2] if "#" in line]
    assert bars[0].index("#") > bars[-1].index("#")


def test_show_draws_unicode_blocks_on_a_utf8_terminal(store, state_dir):
    rid, _ = add_run(store, state_dir, "train-model", samples=RAMP)
    master, slave = pty.openpty()
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", COLUMNS="90")
    proc = subprocess.Popen([eph_bin(), "show",
                             str(rid)], stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    data = b""
    while True:
        r, _, _ = select.select([master], [], [], 10)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    assert proc.wait(10) == 0
    text = data.decode("utf-8")
    assert "█" in text and "┤" in text and "─" in text
    assert "#" not in text


def test_show_json_has_every_field_and_the_samples(store, state_dir):
    rid, _ = add_run(store, state_dir, "train-model", samples=RAMP[:3])
    p = run_eph(["show", "--json", str(rid)])
    o = json.loads(p.stdout)
    assert o["id"] == rid and o["job"] == "train-model" and o["memory_limit"] == 2 << 30
    assert o["samples_from"] == "store"
    assert o["samples"] == [{"t": t, "bytes": b} for t, b in RAMP[:3]]
    for key in ("trigger", "scheduled_at", "attempt", "state", "reason", "executor",
                "peak_bytes", "peak_method", "enforced", "exit_code", "signal", "created_at",
                "started_at", "ended_at", "duration", "phases", "cpu_user_seconds",
                "cpu_system_seconds", "commit", "run_dir", "log_path", "agent_pid", "warning"):
        assert key in o, key


def test_show_job_means_its_latest_run_and_unknown_runs_exit_2(store, state_dir):
    add_run(store, state_dir, "a")
    b, _ = add_run(store, state_dir, "a", state_name="failed", exit_code=1)
    add_run(store, state_dir, "b")
    p = run_eph(["show", "a", "--json"])
    assert json.loads(p.stdout)["id"] == b
    for arg in ("999", "no-such-job"):
        p = run_eph(["show", arg])
        assert p.returncode == 2 and "no run " + arg in p.stderr
    assert run_eph(["show"]).returncode == 2


@pytest.mark.parametrize("arg", [" 1", "+1", "1 ", "-1", "0x1", "1e0", "01.0", "", "0",
                                 "99999999999999999999"])
def test_a_run_id_is_digits_only(store, state_dir, arg):
    add_run(store, state_dir, "a")  # run 1: none of these may mean it
    p = run_eph(["cancel", arg])
    assert p.returncode == 2, p.stderr
    assert f"RUN must be a run id (digits only), not '{arg}'" in p.stderr
    for cmd in ("show", "logs"):
        p = run_eph([cmd, arg])
        assert p.returncode == 2 and p.stdout == "", (cmd, p.stdout, p.stderr)
        assert "no run" in p.stderr or "unknown option '-1'" in p.stderr
    if arg not in ("0", "99999999999999999999"):
        p = run_eph(["runs", "--limit", arg])
        assert p.returncode == 2 and "--limit needs a number" in p.stderr


def test_show_of_a_live_run_reads_events_jsonl(store, state_dir):
    events = [{"ev": "start", "t": T0, "agent_pid": 1, "enforced": "cgroup1"}]
    events += [{"ev": "mem", "t": t, "bytes": b} for t, b in RAMP[:10]]
    rid, _ = add_run(store, state_dir, "live", state_name="running", result=False,
                     events=events, peak=None)
    p = run_eph(["show", "--json", str(rid)])
    o = json.loads(p.stdout)
    assert o["samples_from"] == "events" and len(o["samples"]) == 10
    assert o["state"] == "running" and o["ended_at"] is None
    p = run_eph(["show", str(rid)])
    assert "so far" in p.stdout and "memory over time (10 samples)" in p.stdout


LOG = (b"2025-11-24T18:00:01.000Z out hello\n"
       b"2025-11-24T18:00:01.500Z err warn: \xc3\xa9t\xc3\xa9\n"
       b"2025-11-24T18:00:02.000Z out+ part one \\\\ \\xff\n"
       b"2025-11-24T18:00:03.000Z out  and two\n")


def test_logs_prints_output_log_as_is_raw_or_as_json(store, state_dir):
    rid, _ = add_run(store, state_dir, "j", output=LOG)
    p = subprocess.run([eph_bin(), "logs",
                        str(rid)], capture_output=True)
    assert p.returncode == 0 and p.stdout == LOG
    p = subprocess.run([eph_bin(), "logs", "j",
                        "--raw"], capture_output=True)
    assert p.returncode == 0
    assert p.stdout == b"hello\nwarn: \xc3\xa9t\xc3\xa9\npart one \\ \xff and two\n"
    p = run_eph(["logs", str(rid), "--json"])
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert recs[0] == {"t": "2025-11-24T18:00:01.000Z", "stream": "out", "text": "hello",
                       "more": False}
    assert recs[2]["more"] is True and recs[2]["stream"] == "out"
    assert recs[1]["stream"] == "err" and recs[1]["text"] == "warn: été"
    assert run_eph(["logs", "42"]).returncode == 2
    assert run_eph(["logs", "1", "--raw", "--json"]).returncode == 2


BAD_LOG = (b"2025-11-24T18:00:01.000Z out hello\n"
           b"garbage a person added\n"
           b"2025-11-24T18:00:01.100Z out \x1b[2J raw escape: a torn or foreign line\n"
           b"2025-11-24T18:00:01.200Z bogus tag\n"
           b"2025-11-24T18:00:02.000Z err world\n"
           b"2025-11-24T18:00:02.500Z out half a rec")


def test_logs_skips_lines_that_are_not_records_and_says_how_many(store, state_dir):
    """One rule for every reader of output.log (src/rundir/logrec.h): a line that is not a
    record is skipped, counted and never shown; the end after the last newline is a record
    still being written."""
    rid, _ = add_run(store, state_dir, "j", output=BAD_LOG)
    p = subprocess.run([eph_bin(), "logs", str(rid)], capture_output=True)
    assert p.returncode == 0 and p.stdout == BAD_LOG  # as it is: the file's bytes
    p = subprocess.run([eph_bin(), "logs", str(rid), "--raw"], capture_output=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello\nworld\n"
    assert b"3 lines of the log are not a record: not shown" in p.stderr
    p = run_eph(["logs", str(rid), "--json"])
    assert [json.loads(line)["text"] for line in p.stdout.splitlines()] == ["hello", "world"]
    assert "3 lines" in p.stderr


def test_logs_of_a_run_without_output(store, state_dir):
    rid, _ = add_run(store, state_dir, "j", state_name="skipped")
    p = run_eph(["logs", str(rid)])
    assert p.returncode == 0 and p.stdout == "" and "has no output" in p.stderr


def test_logs_follow_prints_until_the_result_appears(store, state_dir):
    rid, d = add_run(store, state_dir, "live", state_name="running", result=False,
                     output=b"2025-11-24T18:00:01.000Z out first\n")
    proc = subprocess.Popen([eph_bin(), "logs",
                             "-f", str(rid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        assert first == b"2025-11-24T18:00:01.000Z out first\n"
        with open(d / "output.log", "ab") as f:
            f.write(b"2025-11-24T18:00:02.000Z out second\n")
        assert proc.stdout.readline() == b"2025-11-24T18:00:02.000Z out second\n"
        time.sleep(0.3)
        assert proc.poll() is None  # still live: still following
        with open(d / "output.log", "ab") as f:
            f.write(b"2025-11-24T18:00:03.000Z out last\n")
        (d / "result.json.tmp").write_text('{"version":1,"outcome":"succeeded"}')
        os.rename(d / "result.json.tmp", d / "result.json")
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == b"2025-11-24T18:00:03.000Z out last\n"


def test_logs_follow_stops_when_the_store_says_the_run_ended(store, state_dir):
    rid, _ = add_run(store, state_dir, "lost", state_name="running", result=False,
                     output=b"2025-11-24T18:00:01.000Z out only\n")
    proc = subprocess.Popen([eph_bin(), "logs",
                             "-f", str(rid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"2025-11-24T18:00:01.000Z out only\n"
        store.execute("UPDATE runs SET state = 'lost' WHERE id = ?", (rid,))
        store.commit()
        proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def test_a_store_from_a_newer_eph_is_refused(store, state_dir):
    store.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.commit()
    p = run_eph(["runs"])
    assert p.returncode == 1
    assert (f"eph.db has schema version {SCHEMA_VERSION + 1}; this eph knows up to "
            f"{SCHEMA_VERSION}: upgrade eph") in p.stderr



def test_a_real_runs_phases_are_listed_with_their_times(tmp_path, state_dir):
    jobs = tmp_path / "ephemeron.yaml"
    jobs.write_text('jobs:\n  nap:\n    schedule: "@daily"\n    run: sleep 0.3\n')
    p = run_eph(["-f", jobs, "run", "nap"])
    assert p.returncode == 0, p.stderr
    p = run_eph(["show", "--json", "nap"])
    o = json.loads(p.stdout)
    names = [ph["name"] for ph in o["phase_list"]]
    assert names.count("exec") == 1, names
    ex = o["phase_list"][names.index("exec")]
    # its times in the run's span, its length measured by the agent
    assert o["created_at"] <= ex["started_at"] < ex["ended_at"] <= o["ended_at"] + 0.01
    assert ex["seconds"] >= 0.3
    assert abs((ex["ended_at"] - ex["started_at"]) - ex["seconds"]) < 0.2
    assert o["phases"]["exec"] == ex["seconds"]
    assert o["phases"]["source"] is None and o["phases"]["runtime"] is None
    p = run_eph(["show", "nap"])
    assert re.search(r"^phases +exec 0\.[3-9]", p.stdout, re.M), p.stdout
    p = run_eph(["runs", "--json"])
    assert json.loads(p.stdout)[0]["phase_list"] == o["phase_list"]
