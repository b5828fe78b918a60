"""`eph cost` end to end (docs/cost.md): real short runs under real memory limits, recorded by
`eph run` in a real store, then priced: the host's price_monthly shared by memory-seconds,
the month projected from the schedule, the always-on server and the floor, per job and in
total, as JSON and as a table; the window of --days; bad usage."""

import json
import math
import os
import sqlite3
import textwrap

import pytest

from conftest import run_eph, store_rows
from sshpool import MiB, pool  # noqa: F401 (a fixture)

PY = "/usr/bin/python3"
MONTH = 730 * 3600
PRICE = 24.0
# holds N MiB, every page touched
HOG = """\
import sys
b = bytearray(int(sys.argv[1]) << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
print("held", sys.argv[1])
"""


def host_memory():
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGESIZE")


@pytest.fixture(scope="module")
def priced(tmp_path_factory):
    """A jobs file at PRICE a month and a store with real runs: hog twice (40 MiB under a
    128 MiB limit), free once (no limit: priced by its peak), tight once (100 MiB under
    64 MiB: oom), idle never. Returns (jobs file, state dir, environment)."""
    d = tmp_path_factory.mktemp("cost")
    state = d / "state"
    state.mkdir()
    (d / "hog.py").write_text(HOG)
    jobs = d / "ephemeron.yaml"
    jobs.write_text(textwrap.dedent(f"""\
        executors:
          local:
            price_monthly: {PRICE}
        defaults:
          profile: off
        jobs:
          hog:
            schedule: "*/10 * * * *"
            command: [{PY}, hog.py, "40"]
            memory: 128MiB
          free:
            schedule: "@every 1h"
            command: [{PY}, hog.py, "20"]
          tight:
            schedule: "0 3 * * *"
            timezone: UTC
            command: [{PY}, hog.py, "100"]
            memory: 64MiB
          idle:
            schedule: "0 0 1 * *"
            timezone: UTC
            run: "true"
        """))
    env = {"EPH_STATE": str(state)}
    for job, want in (("hog", 0), ("hog", 0), ("free", 0), ("tight", 1)):
        p = run_eph(["-f", jobs, "run", job], env=env)
        assert p.returncode == want, p.stderr
    return jobs, state, env


