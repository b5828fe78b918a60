#!/usr/bin/python3
"""bench/conf_hostile.py: jobs files built to make the loader work hard, and how long
`eph validate` takes on each.

    bench/conf_hostile.py [EPH_BINARY]        time each case (default: build/eph)
    bench/conf_hostile.py --write DIR [--small]
                                              only write the files (--small: versions of a
                                              few KiB, for the fuzzer's seed corpus)

Each case is a file well under the 4 MiB cap whose cost once aliases are followed, or with
a naive duplicate-key check, is far above its size:
  flowkeys-N       one mapping of N keys that are flow sequences ([0]: 0, [1]: 0, ...)
  mergekeys-K-J    an anchor of K unknown keys merged (<<: *a) into J jobs
  envanchor-V-J    an anchor of V env variables used by J jobs (env: *e)
  cmdanchor-V-J    an anchor of a V-item command used by J jobs (command: *c)
  mergemany-K-J    16 anchors of K unknown keys each, all merged into each of J jobs
  keyalias-L-J     an anchored key of L bytes used as an env name by J jobs
  badjobs-J        J jobs, each with three errors
Prints one line a case: name, file size, wall seconds, exit status, lines of output.
"""

import os
import subprocess
import sys
import tempfile
import time


def flowkeys(n):
    out = ["x-keys:"]
    out += [f"  [{i}]: 0" for i in range(n)]
    out.append("jobs: {a: {schedule: '@daily', run: x}}")
    return "\n".join(out) + "\n"


def mergekeys(k, j):
    out = ["x-a: &a"]
    out += [f"  u{i}: 0" for i in range(k)]
    out.append("jobs:")
    out += [f"  j{i}: {{<<: *a, schedule: '@daily', run: x}}" for i in range(j)]
    return "\n".join(out) + "\n"


def mergemany(k, j):
    out = []
    for a in range(16):
        out.append(f"x-{a}: &a{a}")
        out += [f"  u{i}: 0" for i in range(k)]
    refs = ", ".join(f"*a{a}" for a in range(16))
    out.append("jobs:")
    out += [f"  j{i}: {{<<: [{refs}], schedule: '@daily', run: x}}" for i in range(j)]
    return "\n".join(out) + "\n"


def envanchor(v, j):
    out = ["x-e: &e"]
    out += [f"  V{i}: x" for i in range(v)]
    out.append("jobs:")
    out += [f"  j{i}: {{schedule: '@daily', run: x, env: *e}}" for i in range(j)]
    return "\n".join(out) + "\n"


def cmdanchor(v, j):
    out = ["x-c: &c"]
    out += ["  - a" for _ in range(v)]
    out.append("jobs:")
    out += [f"  j{i}: {{schedule: '@daily', command: *c}}" for i in range(j)]
    return "\n".join(out) + "\n"


def keyalias(length, j):
    out = [f"x-k: &k {'K' * length}", "jobs:"]
    out += [f"  j{i}: {{schedule: '@daily', run: x, env: {{*k : 1}}}}" for i in range(j)]
    return "\n".join(out) + "\n"


def badjobs(j):
    out = ["jobs:"]
    out += [f"  j{i}: {{schedule: '61 * * * *', run: x, memroy: 1GiB, retries: -1}}"
            for i in range(j)]
    return "\n".join(out) + "\n"


BIG = {
    "flowkeys-16000": lambda: flowkeys(16000),
    "flowkeys-32000": lambda: flowkeys(32000),
    "mergekeys-1000-3000": lambda: mergekeys(1000, 3000),
    "mergekeys-10000-2000": lambda: mergekeys(10000, 2000),
    "mergemany-1000-1000": lambda: mergemany(1000, 1000),
    "envanchor-20000-2000": lambda: envanchor(20000, 2000),
    "envanchor-256-20000": lambda: envanchor(256, 20000),
    "cmdanchor-20000-2000": lambda: cmdanchor(20000, 2000),
    "keyalias-1000000-20000": lambda: keyalias(1000000, 20000),
    "badjobs-20000": lambda: badjobs(20000),
}

SMALL = {  # each under 4 KiB: libFuzzer's -max_len when no seed is longer
    "hostile-flowkeys.yaml": lambda: flowkeys(300),
    "hostile-mergekeys.yaml": lambda: mergekeys(100, 60),
    "hostile-mergemany.yaml": lambda: mergemany(8, 16),
    "hostile-envanchor.yaml": lambda: envanchor(200, 30),
    "hostile-cmdanchor.yaml": lambda: cmdanchor(200, 40),
    "hostile-keyalias.yaml": lambda: keyalias(1500, 30),
    "hostile-badjobs.yaml": lambda: badjobs(45),
}


def write(d, small):
    os.makedirs(d, exist_ok=True)
    for name, gen in (SMALL if small else BIG).items():
        path = os.path.join(d, name if small else name + ".yaml")
        with open(path, "w") as f:
            f.write(gen())
        print(path)


def bench(eph):
    with tempfile.TemporaryDirectory(prefix="eph-bench-conf.") as d:
        print(f"{'case':24} {'size':>9} {'seconds':>8} {'exit':>4} {'lines':>6}")
        for name, gen in BIG.items():
            path = os.path.join(d, name + ".yaml")
            with open(path, "w") as f:
                f.write(gen())
            t0 = time.monotonic()
            p = subprocess.run([eph, "validate", path], capture_output=True, text=True)
            dt = time.monotonic() - t0
            size = os.path.getsize(path)
            lines = len(p.stderr.splitlines())
            print(f"{name:24} {size:9d} {dt:8.2f} {p.returncode:4d} {lines:6d}", flush=True)
            last = p.stderr.splitlines()[-1:] if p.returncode else []
            for line in last:
                print(f"    last: {line[len(d) + 1:] if line.startswith(d) else line}"[:110])


def main(argv):
    if len(argv) >= 2 and argv[0] == "--write":
        write(argv[1], "--small" in argv[2:])
        return 0
    bench(os.path.abspath(argv[0] if argv else "build/eph"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
