"""The memory profiler's overhead (docs/profile.md): time and peak of a profiled run against an
unprofiled one, for two scripts: a few large buffers, and a million small objects.

Runs each script directly with /usr/bin/python3 as the agent starts a profiled run: eph's hook
(src/agent/eph_profile.py) as sitecustomize.py first on PYTHONPATH and EPH_PROFILE_DIR set.
Peak = the child's maximum RSS (wait4). Takes the median of --reps runs of each.

    /usr/bin/python3 bench/profile.py [--reps 5]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK = os.path.join(HERE, "..", "src", "agent", "eph_profile.py")

SCRIPTS = {
    "large buffers (8 x 64 MiB)": """\
def load():
    bufs = []
    for _ in range(8):
        b = bytearray(64 << 20)
        b[::4096] = b"x" * len(b[::4096])
        bufs.append(b)
    return bufs
held = load()
print(sum(len(b) for b in held))
""",
    "a million small objects": """\
def build():
    return [{"id": i, "name": "item%d" % i} for i in range(1_000_000)]
held = build()
print(len(held))
""",
}


def measure(script, env):
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/python3", script], env=env, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    took = time.monotonic() - t0
    if status != 0:
        sys.exit(f"{script} failed: status {status}")
    return took, ru.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="eph-bench-profile-")
    try:
        hook = os.path.join(tmp, "hook")
        os.mkdir(hook)
        shutil.copy(HOOK, os.path.join(hook, "sitecustomize.py"))
        base = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "EPH_PROFILE_DIR")}
        prof = dict(base, PYTHONPATH=hook, EPH_PROFILE_DIR=tmp)
        print(f"{'script':30} {'time off':>9} {'time on':>9} {'+time':>7} "
              f"{'peak off':>9} {'peak on':>9} {'+peak':>7}")
        for name, text in SCRIPTS.items():
            path = os.path.join(tmp, "s.py")
            with open(path, "w") as f:
                f.write(text)
            off = [measure(path, base) for _ in range(args.reps)]
            on = [measure(path, prof) for _ in range(args.reps)]
            t_off = statistics.median(x[0] for x in off)
            t_on = statistics.median(x[0] for x in on)
            m_off = statistics.median(x[1] for x in off)
            m_on = statistics.median(x[1] for x in on)
            print(f"{name:30} {t_off:8.2f}s {t_on:8.2f}s {100 * (t_on / t_off - 1):6.0f}% "
                  f"{m_off / 2**20:6.0f}MiB {m_on / 2**20:6.0f}MiB "
                  f"{100 * (m_on / m_off - 1):6.0f}%")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
