#!/usr/bin/python3
"""bench/results_remote.py: 1 GiB of results collected on a test host and brought back, beside
plain scp of the same bytes (`scp -O`, after each run), and the peak RSS of the agents on the host (issue 17, "Tests and
measures": within 1.2x of scp, under 10 MiB).

A test host of tests/e2e/testhosts.py (a network namespace with a real sshd and a memory
cgroup; the scheduler in a namespace of its own), the real `eph daemon` with an ssh executor
(tests/e2e/sshpool.py's pool). The job writes 1 GiB of random bytes (incompressible) to
out/big.bin in its working directory and names it in `results: [out/*.bin]`, so the agent
collects it into the run's results/ after the command, and the follower (`eph-agent --follow`)
streams it back over the run's ssh channel, in frames, into the scheduler's run directory.

  collect     the command's end (the exec phase's end event) -> the agent's `results` event
  bring back  the `results` event -> the last byte of results/big.bin in the scheduler's run
              directory (its size polled every 20 ms)
  scp         `scp -O` of a 1 GiB file of the same kind from the host's home, same ssh options
              (a fresh connection: its handshake counts, a few ms)
  agent RSS   VmHWM of every eph-agent process on the host (the run's agent, the follower,
              and any child of theirs before it execs), polled every 20 ms while the run lasts:
              the highest each reached, with its arguments

Needs root (namespaces) and the plain build (its eph-agent is static); about 40 s and 3 GiB of
disk under /var/tmp (a real disk); three runs, the medians.
usage: /usr/bin/python3 bench/results_remote.py [BUILD_DIR]   (default build)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BUILD = Path(os.path.abspath(ARGS[0] if ARGS else "build"))
os.environ["EPH_BIN"] = str(BUILD / "eph")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "e2e"))
from sshpool import MiB, Pool  # noqa: E402

SIZE = 1 << 30
REPEAT = 3


def events(run_dir):
    out = []
    with open(Path(run_dir) / "events.jsonl") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def agent_argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    # the agent shipped to the host: DIR/<instance>/files/<sha256> (docs/ssh-executor.md)
    if argv and b"/.ephemeron/" in argv[0] and b"/files/" in argv[0]:
        return [a.decode(errors="replace") for a in argv if a]
    return None


def one_run(pool, h, tmp, i):
    """One run of the job, watched; then scp of its result from the host. The times."""
    rid = pool.run("big")
    local = pool.state / "runs" / str(rid) / "results" / "out" / "big.bin"
    peaks, done, last_byte = {}, threading.Event(), [None]

    def watch():
        while not done.is_set():
            for pid in h.procs():
                argv = agent_argv(pid)
                hwm = vm_hwm_kib(pid) if argv else None
                if hwm is not None:
                    role = "agent " + argv[1] + (" (its child, before exec)"
                                                 if parent_is_agent(pid) else "")
                    peaks[role] = max(peaks.get(role, 0), hwm)
            try:
                if last_byte[0] is None and local.stat().st_size == SIZE:
                    last_byte[0] = time.time()
            except OSError:
                pass
            time.sleep(0.02)

    t = threading.Thread(target=watch)
    t.start()
    row = pool.wait_end(rid, timeout=600)
    deadline = time.monotonic() + 60
    while last_byte[0] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    done.set()
    t.join()
    assert row["state"] == "succeeded", (row, pool.logs())
    assert local.stat().st_size == SIZE
    ev = events(pool.state / "runs" / str(rid))
    exec_end = next(e["t"] for e in ev if e.get("ev") == "phase" and
                    e.get("phase") == "exec" and e.get("state") == "end")
    collected = next(e["t"] for e in ev if e.get("ev") == "results")

    # scp of the same bytes (the run's result, put in the host's home) from the host
    shutil.copyfile(local, h.home / "bench.bin")
    dst = tmp / "scp.bin"
    opts = pool.net.ssh_args(h)[:-1]
    t0 = time.time()
    pool.net.run(["scp", "-q", "-O", *opts, f"{h.target()}:bench.bin", str(dst)], timeout=600)
    scp_s = time.time() - t0
    assert dst.stat().st_size == SIZE
    dst.unlink()
    (h.home / "bench.bin").unlink()
    shutil.rmtree(pool.state / "runs" / str(rid) / "results")  # the disk, for the next
    back = last_byte[0] - collected
    return {"collect": collected - exec_end, "back": back, "scp": scp_s, "ratio": back / scp_s,
            "peaks": peaks}


def parent_is_agent(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            ppid = next(int(l.split()[1]) for l in f if l.startswith("PPid:"))
    except (OSError, StopIteration):
        return False
    return agent_argv(ppid) is not None


def main():
    if os.geteuid() != 0:
        sys.exit("bench/results_remote.py: needs root (network namespaces)")
    if not (BUILD / "eph-agent").exists():
        sys.exit(f"no {BUILD}/eph-agent: build it first (meson setup build && ninja -C build)")
    tmp = Path(tempfile.mkdtemp(prefix="eph-bench-results-", dir="/var/tmp"))
    pool = Pool(tmp)
    try:
        h = pool.host(2048 * MiB)
        pool.jobs({"big": 'run: "mkdir -p out && head -c %d /dev/urandom > out/big.bin", '
                          'memory: 1GiB, results: [out/*.bin], results_max: 2GiB' % SIZE})
        pool.daemon()
        # a warm host: the agent and the commit are shipped, the connection is up
        warm = pool.run("big")
        pool.wait_end(warm, timeout=300)

        rows = []
        for i in range(REPEAT):
            rows.append(one_run(pool, h, tmp, i))
        pool.stop()
        med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
        print(f"1 GiB of results from a test host (2 cores, namespaces over veth; median of "
              f"{REPEAT}, each run followed by its scp)")
        print(f"  {'collect (command end -> results event)':<44} {med('collect'):8.2f} s")
        print(f"  {'bring back (results event -> last byte)':<44} {med('back'):8.2f} s   "
              + " ".join(f"{r['back']:.2f}" for r in rows))
        print(f"  {'scp of the same bytes':<44} {med('scp'):8.2f} s   "
              + " ".join(f"{r['scp']:.2f}" for r in rows))
        print(f"  {'bring back / scp':<44} {med('ratio'):8.2f} x   (target <= 1.2)   "
              + " ".join(f"{r['ratio']:.2f}" for r in rows))
        peaks = {}
        for r in rows:
            for role, kib in r["peaks"].items():
                peaks[role] = max(peaks.get(role, 0), kib)
        for role, kib in sorted(peaks.items()):
            print(f"  peak RSS {kib / 1024:6.2f} MiB (target < 10), the highest of the runs: "
                  f"{role}")
    finally:
        pool.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
