"""Right-sizing end to end (docs/jobs-file.md "memory: auto"): synthetic scripts that hold a
known amount of memory, run under real cgroup limits; `memory: auto` converging on the p95 of
the peaks plus 25%, `retry_on_oom: grow` in one `eph run` and in the daemon, a need above max
ending oom at max, and what `eph sizes`, `eph runs --json` and `eph show` say."""

import json
import math
import os
import signal
import subprocess
import textwrap

import pytest

from conftest import eph_bin, store_rows, wait_for
from test_daemon import daemons  # noqa: F401 (a fixture)

PY = "/usr/bin/python3"
MiB = 1 << 20
# holds N MiB, every page touched, then exits with the code given (0 by default)
HOG = """\
import sys
b = bytearray(int(sys.argv[1]) << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
print("held", sys.argv[1])
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def jobs_file(tmp_path, body):
    (tmp_path / "hog.py").write_text(HOG)
    f = tmp_path / "ephemeron.yaml"
    f.write_text(textwrap.dedent(body))
    return f


def rows(state_dir, job):
    return store_rows(state_dir, "runs", "job = ?", (job,))


def expected(peaks, lo, hi):
    """What sizing gives after succeeded runs with PEAKS: the nearest-rank p95 of the last
    20, plus 25%, up to the MiB, within [LO, HI]."""
    last = sorted(peaks[-20:])
    p = last[math.ceil(0.95 * len(last)) - 1]
    want = math.ceil((p + math.ceil(p * 25 / 100)) / MiB) * MiB
    return min(max(want, lo), hi)


def test_auto_converges_on_the_p95_of_the_peaks_plus_25_percent(run, tmp_path, state_dir):
    jobs = jobs_file(tmp_path, f"""\
        jobs:
          steady:
            schedule: "@hourly"
            command: [{PY}, hog.py, "60"]
            memory: {{auto: true, min: 256MiB, max: 1GiB}}
        """)
    for _ in range(4):
        p = run(["-f", jobs, "run", "steady"])
        assert p.returncode == 0, p.stderr
    r = rows(state_dir, "steady")
    assert [x["state"] for x in r] == ["succeeded"] * 4
    # no history: min; then each run gets the p95 of the runs before it, plus 25%
    assert (r[0]["memory_limit"], r[0]["memory_reason"]) == (256 * MiB, "min: no history")
    for i in range(1, 4):
        peaks = [x["peak_bytes"] for x in r[:i]]
        assert 60 * MiB <= max(peaks) <= 120 * MiB, peaks
        assert r[i]["memory_limit"] == expected(peaks, 256 * MiB, 1 << 30) == 256 * MiB
        assert r[i]["memory_reason"].startswith(f"p95 of {i} run"), r[i]["memory_reason"]
        assert r[i]["memory_reason"].endswith(" + 25%, raised to min 256 MiB")
    # the need is well under min: with min 64MiB the limit comes down to it
    jobs.write_text(jobs.read_text().replace("min: 256MiB", "min: 64MiB"))
    p = run(["-f", jobs, "run", "steady"])
    assert p.returncode == 0, p.stderr
    r = rows(state_dir, "steady")
    peaks = [x["peak_bytes"] for x in r[:4]]
    assert r[4]["memory_limit"] == expected(peaks, 64 * MiB, 1 << 30)
    assert r[4]["memory_limit"] < 160 * MiB
    assert r[4]["peak_bytes"] <= r[4]["memory_limit"]
    # what eph runs --json and eph show say of it
    j = json.loads(run(["runs", "steady", "--json"]).stdout)
    newest = j[0] if isinstance(j, list) else j["runs"][0]
    assert newest["memory_limit"] == r[4]["memory_limit"]
    assert newest["memory_reason"] == r[4]["memory_reason"]
    assert newest["memory_reason"].startswith("p95 of 4 runs ")
    assert newest["memory_reason"].endswith(" + 25%")
    s = run(["show", str(r[4]["id"])])
    assert f"sized       {r[4]['memory_reason']}\n" in s.stdout

    # eph sizes: the peaks of the five runs, and what the next run gets
    out = run(["-f", jobs, "sizes", "steady", "--json"])
    assert out.returncode == 0, out.stderr
    (sz,) = json.loads(out.stdout)["jobs"]
    peaks = sorted(x["peak_bytes"] for x in r)
    assert (sz["job"], sz["runs"], sz["oom"]) == ("steady", 5, 0)
    assert (sz["peak_p50"], sz["peak_p95"], sz["peak_max"]) == (peaks[2], peaks[4], peaks[4])
    assert sz["configured"] == {"mode": "auto", "memory": None, "min": 64 * MiB,
                                "max": 1 << 30, "retry_on_oom": "none"}
    assert sz["recommended"] == expected([x["peak_bytes"] for x in r], 64 * MiB, 1 << 30)
    unused = [x["memory_limit"] - x["peak_bytes"] for x in r]
    assert sz["unused_runs"] == 5
    assert abs(sz["unused_mean_bytes"] - sum(unused) / 5) <= 1
    text = run(["-f", jobs, "sizes"]).stdout.splitlines()
    assert text[0].split() == ["JOB", "CONFIGURED", "RECOMMENDED", "RUNS", "P50", "P95",
                               "MAX", "OOM", "UNUSED/RUN", "UNUSED", "GiB-h"]
    assert text[1].split()[:5] == ["steady", "auto", "64", "MiB..1", "GiB"]
    assert f"steady: {sz['reason']}" in text
    # the next run gets what eph sizes recommended
    assert run(["-f", jobs, "run", "steady"]).returncode == 0
    assert rows(state_dir, "steady")[5]["memory_limit"] == sz["recommended"]


GROW = f"""\
    jobs:
      big:
        schedule: "@hourly"
        command: [{PY}, hog.py, "300"]
        memory: {{auto: true, min: 128MiB, max: MAX}}
        profile: off  # these runs are about sizing, not profiling (test_profile.py)
        retry_on_oom: grow
    """


def test_oom_then_grow_then_success_in_one_eph_run(run, tmp_path, state_dir):
    jobs = jobs_file(tmp_path, GROW.replace("MAX", "1GiB"))
    p = run(["-f", jobs, "run", "big"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "held 300\n"
    err = p.stderr.splitlines()
    assert "big: oom at 128 MiB: retrying with 256 MiB (retry_on_oom: grow)" in err
    assert "big: oom at 256 MiB: retrying with 512 MiB (retry_on_oom: grow)" in err
    assert err[-1].startswith("big: succeeded after ") and "of 512 MiB limit" in err[-1]
    r = rows(state_dir, "big")
    assert [(x["trigger"], x["attempt"], x["state"], x["memory_limit"] // MiB,
             x["memory_reason"]) for x in r] == [
        ("manual", 1, "oom", 128, "min: no history"),
        ("retry", 1, "oom", 256, "grown after oom at 128 MiB"),
        ("retry", 1, "succeeded", 512, "grown after oom at 256 MiB")]
    assert len({x["scheduled_at"] for x in r}) == 1
    # the next run starts from the history: its peak, and the ooms as lower bounds
    out = json.loads(run(["-f", jobs, "sizes", "--json"]).stdout)["jobs"][0]
    assert (out["runs"], out["oom"]) == (3, 2)
    assert out["recommended"] == expected([r[2]["peak_bytes"]], 128 * MiB, 1 << 30)


def test_a_need_above_max_ends_oom_at_max(run, tmp_path, state_dir):
    jobs = jobs_file(tmp_path, GROW.replace("MAX", "200MiB"))
    p = run(["-f", jobs, "run", "big", "--json"])
    assert p.returncode == 1
    assert "big: oom at 128 MiB: retrying with 200 MiB (retry_on_oom: grow)" in p.stderr
    assert "retrying with" not in p.stderr.split("200 MiB (retry_on_oom: grow)", 1)[1]
    last = json.loads(p.stdout)  # --json: the last attempt's run
    assert (last["state"], last["memory_limit"]) == ("oom", 200 * MiB)
    assert last["memory_reason"] == "grown after oom at 128 MiB"
    r = rows(state_dir, "big")
    assert [(x["state"], x["memory_limit"] // MiB) for x in r] == [("oom", 128), ("oom", 200)]


@pytest.mark.timing
def test_the_daemon_grows_an_oom_run_without_counting_a_retry(tmp_path, state_dir, daemons):  # noqa: F811
    jobs = jobs_file(tmp_path, f"""\
        jobs:
          big:
            schedule: "0 0 1 1 *"
            command: [{PY}, hog.py, "200", "3"]
            memory: {{auto: true, min: 128MiB, max: 1GiB}}
            profile: off  # these runs are about sizing, not profiling (test_profile.py)
            retry_on_oom: grow
            retries: 1
            retry_backoff: 1s
        """)
    d = daemons(jobs, state_dir)
    # --follow: the output and outcome of the run, and of the run the daemon grows it into
    p = subprocess.run([eph_bin(), "-f", str(jobs), "run", "big", "--follow"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, EPH_STATE=str(state_dir)))
    assert p.returncode == 1, p.stderr
    assert p.stdout == "held 200\n"
    err = p.stderr.splitlines()
    assert err[0].startswith("big: oom after ") and "of 128 MiB limit" in err[0], err
    assert "big: oom at 128 MiB: retrying with 256 MiB (retry_on_oom: grow)" in err
    assert err[-2].startswith("big: failed after ") and "(exit 3)" in err[-2], err
    # oom at 128 MiB; grown to 256 MiB, the same attempt, where it fails (exit 3); then its
    # one retry, attempt 2, which keeps the 256 MiB (and fails again)
    wait_for(lambda: len(rows(state_dir, "big")) >= 3 and
             rows(state_dir, "big")[2]["state"] not in ("queued", "waiting", "provisioning",
                                                        "running"), 30, "three runs")
    d.stop()
    r = rows(state_dir, "big")
    assert [(x["trigger"], x["attempt"], x["state"]) for x in r[:2]] == [
        ("manual", 1, "oom"), ("retry", 1, "failed")]
    assert (r[1]["memory_limit"], r[1]["memory_reason"]) == (256 * MiB,
                                                             "grown after oom at 128 MiB")
    assert [(x["trigger"], x["attempt"], x["state"], x["memory_limit"]) for x in r[2:]] == [
        ("retry", 2, "failed", 256 * MiB)]
    assert r[2]["memory_reason"].endswith(", kept at attempt 1's 256 MiB"), r[2]
    assert d.text().count("retry 1 of 1 in") == 1
    assert "oom at 128 MiB: retrying at once with 256 MiB (retry_on_oom: grow)" in d.text()


@pytest.mark.timing
def test_a_grow_owed_when_the_daemon_died_is_made_at_its_next_start(tmp_path, state_dir, daemons):  # noqa: F811
    (tmp_path / "slow.py").write_text("import time; time.sleep(1.5)\n" + HOG)
    jobs = jobs_file(tmp_path, f"""\
        jobs:
          big:
            schedule: "0 0 1 1 *"
            command: [{PY}, slow.py, "200"]
            memory: {{auto: true, min: 128MiB, max: 1GiB}}
            profile: off  # these runs are about sizing, not profiling (test_profile.py)
            retry_on_oom: grow
        """)
    d = daemons(jobs, state_dir)
    p = subprocess.run([eph_bin(), "-f", str(jobs), "run", "big"], capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, EPH_STATE=str(state_dir)))
    assert p.returncode == 0, p.stderr
    wait_for(lambda: [x["state"] for x in rows(state_dir, "big")] == ["running"], 15,
             "the run to start")
    d.stop(signal.SIGKILL)  # its agent goes on, and is killed by the limit meanwhile
    wait_for(lambda: os.path.exists(f"{state_dir}/runs/1/result.json"), 15, "the oom")
    d2 = daemons(jobs, state_dir, "daemon2.log")
    wait_for(lambda: len(rows(state_dir, "big")) == 2 and
             rows(state_dir, "big")[1]["state"] == "succeeded", 20, "the grown retry")
    d2.stop()
    r = rows(state_dir, "big")
    assert [(x["trigger"], x["attempt"], x["state"], x["memory_limit"] // MiB) for x in r] == [
        ("manual", 1, "oom", 128), ("retry", 1, "succeeded", 256)]
    assert r[1]["memory_reason"] == "grown after oom at 128 MiB"
    assert "oom at 128 MiB: retrying at once with 256 MiB (retry_on_oom: grow)" in d2.text()
