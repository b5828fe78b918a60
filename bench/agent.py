#!/usr/bin/python3
"""Measures `eph agent`: its overhead around the command, its own memory while streaming 1 GiB
of output, and the CPU cost of sampling memory once a second. Rerunnable; prints a table.

usage: EPH_BIN=build-agent/eph /usr/bin/python3 bench/agent.py [--quick]
Environment: EPH_BIN (default build-agent/eph), BENCH_DIR (where run directories go, default
/var/tmp: a real disk, since result.json is fsynced), BENCH_SLEEP (seconds of the idle run,
default 30), EPH_ENFORCE / EPH_CGROUP_ROOT as for the agent.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

EPH = os.path.abspath(os.environ.get("EPH_BIN", "build-agent/eph"))
# What executors start: the slim eph-agent next to eph (src/eph_agent.c), else `eph agent`.
_SLIM = os.path.join(os.path.dirname(os.path.abspath(EPH)), "eph-agent")
AGENT = [_SLIM] if os.access(_SLIM, os.X_OK) else [EPH, "agent"]
BASE = os.environ.get("BENCH_DIR", "/var/tmp")
QUICK = "--quick" in sys.argv
SLEEP = int(os.environ.get("BENCH_SLEEP", "5" if QUICK else "30"))
N = 5 if QUICK else 20
_id = [int(time.time()) % 100000 * 100]


def run_dir(**spec):
    d = tempfile.mkdtemp(prefix="eph-bench-", dir=BASE)
    _id[0] += 1
    s = {"version": 1, "run_id": _id[0], "job": "bench", "attempt": 1, "scheduled_at": 0,
         "argv": None, "shell": None, "env": {}, "cwd": d, "memory": 0, "timeout": 0,
         "kill_grace": 1, "commit": None, "enforce": "auto"}
    s.update(spec)
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump(s, f)
    return d


def cleanup(d):
    subprocess.run(["rm", "-rf", d], check=True)


def overhead():
    """The command is /bin/date printing its own CLOCK_REALTIME: it runs for well under a
    millisecond, so its print time is both its exec time and its exit time."""
    to_exec, to_exit = [], []
    for _ in range(N):
        d = run_dir(argv=["/bin/date", "+%s.%N"], memory=256 << 20)
        t0 = time.time()
        p = subprocess.run([*AGENT, d])
        t_exit = time.time()
        assert p.returncode == 0, p
        with open(os.path.join(d, "output.log")) as f:
            t_cmd = float(f.read().split()[2])
        with open(os.path.join(d, "result.json")) as f:
            enforced = json.load(f)["enforced"]
        to_exec.append((t_cmd - t0) * 1000)
        to_exit.append((t_exit - t_cmd) * 1000)
        cleanup(d)
    return enforced, to_exec, to_exit


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def streaming():
    gib = 1 << 30
    prog = ("import os\nline = b'x' * 99 + b'\\n'\nblock = line * 10000\n"
            f"for _ in range({gib} // len(block)): os.write(1, block)\n"
            "os.write(1, b'y' * (10 << 20))\n")
    d = run_dir(argv=["/usr/bin/python3", "-c", prog])
    t0 = time.monotonic()
    p = subprocess.Popen([*AGENT, d])
    hwm = 0
    while p.poll() is None:
        hwm = max(hwm, vm_hwm_kib(p.pid))
        time.sleep(0.05)
    secs = time.monotonic() - t0
    size = os.path.getsize(os.path.join(d, "output.log"))
    cleanup(d)
    return hwm, secs, size


def idle_cpu():
    d = run_dir(argv=["sleep", str(SLEEP)])
    pid = os.fork()
    if pid == 0:
        os.execv(AGENT[0], [*AGENT, d])
    _, status, ru = os.wait4(pid, 0)
    # wait4 counts the agent and the children it reaped (sleep: ~0)
    cpu = ru.ru_utime + ru.ru_stime
    with open(os.path.join(d, "events.jsonl")) as f:
        mems = sum(1 for l in f if '"ev":"mem"' in l)
    cleanup(d)
    return cpu, mems


def main():
    enforced, to_exec, to_exit = overhead()
    env_cg = os.environ.get("EPH_ENFORCE")
    os.environ["EPH_ENFORCE"] = "sampled"
    _, s_exec, s_exit = overhead()
    if env_cg is None:
        del os.environ["EPH_ENFORCE"]
    else:
        os.environ["EPH_ENFORCE"] = env_cg
    hwm, secs, size = streaming()
    cpu, mems = idle_cpu()
    med = statistics.median
    print(f"eph agent ({EPH}), enforced={enforced}, {N} runs each, run dirs in {BASE}")
    print(f"{'measure':<52} {'median':>10} {'max':>10}")
    print(f"{'agent start -> command running (ms)':<52} {med(to_exec):>10.2f} {max(to_exec):>10.2f}")
    print(f"{'command exit -> agent exited, result.json renamed (ms)':<52} {med(to_exit):>10.2f} {max(to_exit):>10.2f}")
    print(f"{'  the same with EPH_ENFORCE=sampled: start (ms)':<52} {med(s_exec):>10.2f} {max(s_exec):>10.2f}")
    print(f"{'  the same with EPH_ENFORCE=sampled: end (ms)':<52} {med(s_exit):>10.2f} {max(s_exit):>10.2f}")
    print(f"{'agent VmHWM streaming %.2f GiB in %.1fs (KiB)' % (size / (1 << 30), secs):<52} {hwm:>10}")
    print(f"{'agent CPU over %ds of sleep, %d mem samples (%% core)' % (SLEEP, mems):<52} {100 * cpu / SLEEP:>10.4f}")


if __name__ == "__main__":
    main()
