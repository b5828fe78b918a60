"""Secrets on the local executor, end to end: a job's command gets them as environment
variables; their values are masked in its output and written nowhere (no file of the state
directory or the run directory, no argv, not the agent's own environment); they are read at
each run (a rotated file takes effect without a reload); one that cannot be had fails the run
with reason `secrets: ...` naming it, never showing its value."""

import hashlib
import json
import os
import secrets as pysecrets
import subprocess
import textwrap

from conftest import eph_bin, marker_pids, run_eph, wait_for
from test_daemon import TERMINAL, daemons, rows, write_jobs  # noqa: F401 (a fixture)


def sha(v):
    return hashlib.sha256(v.encode()).hexdigest()


# Prints the hash of each secret, then each value itself, the file one split across two writes
# a partial line's flush apart (output.log flushes a partial line after a second).
CMD = ('printf "%s" "$PW" | sha256sum; printf "%s" "$DB" | sha256sum; '
       'echo "pw=$PW db=$DB"; echo "$DB" >&2; '
       'printf "half: "; printf "%s" "$PW" | head -c 5; sleep 1.4; printf "%s\\n" "$PW" | tail -c +6; '
       'echo "pip? $(env | grep -c ^PW=)"; sleep "${HOLD:-0}"')


def jobs_text(marker="", hold=0):
    return f"""\
        secrets:
          pw: {{ file: pw }}
          db: {{ env: EPH_TEST_SECRET_DB }}
        jobs:
          s:
            schedule: "@hourly"
            run: '{CMD}'
            secrets: {{ PW: pw, DB: db }}
            env: {{ HOLD: "{hold}", MARKER: "{marker}" }}
          plain:
            schedule: "@hourly"
            run: 'echo "db: ${{EPH_TEST_SECRET_DB:-not inherited}}"'
        """


def files_holding(root, value):
    """The files under ROOT whose bytes hold VALUE."""
    found = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            try:
                with open(p, "rb") as f:
                    if value.encode() in f.read():
                        found.append(p)
            except OSError:
                pass
    return found


def make_jobs(tmp_path, marker="", hold=0):
    pw = "pw-" + pysecrets.token_hex(12)
    db = "postgres://u:" + pysecrets.token_hex(12) + "@h/db"
    (tmp_path / "pw").write_text(pw + "\n")  # the trailing newline is not the value's
    os.chmod(tmp_path / "pw", 0o600)
    jobs = write_jobs(tmp_path / "ephemeron.yaml", jobs_text(marker, hold))
    return pw, db, jobs