def cost_json(priced, *args):
    jobs, _, env = priced
    p = run_eph(["-f", jobs, "cost", "--json", *args], env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def runs_of(state, job):
    return [r for r in store_rows(state, "runs", "job = ?", (job,)) if r["started_at"]]


def share(limit, seconds):
    """A run's share of the host's price: its memory-seconds over the host's month."""
    return PRICE * limit / host_memory() * seconds / MONTH


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


def test_each_run_pays_its_share_of_the_host_by_memory_seconds(priced):
    _, state, _ = priced
    out = cost_json(priced)
    jobs = {j["job"]: j for j in out["jobs"]}
    assert out["days"] == 30 and out["month_hours"] == 730
    assert sorted(jobs) == ["free", "hog", "idle", "tight"]

    hog = runs_of(state, "hog")
    assert len(hog) == 2 and all(r["memory_limit"] == 128 * MiB for r in hog)
    secs = [r["ended_at"] - r["started_at"] for r in hog]
    j = jobs["hog"]
    assert (j["runs"], j["unpriced_runs"], j["executor"]) == (2, 0, "local")
    assert close(j["run_seconds"], sum(secs))
    assert close(j["cost"], sum(share(128 * MiB, s) for s in secs))
    assert close(j["typical_run_cost"], share(128 * MiB, sum(secs) / 2))  # the median of two
    assert j["cost"] > 0

    # no limit: the run is charged for the most it held
    (fr,) = runs_of(state, "free")
    assert fr["memory_limit"] in (None, 0) and fr["peak_bytes"] > 20 * MiB
    assert close(jobs["free"]["cost"], share(fr["peak_bytes"], fr["ended_at"] - fr["started_at"]))


def test_the_month_is_the_schedule_fires_times_the_typical_run(priced):
    jobs = {j["job"]: j for j in cost_json(priced)["jobs"]}
    assert jobs["hog"]["fires_per_month"] == 730 * 6  # */10: 6 an hour, 730 hours
    assert jobs["free"]["fires_per_month"] == 730  # @every 1h
    assert jobs["tight"]["fires_per_month"] in (30, 31)  # daily, in the next 730 hours
    assert jobs["idle"]["fires_per_month"] in (1, 2)
    for j in jobs.values():
        assert close(j["month"], j["fires_per_month"] * j["typical_run_cost"])
    assert jobs["idle"]["runs"] == 0 and jobs["idle"]["month"] == 0


def test_always_on_and_floor_are_of_the_memory_the_job_needs(priced):
    _, state, _ = priced
    jobs = {j["job"]: j for j in cost_json(priced)["jobs"]}
    hog = runs_of(state, "hog")
    need = max(r["peak_bytes"] for r in hog)
    assert 40 * MiB < need < 128 * MiB
    j = jobs["hog"]
    assert j["need"] == need
    # the smallest power of two of at least 512 MiB that holds it, at the host's rate
    assert j["always_on"] == {"memory": 512 * MiB, "size": None,
                              "price_monthly": j["always_on"]["price_monthly"]}
    assert close(j["always_on"]["price_monthly"], PRICE * 512 * MiB / host_memory())
    assert j["always_on_month"] == j["always_on"]["price_monthly"]
    # the floor: the run time at the need rounded up to the MiB, by the second
    mib = math.ceil(need / MiB) * MiB
    assert close(j["floor"], share(mib, j["run_seconds"]))
    assert close(j["floor_month"], share(mib, j["fires_per_month"] * j["typical_run_seconds"]))
    assert j["floor_month"] < j["month"] < j["always_on_month"]

    # an oom run needed more than its limit: a MiB more is the least it needs
    (t,) = runs_of(state, "tight")
    assert t["state"] == "oom"
    assert jobs["tight"]["need"] == 64 * MiB + MiB
    assert jobs["idle"]["need"] is None and jobs["idle"]["always_on"] is None


def test_the_total_adds_up_the_jobs(priced):
    out = cost_json(priced)
    t, jobs = out["total"], out["jobs"]
    assert t["runs"] == 4
    for k in ("run_seconds", "cost", "month", "floor", "floor_month"):
        assert close(t[k], sum(j[k] for j in jobs)), k
    assert close(t["always_on_month"], sum(j["always_on_month"] or 0 for j in jobs))


def test_the_table_shows_each_job_and_the_total(priced):
    jobs, _, env = priced
    p = run_eph(["-f", jobs, "cost"], env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["JOB", "EXECUTOR", "RUNS", "RUN", "TIME", "COST", "30d",
                                "MONTH", "ALWAYS-ON", "FLOOR", "NEEDS"]
    text = {ln.split()[0]: ln for ln in lines[1:6]}
    rows = {k: v.split() for k, v in text.items()}
    assert sorted(rows) == ["TOTAL", "free", "hog", "idle", "tight"]
    assert rows["hog"][1:3] == ["local", "2"]
    assert "(512 MiB)" in text["hog"]
    assert text["hog"].endswith(" MiB")  # NEEDS
    assert rows["idle"][2:] == ["0", "-", "0", "-", "-", "-", "-"]
    assert rows["TOTAL"][1] == "4"
    assert "a month of 730 hours" in p.stdout


def test_days_is_the_window_of_runs_counted(priced, tmp_path):
    jobs, state, env = priced
    # a copy of the store with one real run of hog moved 10 days back: the only way to have
    # an old run without waiting 10 days
    copy = tmp_path / "state"
    copy.mkdir()
    src = sqlite3.connect(state / "eph.db")
    dst = sqlite3.connect(copy / "eph.db")
    src.backup(dst)
    src.close()
    first = runs_of(state, "hog")[0]["id"]
    dst.execute("UPDATE runs SET started_at = started_at - 864000, "
                "ended_at = ended_at - 864000 WHERE id = ?", (first,))
    dst.commit()
    dst.close()
    env2 = {"EPH_STATE": str(copy)}

    def hog(days):
        p = run_eph(["-f", jobs, "cost", "hog", "--json", "--days", str(days)], env=env2)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert [j["job"] for j in out["jobs"]] == ["hog"]
        return out["jobs"][0]

    assert hog(30)["runs"] == 2
    assert hog(9)["runs"] == 1
    assert hog(11)["runs"] == 2


def test_without_a_price_everything_costs_nothing(tmp_path):
    f = tmp_path / "ephemeron.yaml"
    f.write_text('jobs:\n  a: { schedule: "@hourly", run: "true", memory: 64MiB }\n')
    env = {"EPH_STATE": str(tmp_path / "st")}
    os.mkdir(tmp_path / "st")
    assert run_eph(["-f", f, "run", "a"], env=env).returncode == 0
    p = run_eph(["-f", f, "cost", "--json"], env=env)
    (j,) = json.loads(p.stdout)["jobs"]
    assert (j["runs"], j["unpriced_runs"], j["cost"], j["month"]) == (1, 1, 0, 0)
    p = run_eph(["-f", f, "cost"], env=env)
    assert "1 runs were on executors without a price_monthly" in p.stdout


@pytest.mark.parametrize("args,msg", [
    (["--days", "0"], "--days must be a whole number from 1 to 36600"),
    (["--days", "x"], "--days must be a whole number from 1 to 36600"),
    (["--nope"], "unknown option '--nope'"),
    (["nojob"], 'no job "nojob"'),
])
def test_bad_usage_exits_2(tmp_path, args, msg):
    f = tmp_path / "ephemeron.yaml"
    f.write_text('jobs:\n  a: { schedule: "@hourly", run: "true" }\n')
    p = run_eph(["-f", f, "cost", *args], env={"EPH_STATE": str(tmp_path)})
    assert p.returncode == 2
    assert msg in p.stderr


def test_an_ssh_run_pays_the_host_it_ran_on(pool):  # noqa: F811 (a fixture)
    # the first host, at the executor's price, cannot hold the job: it runs on the second,
    # which has a price of its own, and a price per byte twice the first's
    pool.host(256 * MiB)
    big = pool.host(1024 * MiB, price=80)
    pool.jobs({"sum": "run: sh -c 'echo 42', memory: 300MiB"}, executor="price_monthly: 10")
    pool.daemon()
    rid = pool.run("sum")
    row = pool.wait_end(rid)
    assert row["state"] == "succeeded", (row, pool.logs())
    assert pool.host_of(rid) == big.target()
    out = json.loads(pool.eph("cost", "--json").stdout)
    (j,) = out["jobs"]
    secs = row["ended_at"] - row["started_at"]
    assert (j["executor"], j["runs"], j["unpriced_runs"]) == ("pool", 1, 0)
    assert j["cost"] > 0
    assert close(j["cost"], 80 * (300 / 1024) * secs / MONTH)
    # the always-on server at the rate of the host the job ran on
    assert close(j["always_on"]["price_monthly"], 80 * 512 / 1024)
    pool.stop()
