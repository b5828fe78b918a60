#!/usr/bin/python3
"""Measures eph-cloud, the process each call of the digitalocean executor to the API starts:
its wall time per operation against the test cloud on loopback (so the process's own cost:
exec, libcurl's start, the token file, JSON both ways), its peak RSS, and what a page of 200
droplets costs to read. The provider's own latency (tens to hundreds of ms from a droplet)
comes on top. Rerunnable; prints a table.

usage: /usr/bin/python3 bench/cloud.py [--quick]
Needs GNU time (/usr/bin/time, Debian's `time`) for the RSS.
Environment: EPH_CLOUD (default build/eph-cloud: a plain build, not the sanitizer's).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from docloud import DoCloud  # noqa: E402

CLOUD = os.path.abspath(os.environ.get("EPH_CLOUD", "build/eph-cloud"))
N = 10 if "--quick" in sys.argv else 50


def call(cloud, tok, op, **kw):
    req = json.dumps({"api_url": cloud.url, "token_file": tok, **kw})
    t0 = time.perf_counter()
    p = subprocess.run([CLOUD, op], input=req, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    return dt, json.loads(p.stdout)


def peak_rss_kib(cloud, tok, op, **kw):
    """eph-cloud's own peak RSS, by GNU time (a child's ru_maxrss seen from Python counts the
    forked Python before exec)."""
    req = json.dumps({"api_url": cloud.url, "token_file": tok, **kw})
    p = subprocess.run(["/usr/bin/time", "-f", "%M", CLOUD, op], input=req,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return int(p.stderr.strip().splitlines()[-1])


def main():
    cloud = DoCloud(None, boot_delay=0.05)
    tmp = tempfile.mkdtemp(prefix="eph-bench-cloud-")
    tok = str(cloud.token_file(os.path.join(tmp, "tok")))
    try:
        _, out = call(cloud, tok, "create", name="bench", region="fra1", size="s-1vcpu-1gb",
                      image="debian-12-x64", tags=["bench"])
        did = out["id"]
        cloud.wait_active(did)
        for i in range(399):
            cloud.create(name=f"b-{i}", region="fra1", size="s-1vcpu-1gb",
                         image="debian-12-x64", tags=["bench"])
        rows = []
        for op, kw in [("get", {"id": did}), ("sizes", {}), ("list", {"tag": "bench"})]:
            times = [call(cloud, tok, op, **kw)[0] for _ in range(N)]
            rows.append((op, statistics.median(times), max(times),
                         peak_rss_kib(cloud, tok, op, **kw)))
        print(f"eph-cloud against the test cloud on loopback, {N} calls each ({CLOUD})")
        print(f"{'op':<8} {'median ms':>10} {'max ms':>8} {'peak RSS MiB':>13}")
        for op, med, mx, rss in rows:
            print(f"{op:<8} {med * 1000:>10.1f} {mx * 1000:>8.1f} {rss / 1024:>13.1f}")
        print("sizes: 14 sizes, one page; list: 400 droplets, 2 pages of 200 (the test cloud's "
              "full droplet objects, ~2.5 KB each)")
    finally:
        cloud.close()


if __name__ == "__main__":
    main()
