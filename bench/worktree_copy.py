#!/usr/bin/python3
"""bench/worktree_copy.py: what a run's private copy of its commit costs (RUN_DIR/work, made by
the agent from the shared read-only tree STATE/sources/<commit>; src/rundir/treecopy.c), for a
repository of about 100 MB, against the two other ways: `cp -a --reflink=auto` and unpacking
the commit's archive per run (`tar -xf`). Rerunnable; prints a table.

usage: EPH_BIN=build/eph /usr/bin/python3 bench/worktree_copy.py [--quick]
Environment: BENCH_DIR (default /var/tmp: a real disk), BENCH_MB (default 100).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

EPH = os.path.abspath(os.environ.get("EPH_BIN", "build/eph"))
_SLIM = os.path.join(os.path.dirname(EPH), "eph-agent")
AGENT = [_SLIM] if os.access(_SLIM, os.X_OK) else [EPH, "agent"]
BASE = os.environ.get("BENCH_DIR", "/var/tmp")
MB = int(os.environ.get("BENCH_MB", "100"))
N = 3 if "--quick" in sys.argv else 10
GIT = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
           GIT_COMMITTER_EMAIL="b@b")


def make_repo(top):
    """A repository like a data-science one: 2,000 small source files (4 KiB) and big data
    files making up the rest of MB megabytes. Returns (commit, archive path)."""
    repo = os.path.join(top, "repo")
    os.makedirs(repo)
    for i in range(2000):
        d = os.path.join(repo, "src", f"m{i // 100}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.py"), "wb") as f:
            f.write(os.urandom(2048).hex().encode())
    rest, i = MB * 1_000_000 - 2000 * 4096, 0
    os.makedirs(os.path.join(repo, "data"))
    while rest > 0:
        n = min(rest, 8 << 20)
        with open(os.path.join(repo, "data", f"d{i}.bin"), "wb") as f:
            f.write(os.urandom(n))
        rest, i = rest - n, i + 1
    for a in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *a], cwd=repo, env=GIT, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = os.path.join(top, "commit.tar")
    subprocess.run(["git", "archive", "-o", archive, commit], cwd=repo, check=True)
    return commit, archive


def agent_copy(top, state, commit, archive, k):
    """One run by the agent: the copy's seconds from its source phase's end event."""
    d = os.path.join(top, f"run{k}")
    os.makedirs(d)
    spec = {"version": 2, "run_id": 900000 + k, "job": "bench", "attempt": 1,
            "scheduled_at": 1764007200, "argv": ["true"], "shell": None, "env": {},
            "cwd": None, "memory": 0, "timeout": 60, "kill_grace": 1, "commit": None,
            "enforce": "sampled", "state_dir": state,
            "source": {"archive": archive, "commit": commit, "keep_worktrees": 5}}
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump(spec, f)
    subprocess.run([*AGENT, d], check=True, capture_output=True)
    with open(os.path.join(d, "events.jsonl")) as f:
        ev = [json.loads(ln) for ln in f]
    end = [e for e in ev if e["ev"] == "phase" and e["phase"] == "source"
           and e["state"] == "end"][0]
    shutil.rmtree(d)
    return end["copy_seconds"]


def timed(argv):
    t0 = time.monotonic()
    subprocess.run(argv, check=True)
    return time.monotonic() - t0


def main():
    top = tempfile.mkdtemp(prefix="eph-bench-copy-", dir=BASE)
    try:
        commit, archive = make_repo(top)
        state = os.path.join(top, "state")
        os.makedirs(state)
        agent_copy(top, state, commit, archive, 0)  # unpacks the shared tree once
        shared = os.path.join(state, "sources", commit)
        rows = {"agent (copy_file_range)": [], "cp -a --reflink=auto": [],
                "tar -xf (unpack per run)": []}
        for k in range(1, N + 1):
            subprocess.run(["sync"])
            rows["agent (copy_file_range)"].append(agent_copy(top, state, commit, archive, k))
            dst = os.path.join(top, "cp")
            rows["cp -a --reflink=auto"].append(timed(["cp", "-a", "--reflink=auto", shared,
                                                       dst]))
            shutil.rmtree(dst)
            os.makedirs(dst)
            rows["tar -xf (unpack per run)"].append(timed(["tar", "-xf", archive, "-C", dst]))
            shutil.rmtree(dst)
        fs = subprocess.run(["stat", "-f", "-c", "%T", top], capture_output=True,
                            text=True).stdout.strip()
        print(f"{MB} MB repository, 2000 small files + data, on {fs} ({BASE}), {N} runs")
        print(f"{'how':28} {'median':>8} {'min':>8} {'max':>8}")
        for name, v in rows.items():
            print(f"{name:28} {statistics.median(v):7.3f}s {min(v):7.3f}s {max(v):7.3f}s")
    finally:
        subprocess.run(["chmod", "-R", "u+w", top])
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
