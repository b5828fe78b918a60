#!/usr/bin/python3
"""bench/do_exec.py: the `digitalocean` executor's own overhead on top of a machine's boot.

The real `eph daemon` in a network namespace (tests/e2e/sshpool.py) against the test cloud
(tests/e2e/docloud.py: a droplet is a test host whose sshd answers BOOT seconds after its
create). Each of N manual runs (`eph run JOB` through the daemon) of a job whose command is
`date +%s.%N` (its own clock reading stands for its execve and for its exit) gets a droplet
of its own, made, booted, shipped to (the agent, the commit's code archive: every droplet is
new, so nothing is warm) and deleted. From the cloud's own clock (same machine, one clock):

  before create  the run's row (created_at) → the create reaching the cloud: size, the two
                 ssh-keygen, the user data;
  boot           the create → the droplet's sshd answering: the machine's own (BOOT plus the
                 test host's start), not ours;
  ours           sshd answering → the command's execve: the executor noticing the droplet is
                 active (a get every DO_POLL_MS, 1 s), the ssh probe, then the ssh executor's
                 contact, ship of agent and code, start. The polling bounds it from below by
                 nothing and from above by one poll interval plus a probe: on average half a
                 poll is waited;
  create → exec  the create → the execve, less BOOT: the issue's figure (ours plus the test
                 host's own start);
  delete         the command's exit → the DELETE reaching the cloud.

Needs root (namespaces) and the plain build (its eph-agent is static).
usage: /usr/bin/python3 bench/do_exec.py [--quick] [--log] [BUILD_DIR]   (default build)
--log prints the daemon's log at the end (each machine's steps, with their times).
Environment: BENCH_BOOT (seconds, default 5), BENCH_N (runs, default 10; --quick 3).
"""
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))

QUICK = "--quick" in sys.argv
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BUILD = Path(os.path.abspath(ARGS[0] if ARGS else "build"))
os.environ["EPH_BIN"] = str(BUILD / "eph")
BOOT = float(os.environ.get("BENCH_BOOT", "5"))
N = int(os.environ.get("BENCH_N", "3" if QUICK else "10"))

from docloud import DoCloud  # noqa: E402
from sshpool import Pool  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


def main():
    tmp = tempfile.mkdtemp(prefix="eph-bench-do-")
    pool = Pool(tmp)
    cloud = DoCloud(pool.net, boot_delay=BOOT)
    token = cloud.token_file(Path(tmp) / "do-token")
    text = (f"source: {{ repo: {pool.repo}, refresh: 0 }}\n"
            "executors:\n  cloud:\n    type: digitalocean\n"
            f"    token_file: {token}\n    region: fra1\n    api_url: {cloud.url}\n"
            "    boot_timeout: 2m\n"
            "jobs:\n  a: { schedule: \"0 0 1 1 *\", executor: cloud, "
            "run: 'date +%s.%N', memory: 300MiB }\n")
    pool.jobs_file.write_text(text)
    rows = {k: [] for k in ("before create", "boot", "ours", "create → exec", "delete")}
    try:
        pool.daemon()
        for i in range(N):
            rid = pool.run("a")
            row = pool.wait_end(rid, timeout=BOOT + 120)
            assert row["state"] == "succeeded", row
            did = json.loads(row["handle"])["droplet"]
            end = time.monotonic() + 30
            while time.monotonic() < end and not any(
                    r.path.endswith(f"/droplets/{did}") for r in
                    cloud.api_requests("DELETE")):
                time.sleep(0.05)
            d = cloud.droplet(did)
            t_exec = float(pool.output(rid).split()[-1])
            t_del = next(r.t for r in cloud.api_requests("DELETE")
                         if r.path.endswith(f"/droplets/{did}"))
            rows["before create"].append(d.created - row["created_at"])
            rows["boot"].append(d.ssh_at - d.created)
            rows["ours"].append(t_exec - d.ssh_at)
            rows["create → exec"].append(t_exec - d.created - BOOT)
            rows["delete"].append(t_del - t_exec)
            print(f"run {i + 1}/{N}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in rows.items()),
                  flush=True)
            while cloud.droplets():
                time.sleep(0.05)
        if "--log" in sys.argv:
            print(pool.logs())
        pool.stop()
    finally:
        try:
            for dmn in pool.daemons:
                if dmn.p.poll() is None:
                    dmn.p.kill()
            cloud.close()
        finally:
            pool.close()
    print(f"\nBOOT {BOOT:g} s, {N} runs, {BUILD}")
    print("| what | p50 | p95 | max |\n|---|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):.3f} s | {pct(v, 95):.3f} s | {max(v):.3f} s |")
    ok = statistics.median(rows["create → exec"]) + statistics.median(rows["delete"]) < 3 \
        and statistics.median(rows["delete"]) < 0.5
    print("targets (create → exec + delete < 3 s, delete < 0.5 s, medians):",
          "met" if ok else "MISSED")


if __name__ == "__main__":
    main()
