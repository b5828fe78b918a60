#!/usr/bin/python3
"""Measures the ssh transport (src/remote/) between two network namespaces of this machine
(tests/e2e/testhosts.py: a scheduler namespace and a host with a real sshd): `ssh host true`
with exactly the options src/remote/ gives ssh, over a fresh connection and over the
multiplexed one, and the same through the driver's remote_run (libuv, pipes, classification).
p50/p99 of N runs each; prints a table. Needs root (namespaces) and a build with -Dtests=true.

usage: /usr/bin/python3 bench/remote.py [--quick] [BUILD_DIR]   (default build)
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "e2e"))
from testhosts import TestNet  # noqa: E402

QUICK = "--quick" in sys.argv
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BUILD = os.path.abspath(ARGS[0] if ARGS else "build")
DRIVER = os.path.join(BUILD, "tests", "remote", "remote_driver")
N = 20 if QUICK else 200

# Runs in the scheduler's namespace: times ARGV N times, prints the milliseconds as JSON.
TIMER = r"""
import json, subprocess, sys, time
argv, n = json.loads(sys.argv[1]), int(sys.argv[2])
ms = []
for _ in range(n):
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    ms.append((time.perf_counter() - t) * 1000)
print(json.dumps(ms))
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    tmp = tempfile.mkdtemp(prefix="eph-bench-remote-")
    net = TestNet(tmp)
    ctl = f"/tmp/eph-br-{os.getpid()}"
    try:
        h = net.host()
        opts = ["--known-hosts", str(net.known_hosts), "--identity", str(net.identity)]

        def argv(mux):
            o = opts + (["--control-dir", ctl] if mux else [])
            out = net.run([DRIVER, *o, h.target(), "argv", "true"]).stdout
            return json.loads(out)

        def timed(a, n):
            p = net.run(["/usr/bin/python3", "-c", TIMER, json.dumps(a), str(n)], timeout=3600)
            return json.loads(p.stdout)

        rows = []
        rows.append(("ssh true, fresh connection", timed(argv(False), N)))
        os.makedirs(ctl, 0o700)  # as src/remote/ makes it
        net.run(argv(True))  # the master comes up
        rows.append(("ssh true, multiplexed", timed(argv(True), N)))
        rows.append(("remote_run(true), multiplexed (driver)",
                     timed([DRIVER, *opts, "--control-dir", ctl, h.target(), "run", "true"], N)))
        print(f"{'between two namespaces, N=' + str(N):44} {'p50 ms':>8} {'p99 ms':>8}")
        for name, ms in rows:
            print(f"{name:44} {pct(ms, 50):8.1f} {pct(ms, 99):8.1f}")
        net.run(argv(True)[:-1] + ["-O", "exit", h.addr], check=False)
    finally:
        net.close()
        shutil.rmtree(ctl, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
