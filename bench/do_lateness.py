#!/usr/bin/python3
"""bench/do_lateness.py: how late a scheduled run on a `digitalocean` executor starts, though
its machine is made for it (issue 13, "On time").

The real `eph daemon` in a network namespace (tests/e2e/sshpool.py) against the test cloud
(tests/e2e/docloud.py) whose droplets boot in BOOT seconds (default 20). One job,
`@every PERIOD` (default 40 s), whose command is `date +%s.%N`: its own clock reading stands
for its execve. The daemon makes each run's droplet ahead of its instant by the boot time it
has learned (p90 of its last create → agent-ready times plus 2 s; `boot_estimate` until it
has one: set here to BOOT + 10 s, as a user would set it after a first look), and the agent
holds the command until the instant. For each of N fires (default 5): the lateness (the
scheduled instant → the command's execve) and the seconds the droplet was billed before the
instant (its create → the instant).

Needs root (namespaces) and the plain build (its eph-agent is static).
usage: /usr/bin/python3 bench/do_lateness.py [BUILD_DIR]   (default build)
Environment: BENCH_BOOT (seconds, default 20), BENCH_N (fires, default 5), BENCH_PERIOD
(seconds, default 40; it must exceed BOOT plus the lead's margin).
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BUILD = Path(os.path.abspath(ARGS[0] if ARGS else "build"))
os.environ["EPH_BIN"] = str(BUILD / "eph")
BOOT = float(os.environ.get("BENCH_BOOT", "20"))
N = int(os.environ.get("BENCH_N", "5"))
PERIOD = int(os.environ.get("BENCH_PERIOD", "40"))

from docloud import DoCloud  # noqa: E402
from sshpool import Pool  # noqa: E402


def main():
    tmp = tempfile.mkdtemp(prefix="eph-bench-dolate-")
    pool = Pool(tmp)
    cloud = DoCloud(pool.net, boot_delay=BOOT)
    token = cloud.token_file(Path(tmp) / "do-token")
    pool.jobs_file.write_text(
        f"source: {{ repo: {pool.repo}, refresh: 0 }}\n"
        "executors:\n  cloud:\n    type: digitalocean\n"
        f"    token_file: {token}\n    region: fra1\n    api_url: {cloud.url}\n"
        f"    boot_timeout: 2m\n    boot_estimate: {int(BOOT + 10)}s\n"
        f"jobs:\n  tick: {{ schedule: \"@every {PERIOD}s\", executor: cloud, "
        "run: 'date +%s.%N', memory: 300MiB }\n")
    late, ahead = [], []
    try:
        # started just after an instant (@every is aligned to the epoch), so that the first
        # fire leaves room for the lead
        time.sleep(PERIOD + 0.2 - time.time() % PERIOD)
        pool.daemon()
        seen = set()
        deadline = time.monotonic() + (N + 2) * PERIOD + BOOT + 60
        while len(late) < N and time.monotonic() < deadline:
            for r in pool.rows():
                if r["id"] in seen or r["state"] not in ("succeeded", "failed", "lost", "oom"):
                    continue
                seen.add(r["id"])
                assert r["state"] == "succeeded", (r, pool.logs())
                t_exec = float(pool.output(r["id"]).split()[-1])
                ph = pool.phases(r["id"])
                late.append(t_exec - r["scheduled_at"])
                ahead.append(ph["ahead"]["seconds"] if "ahead" in ph else 0.0)
                print(f"fire {len(late)}/{N}: late {late[-1]:.3f} s, billed before the "
                      f"instant {ahead[-1]:.1f} s", flush=True)
            time.sleep(0.5)
        pool.stop()
    finally:
        try:
            for dmn in pool.daemons:
                if dmn.p.poll() is None:
                    dmn.p.kill()
            cloud.close()
        finally:
            pool.close()
    assert late, "no fire was recorded"
    print(f"\nBOOT {BOOT:g} s, @every {PERIOD}s, {len(late)} fires, {BUILD}")
    print("| what | p50 | max |\n|---|---|---|")
    print(f"| lateness (instant → execve) | {statistics.median(late):.3f} s | {max(late):.3f} s |")
    print(f"| billed before the instant | {statistics.median(ahead):.1f} s | {max(ahead):.1f} s |")
    print("target (lateness p50 < 1 s):", "met" if statistics.median(late) < 1 else "MISSED")


if __name__ == "__main__":
    main()
