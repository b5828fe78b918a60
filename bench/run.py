#!/usr/bin/python3
"""bench/run.py: time from a run's creation (its row in the store) to its command's first
instruction, through the whole of `eph run`: the store, the code pinned to a commit, the
agent, the memory cgroup. Three cases: in place (no source section), a warm pinned commit
(mirror fresh, worktree checked out), and a cold commit of a 10,000-file repository (a new
commit pushed before each run: fetch + checkout).

The command is /bin/date +%s.%N started by argv, so its own start-up is a few hundred
microseconds; the creation instant is the store's created_at (millisecond precision).

Usage: EPH_BIN=build/eph /usr/bin/python3 bench/run.py [-n RUNS]
"""

import argparse
import os
import sqlite3
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

EPH = os.environ.get("EPH_BIN", "build/eph")
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}


def git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def one_run(jobs, state):
    p = subprocess.run([EPH, "-f", str(jobs), "run", "stamp"], capture_output=True, text=True,
                       env={**os.environ, "EPH_STATE": str(state)})
    if p.returncode != 0:
        raise SystemExit(f"eph run failed: {p.stderr}")
    started = float(p.stdout.strip())
    con = sqlite3.connect(f"file:{state}/eph.db?mode=ro", uri=True)
    created = con.execute("SELECT created_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    con.close()
    return (started - created) * 1000.0


def table_row(name, ms):
    ms = sorted(ms)
    print(f"| {name} | {len(ms)} | {statistics.median(ms):.1f} ms | {ms[-1]:.1f} ms |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    n = ap.parse_args().n
    with tempfile.TemporaryDirectory(prefix="eph-bench-run-") as t:
        t = Path(t)
        work, origin = t / "work", t / "origin.git"
        git("init", "-q", "-b", "main", str(work))
        for i in range(100):
            d = work / f"d{i}"
            d.mkdir()
            for j in range(100):
                (d / f"f{j}.py").write_text(f"# file {i} {j}\n")
        git("add", "-A", cwd=work)
        git("commit", "-qm", "10,000 files", cwd=work)
        git("clone", "-q", "--bare", str(work), str(origin))
        job = textwrap.dedent("""\
            jobs:
              stamp:
                schedule: "@daily"
                command: [/bin/date, "+%s.%N"]
                memory: 64MiB
            """)
        inplace = t / "inplace"
        inplace.mkdir()
        (inplace / "ephemeron.yaml").write_text(job)
        pinned = t / "pinned"
        pinned.mkdir()
        (pinned / "ephemeron.yaml").write_text(
            f"source:\n  repo: file://{origin}\n  branch: main\n  refresh: 1h\n" + job)
        cold = t / "cold"
        cold.mkdir()
        (cold / "ephemeron.yaml").write_text(
            f"source:\n  repo: file://{origin}\n  branch: main\n  refresh: 1s\n" + job)

        print(f"eph: {EPH}; each line: {n} runs; creation (store row) -> command running\n")
        print("| case | runs | median | worst |")
        print("|---|---|---|---|")
        table_row("in place (no source)",
                  [one_run(inplace / "ephemeron.yaml", t / "s1") for _ in range(n)])
        one_run(pinned / "ephemeron.yaml", t / "s2")  # clone the mirror, check out
        table_row("pinned, warm (commit checked out)",
                  [one_run(pinned / "ephemeron.yaml", t / "s2") for _ in range(n)])
        one_run(cold / "ephemeron.yaml", t / "s3")
        ms = []
        for i in range(n):
            (work / "d0" / "f0.py").write_text(f"# change {i}\n")
            git("commit", "-qam", f"change {i}", cwd=work)
            git("push", "-q", str(origin), "main", cwd=work)
            time.sleep(1.1)  # past source.refresh: the next run fetches
            ms.append(one_run(cold / "ephemeron.yaml", t / "s3"))
        table_row("pinned, cold commit of 10,000 files (fetch + checkout)", ms)
        subprocess.run(["chmod", "-R", "u+w", str(t)], check=False)


if __name__ == "__main__":
    main()
