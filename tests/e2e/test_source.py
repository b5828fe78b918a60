"""The source of a run, end to end: `eph gc` against a real state directory (mirrors cloned by
git, worktrees held by a live run's lock), and `eph run` with a `source:` section, pinning each
run to a commit of a real repository. The resolve/checkout logic itself is unit-tested with
real repositories and a real `git daemon` in tests/unit/test_source.c."""

import fcntl
import hashlib
import json
import os
import sqlite3
import subprocess
import textwrap
import time

import pytest

from agentrun import git
from conftest import run_eph

@pytest.fixture
def origin(tmp_path):
    """A bare repository (the remote) and a work tree that pushes to it; returns a helper
    that commits FILE=TEXT, pushes, and gives the commit id."""
    bare = tmp_path / "origin.git"
    work = tmp_path / "work"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    git("remote", "add", "origin", str(bare), cwd=work)

    def commit(name="job.sh", text="echo hello\n"):
        (work / name).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "-qm", f"{name}: {text[:20]}", cwd=work)
        git("push", "-q", "origin", "HEAD", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    commit.bare = bare
    commit.url = f"file://{bare}"
    commit.work = work
    return commit


def mirror_key(url):
    """STATE/mirrors/<key>.git: 32 hex characters of SHA-256(URL) (docs/source.md)."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def jobs_file(tmp_path, repo=None, extra="", refresh="1s"):
    src = f"source:\n  repo: {repo}\n  refresh: {refresh}\n{extra}" if repo else ""
    f = tmp_path / "ephemeron.yaml"
    f.write_text(src + textwrap.dedent("""\
        jobs:
          hello:
            schedule: "@hourly"
            run: echo "code says $(cat job.txt 2>/dev/null || echo none) in $(pwd)"
        """))
    return f


def fill(path, nbytes):
    path.mkdir(parents=True)
    (path / "data").write_bytes(b"x" * nbytes)


def gc_json(jobs, *extra):
    p = run_eph(["-f", jobs, "gc", "--json", *extra])
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_gc_frees_what_no_job_uses_and_keeps_what_a_live_run_holds(tmp_path, state_dir, origin):
    old = origin("job.txt", "old\n")
    tip = origin("job.txt", "new\n")
    jobs = jobs_file(tmp_path, origin.url)
    mirrors = state_dir / "mirrors"
    mirrors.mkdir()
    git("clone", "-q", "--mirror", origin.url, str(mirrors / f"{mirror_key(origin.url)}.git"))
    git("init", "-q", "--bare", str(mirrors / f"{mirror_key('file:///elsewhere.git')}.git"))
    src = state_dir / "src"
    held_commit = "c" * 40
    for commit in (old, tip, held_commit):
        fill(src / commit, 100_000)
    (src / f"{old}.tmp").mkdir()  # a crashed checkout's leftover goes with its entry
    venvs = state_dir / "venvs"
    fill(venvs / "stale", 50_000)
    fill(venvs / "fresh", 50_000)
    month_ago = time.time() - 30 * 86400
    os.utime(venvs / "stale", (month_ago, month_ago))

    with open(src / f"{held_commit}.lock", "w") as hold:
        fcntl.flock(hold, fcntl.LOCK_SH)  # what a live run's agent holds

        dry = gc_json(jobs, "--dry-run")
        assert dry["dry_run"] is True
        removed = {os.path.basename(r["path"]) for r in dry["removed"]}
        # no job has requirements: no venv can be used
        assert removed == {old, "stale", "fresh", f"{mirror_key('file:///elsewhere.git')}.git"}
        assert (src / old).exists(), "a dry run removes nothing"
        assert dry["freed_bytes"] >= 150_000

        p = run_eph(["-f", jobs, "gc"])
        assert p.returncode == 0, p.stderr
        assert f"removed worktree {src / old}" in p.stdout
        assert f"kept worktree {src / held_commit}: in use by a live run" in p.stdout
        assert "freed " in p.stdout.splitlines()[-1]
        assert not (src / old).exists() and not (src / f"{old}.tmp").exists()
        assert (src / tip).exists(), "the branch's current commit is kept"
        assert (src / held_commit).exists(), "a held worktree is kept"
        assert not (venvs / "stale").exists() and not (venvs / "fresh").exists()
        assert (mirrors / f"{mirror_key(origin.url)}.git").exists()
        assert not (mirrors / f"{mirror_key('file:///elsewhere.git')}.git").exists()

    # The run is over: its worktree is garbage now.
    again = gc_json(jobs)
    assert [os.path.basename(r["path"]) for r in again["removed"]] == [held_commit]
    assert not (src / held_commit).exists()


def venv_key(interp, reqs: bytes):
    """The key as docs/rundir.md defines it, computed here independently."""
    real = os.path.realpath(interp)
    version = subprocess.run([interp, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout.rstrip("\n")
    h = hashlib.sha256(real.encode() + b"\0" + version.encode() + b"\0" + reqs)
    return h.hexdigest()[:32]


def test_gc_keeps_the_venvs_the_jobs_make_and_only_those(tmp_path, state_dir):
    (tmp_path / "requirements.txt").write_text("# nothing to install\n")
    f = tmp_path / "ephemeron.yaml"
    f.write_text(textwrap.dedent("""\
        python:
          requirements: requirements.txt
          interpreter: /usr/bin/python3
        jobs:
          hello:
            schedule: "@hourly"
            run: python -c 'print(1)'
        """))
    current = venv_key("/usr/bin/python3", b"# nothing to install\n")
    venvs = state_dir / "venvs"
    fill(venvs / current, 10_000)
    fill(venvs / ("0" * 32), 10_000)  # a venv of an older requirements file, used just now
    out = gc_json(f)
    assert [os.path.basename(r["path"]) for r in out["removed"]] == ["0" * 32]
    assert [(os.path.basename(k["path"]), k["reason"]) for k in out["kept"]] == [
        (current, "a job's current interpreter and requirements")]

    # an interpreter missing here: what the job needs cannot be known, so recent venvs stay
    f.write_text(f.read_text().replace("/usr/bin/python3", "/nonexistent/python3"))
    fill(venvs / ("1" * 32), 10_000)
    p = run_eph(["-f", f, "gc"])
    assert p.returncode == 0, p.stderr
    assert "the venv of job hello cannot be identified" in p.stderr
    assert (venvs / ("1" * 32)).exists() and (venvs / current).exists()


def test_gc_without_source_keeps_nothing_in_the_cache(tmp_path, state_dir):
    jobs = jobs_file(tmp_path)
    fill(state_dir / "src" / ("a" * 40), 10_000)
    out = gc_json(jobs)
    assert [r["kind"] for r in out["removed"]] == ["worktree"]
    assert out["freed_bytes"] > 0


def test_gc_run_runs_and_show_never_print_credentials(tmp_path, state_dir):
    # a run whose clone fails: its reason names the URL, in `eph run`, `runs` and `show`
    jobs = jobs_file(tmp_path, "https://alice:s3cret@127.0.0.1:1/x.git")
    p, r = run_json(jobs)
    assert p.returncode == 1 and r["state"] == "failed", p.stdout + p.stderr
    out = p.stdout + p.stderr
    for args in (["runs"], ["runs", "--json"], ["show", r["id"]], ["show", "--json", r["id"]]):
        q = run_eph(["-f", jobs, *args])
        assert q.returncode == 0, q.stderr
        out += q.stdout + q.stderr
    assert "cannot clone https://127.0.0.1:1/x.git" in out  # the URL is shown...
    assert "s3cret" not in out and "alice" not in out  # ...without its userinfo
    with sqlite3.connect(state_dir / "eph.db") as db:
        rows = db.execute("SELECT * FROM runs").fetchall()
    assert rows and "s3cret" not in repr(rows)

    # gc: a source.repo it cannot read is named in its warning
    jobs = jobs_file(tmp_path, "./https://alice:s3cret@example.com/x.git")
    p = run_eph(["-f", jobs, "gc"])
    assert p.returncode == 0, p.stderr
    assert "source.repo ./https://example.com/x.git: No such file or directory" in p.stderr
    assert "s3cret" not in p.stdout + p.stderr


# ---- eph run with a source: each run is pinned to a commit ----

def run_commit(state_dir, run_id):
    with sqlite3.connect(state_dir / "eph.db") as db:
        row = db.execute("SELECT commit_id, warning FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row


def run_json(jobs, job="hello"):
    p = run_eph(["-f", jobs, "run", "--json", job])
    return p, json.loads(p.stdout) if p.stdout.strip().startswith("{") else None


def require_pinning(state_dir, run):
    """`eph run` pins a run with a source.repo to a commit: a regression fails here."""
    assert run is not None, "eph run --json printed no run"
    assert run_commit(state_dir, run["id"])[0] is not None, "the run is not pinned to a commit"


def test_push_between_two_runs_each_records_its_own_commit(tmp_path, state_dir, origin):
    first = origin("job.txt", "one\n")
    jobs = jobs_file(tmp_path, origin.url)
    p, r1 = run_json(jobs)
    require_pinning(state_dir, r1)
    assert p.returncode == 0, p.stderr
    assert run_commit(state_dir, r1["id"])[0] == first
    assert (state_dir / "src" / first).is_dir()
    time.sleep(1.1)  # refresh: 1s
    second = origin("job.txt", "two\n")
    p, r2 = run_json(jobs)
    assert p.returncode == 0, p.stderr
    assert run_commit(state_dir, r2["id"])[0] == second


def test_refresh_0_fetches_before_every_run(tmp_path, state_dir, origin):
    """`refresh: 0` is `git pull` before each run: a push just after a run is in the next."""
    first = origin("job.txt", "one\n")
    jobs = jobs_file(tmp_path, origin.url, refresh="0")
    p, r1 = run_json(jobs)
    require_pinning(state_dir, r1)
    assert p.returncode == 0, p.stderr
    assert run_commit(state_dir, r1["id"])[0] == first
    second = origin("job.txt", "two\n")  # at once: no refresh to wait for
    p, r2 = run_json(jobs)
    assert p.returncode == 0, p.stderr
    assert run_commit(state_dir, r2["id"])[0] == second


def test_fetch_failure_runs_last_commit_with_warning_or_fails(tmp_path, state_dir, origin):
    first = origin("job.txt", "one\n")
    jobs = jobs_file(tmp_path, origin.url)
    p, r1 = run_json(jobs)
    require_pinning(state_dir, r1)
    os.rename(origin.bare, str(origin.bare) + ".gone")
    time.sleep(1.1)
    p, r2 = run_json(jobs)
    commit, warning = run_commit(state_dir, r2["id"])
    assert commit == first
    assert warning and "cannot fetch" in warning
    jobs = jobs_file(tmp_path, origin.url, "  on_fetch_error: fail\n")
    time.sleep(1.1)
    p, r3 = run_json(jobs)
    assert p.returncode == 1
    assert r3["state"] == "failed" and "source" in (r3.get("reason") or "")