def test_a_run_gets_its_secrets_masked_and_written_nowhere(tmp_path, state_dir):
    marker = f"eph-secrets-{os.getpid()}-{pysecrets.token_hex(4)}"
    pw, db, jobs = make_jobs(tmp_path, marker, hold=3)
    env = dict(os.environ, EPH_TEST_SECRET_DB=db)
    p = subprocess.Popen([eph_bin(), "-f", str(jobs), "run", "s"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # while the command holds: no argv holds a value, nor the agent's own environment
    wait_for(lambda: marker_pids(marker), what="the command to start")
    wait_for(lambda: (state_dir / "runs" / "1" / "output.log").exists()
             and "pip?" in (state_dir / "runs" / "1" / "output.log").read_text(),
             what="the command's output")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        assert pw.encode() not in cmdline and db.encode() not in cmdline, cmdline
    agent_pid = int((state_dir / "runs" / "1" / "agent.pid").read_text().split()[0])
    with open(f"/proc/{agent_pid}/environ", "rb") as f:
        agent_env = f.read()
    # the variable an env secret comes from stays with the starter: not inherited
    assert pw.encode() not in agent_env and db.encode() not in agent_env
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    log = (state_dir / "runs" / "1" / "output.log").read_text()
    # the command had them (their hashes), and its output has *** for each
    assert f"out {sha(pw)}  -" in log, log
    assert f"out {sha(db)}  -" in log, log
    assert "out pw=*** db=***\n" in log, log
    assert "err ***\n" in log, log
    # split across two writes, a partial-line flush between them: masked whole
    assert pw[:5] not in log and pw[5:] not in log, log
    # "half: " went out as a partial line after a second (a record continued by the next);
    # the value's start was held back, and the next record masks it whole
    lines = log.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.endswith(" out+ half: "))
    assert lines[i + 1].endswith(" out ***"), log
    # in the command's environment once, not twice
    assert "out pip? 1\n" in log, log
    # written nowhere: no file of the state directory (the store, the run directory: spec,
    # events, logs) nor anything else of the test's, but the secret's own file
    assert files_holding(tmp_path, pw) == [str(tmp_path / "pw")]
    assert files_holding(tmp_path, db) == []
    assert pw not in out and db not in out and pw not in err and db not in err
    spec = json.loads((state_dir / "runs" / "1" / "spec.json").read_text())
    assert spec["secrets"] == ["PW", "DB"] and spec["version"] == 3
    # eph show lists the names, never the values; eph logs shows the masked output
    show = run_eph(["show", "1"])
    assert "secrets     PW, DB\n" in show.stdout, show.stdout
    js = json.loads(run_eph(["show", "--json", "1"]).stdout)
    assert js["secrets"] == ["PW", "DB"]
    logs = run_eph(["logs", "1"])
    assert "pw=*** db=***" in logs.stdout and pw not in logs.stdout
    # a job without secrets does not inherit the variable a secret comes from either
    p = subprocess.run([eph_bin(), "-f", str(jobs), "run", "plain"], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert " out db: not inherited\n" in (state_dir / "runs" / "2" / "output.log").read_text()


def test_a_rotated_file_takes_effect_at_the_next_run_and_a_missing_one_fails_it(
        tmp_path, state_dir, daemons):
    pw, db, jobs = make_jobs(tmp_path)
    os.environ["EPH_TEST_SECRET_DB"] = db
    try:
        d = daemons(jobs, state_dir)
    finally:
        del os.environ["EPH_TEST_SECRET_DB"]

    def run_and_wait(n):
        p = run_eph(["-f", jobs, "run", "s"])
        assert p.returncode == 0, p.stderr
        wait_for(lambda: len(rows(state_dir)) >= n and rows(state_dir)[n - 1]["state"]
                 in TERMINAL, 30, f"run {n} to end")
        return rows(state_dir)[n - 1]

    r = run_and_wait(1)
    assert r["state"] == "succeeded", r
    assert sha(pw) in (state_dir / "runs" / "1" / "output.log").read_text()
    # rotated: the next run has the new value, no reload
    pw2 = "rotated-" + pysecrets.token_hex(8)
    tmp = tmp_path / "pw.new"
    tmp.write_text(pw2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, tmp_path / "pw")
    r = run_and_wait(2)
    assert r["state"] == "succeeded", r
    log = (state_dir / "runs" / "2" / "output.log").read_text()
    assert sha(pw2) in log and sha(pw) not in log and pw2 not in log
    assert "reload" not in d.text()
    # gone: the run fails, naming the secret, and nothing ran
    os.unlink(tmp_path / "pw")
    r = run_and_wait(3)
    assert r["state"] == "failed", r
    assert r["reason"].startswith("secrets: pw (for PW): "), r
    assert r["reason"].endswith("/pw: No such file or directory"), r
    assert not (state_dir / "runs" / "3" / "output.log").exists() or \
        (state_dir / "runs" / "3" / "output.log").read_text() == ""
    # readable by others: refused at the run too
    (tmp_path / "pw").write_text(pw2)
    os.chmod(tmp_path / "pw", 0o644)
    r = run_and_wait(4)
    assert r["state"] == "failed", r
    assert "can be read by group or others (mode 0644)" in r["reason"], r
    assert pw2 not in r["reason"]
    # and validation says so where it can see it
    v = run_eph(["validate", jobs])
    assert v.returncode == 2 and "refusing to use it: chmod 600" in v.stderr, v.stderr
    assert files_holding(state_dir, pw) == [] and files_holding(state_dir, pw2) == []
    assert files_holding(state_dir, db) == []
    assert d.stop() == 0


def test_a_variable_not_set_fails_the_run_but_not_validation(tmp_path, state_dir):
    pw, db, jobs = make_jobs(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "EPH_TEST_SECRET_DB"}
    v = subprocess.run([eph_bin(), "validate", str(jobs)], env=env, capture_output=True,
                       text=True)
    assert v.returncode == 0, v.stderr
    p = subprocess.run([eph_bin(), "-f", str(jobs), "run", "s"], env=env, capture_output=True,
                       text=True)
    assert p.returncode == 1, p.stderr
    r = rows(state_dir)[0]
    assert r["state"] == "failed"
    assert r["reason"] == ("secrets: db (for DB): the variable EPH_TEST_SECRET_DB is not set")
    # a value too short to be masked is refused, without being shown
    p = subprocess.run([eph_bin(), "-f", str(jobs), "run", "s"],
                       env=dict(env, EPH_TEST_SECRET_DB="abc"), capture_output=True, text=True)
    assert p.returncode == 1
    r = rows(state_dir)[1]
    assert r["reason"] == ("secrets: db (for DB): shorter than 4 bytes: it could not be "
                           "masked in the output"), r


def test_validate_reports_every_secret_problem_with_its_place(tmp_path):
    (tmp_path / "open").write_text("value")
    os.chmod(tmp_path / "open", 0o644)
    jobs = write_jobs(tmp_path / "ephemeron.yaml", """\
        secrets:
          open: { file: open }
          gone: { file: nowhere }
          db: { env: SOME_VAR }
        jobs:
          a:
            schedule: "@hourly"
            run: "true"
            env: { DB: x }
            secrets: { DB: db, X: dbb }
        """)
    v = run_eph(["validate", jobs])
    assert v.returncode == 2
    f = str(jobs)
    assert v.stderr.splitlines() == [
        f'{f}:2:17: secret "open": {tmp_path}/open can be read by group or others (mode 0644);'
        f' refusing to use it: chmod 600 {tmp_path}/open',
        f'{f}:3:17: secret "gone": cannot read {tmp_path}/nowhere: No such file or directory',
        f'{f}:10:5: job "a" sets DB both in "env" and in "secrets": keep one',
        f'{f}:10:27: unknown secret "dbb" (did you mean "db"?)',
    ], v.stderr


# ---- the agent and its stdin (docs/rundir.md, "Secrets")


def agent_run(tmp_path, name, stdin, **spec):
    from agentrun import AGENT, make_run, result
    d = make_run(tmp_path, name, 1, **spec)
    p = subprocess.run([*AGENT, str(d)], input=stdin, capture_output=True, timeout=30)
    return d, p, result(d)


def test_the_agent_takes_only_the_listed_secrets_from_its_stdin(tmp_path):
    blob = b"PW=hunter22\0OTHER=not-for-it\0DB=db-value-1\0"
    d, p, res = agent_run(tmp_path, "ok", blob, version=3, secrets=["PW", "DB"],
                          shell='echo "$PW $DB ${OTHER:-unset}"; '
                                'printf "%s" "$PW" | sha256sum')
    assert res["outcome"] == "succeeded", (res, p.stderr)
    log = (d / "output.log").read_text()
    assert " out *** *** unset\n" in log, log
    assert sha("hunter22") in log
    # one it lacks: the run fails before any phase, naming it
    d, p, res = agent_run(tmp_path, "lacks", b"PW=hunter22\0", version=3,
                          secrets=["PW", "DB"], shell="echo ran")
    assert res["outcome"] == "failed" and res["failure"] == "secrets", res
    assert res["reason"] == ("secrets: DB was not given to the agent (no value for it on its "
                             "standard input)"), res
    assert not (d / "output.log").exists() or "ran" not in (d / "output.log").read_text()


def test_the_agent_never_reads_its_stdin_without_secrets(tmp_path):
    from agentrun import AGENT, make_run
    d = make_run(tmp_path, "plain", 1, shell="echo ran")
    r, w = os.pipe()  # never written, never closed here: a read would block
    try:
        p = subprocess.run([*AGENT, str(d)], stdin=r, capture_output=True, timeout=30)
    finally:
        os.close(r)
        os.close(w)
    assert p.returncode == 0, p.stderr
    assert " out ran\n" in (d / "output.log").read_text()
