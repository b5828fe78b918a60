"""A run's results, end to end on the local executor: the command writes into $EPH_RESULTS
(RUN_DIR/results); `eph results` lists them and copies them out, `eph show` names them."""

import json
import os
import textwrap

import pytest

PY = "/usr/bin/python3"
WRITER = """\
import os, sys
res = os.environ["EPH_RESULTS"]
os.makedirs(os.path.join(res, "out"), exist_ok=True)
with open(os.path.join(res, "out", "report.csv"), "w") as f:
    f.write("a,b\\n1,2\\n")
with open(os.path.join(res, "big.bin"), "wb") as f:
    f.write(os.urandom(3 << 20))
sys.exit(int(sys.argv[1]))
"""

JOBS = textwrap.dedent(f"""\
    defaults:
      timeout: 2m
    jobs:
      writes:
        schedule: "@hourly"
        command: [{PY}, writer.py, "0"]
      writes-then-fails:
        schedule: "@hourly"
        command: [{PY}, writer.py, "4"]
      writes-too-much:
        schedule: "@hourly"
        command: [{PY}, writer.py, "5"]
        results_max: 1MiB
      writes-nothing:
        schedule: "@hourly"
        run: test -d "$EPH_RESULTS" && test -z "$(ls -A "$EPH_RESULTS")"
    """)


@pytest.fixture
def jobs(tmp_path, state_dir):
    (tmp_path / "writer.py").write_text(WRITER)
    f = tmp_path / "ephemeron.yaml"
    f.write_text(JOBS)
    return f


def test_results_are_listed_and_copied_out(run, jobs, state_dir, tmp_path):
    p = run(["-f", jobs, "run", "writes"])
    assert p.returncode == 0, p.stderr
    res = state_dir / "runs" / "1" / "results"
    assert (res / "out" / "report.csv").read_text() == "a,b\n1,2\n"

    p = run(["results", "1"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [ln.split()[-1] for ln in lines] == ["big.bin", "out/report.csv"]

    p = run(["results", "writes", "--json"])
    assert p.returncode == 0, p.stderr
    o = json.loads(p.stdout)
    assert o["run"] == 1 and o["dir"] == str(res)
    assert o["files"] == [{"path": "big.bin", "size": 3 << 20},
                          {"path": "out/report.csv", "size": 8}]

    to = tmp_path / "got"
    p = run(["results", "1", "--to", to])
    assert p.returncode == 0, p.stderr
    assert (to / "out" / "report.csv").read_text() == "a,b\n1,2\n"
    assert (to / "big.bin").read_bytes() == (res / "big.bin").read_bytes()

    p = run(["show", "1"])
    assert p.returncode == 0, p.stderr
    assert "out/report.csv" in p.stdout and "big.bin" in p.stdout
    p = run(["show", "1", "--json"])
    assert json.loads(p.stdout)["results"] == o["files"]


def test_a_failed_run_keeps_its_results(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "writes-then-fails"])
    assert p.returncode == 1
    p = run(["results", "1", "--json"])
    assert p.returncode == 0, p.stderr
    assert [f["path"] for f in json.loads(p.stdout)["files"]] == ["big.bin", "out/report.csv"]


def test_each_run_starts_with_an_empty_results_dir(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "writes-nothing"])
    assert p.returncode == 0, p.stderr
    p = run(["results", "1"])
    assert p.returncode == 0 and p.stdout == ""


def test_bad_usage_and_no_such_run(run, jobs, state_dir):
    assert run(["results"]).returncode == 2
    assert run(["results", "1", "--to"]).returncode == 2
    p = run(["-f", jobs, "run", "writes-nothing"])
    assert p.returncode == 0
    p = run(["results", "99"])
    assert p.returncode == 2 and "no run 99" in p.stderr


def events(state_dir, rid, ev):
    with open(state_dir / "runs" / str(rid) / "events.jsonl") as f:
        return [e for e in map(json.loads, f) if e["ev"] == ev]


def test_results_max_keeps_what_fits_and_says_what_was_left_out(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "writes-too-much"])
    assert p.returncode == 1  # and its results are still held to results_max
    p = run(["results", "1", "--json"])
    assert [f["path"] for f in json.loads(p.stdout)["files"]] == ["out/report.csv"]
    (e,) = events(state_dir, 1, "results")
    assert e["files"] == 1 and e["bytes"] == 8 and e["results_max"] == 1 << 20
    assert e["left_out"] == [{"path": "big.bin", "size": 3 << 20}]
    assert e["left_out_bytes"] == 3 << 20
    (w,) = [w for w in events(state_dir, 1, "warn") if "results_max" in w["msg"]]
    assert "1 file (3.00 MiB) left out, the first big.bin" in w["msg"]


def test_results_within_results_max_are_all_kept(run, jobs, state_dir):
    p = run(["-f", jobs, "run", "writes"])
    assert p.returncode == 0, p.stderr
    (e,) = events(state_dir, 1, "results")
    assert e == {"ev": "results", "t": e["t"], "files": 2, "bytes": (3 << 20) + 8,
                 "results_max": 1 << 30}


# ---- a pinned run works in its own copy of the shared checkout


def test_a_pinned_run_writes_next_to_its_code_in_its_own_copy(tmp_path, state_dir, run):
    from agentrun import git

    bare, work = tmp_path / "origin.git", tmp_path / "code"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    git("remote", "add", "origin", str(bare), cwd=work)
    (work / "out").mkdir()
    (work / "out" / "committed.csv").write_text("from the repository\n")
    (work / "job.py").write_text(textwrap.dedent("""\
        import os, shutil
        os.makedirs("out", exist_ok=True)
        with open("out/report.csv", "w") as f:
            f.write("x\\n")
        with open("model.pkl", "wb") as f:
            f.write(b"\\x80model")
        with open("job.py", "a") as f:
            f.write("# changed by the run\\n")
        shutil.copy("out/report.csv", os.environ["EPH_RESULTS"])
        print(os.getcwd())
        """))
    git("add", "-A", cwd=work)
    git("commit", "-qm", "job", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    jobs = tmp_path / "ephemeron.yaml"
    jobs.write_text(f"source:\n  repo: file://{bare}\n" + textwrap.dedent(f"""\
        jobs:
          pinned:
            schedule: "@hourly"
            command: [{PY}, job.py]
            results: [out/*.csv, model.pkl, "*.missing"]
        """))
    for rid in (1, 2):
        p = run(["-f", jobs, "run", "pinned"])
        assert p.returncode == 0, p.stderr
        d = state_dir / "runs" / str(rid)
        assert p.stdout == f"{d / 'work'}\n"
        assert (d / "results" / "report.csv").read_text() == "x\n"  # its own copy
        # the globs: what the command made or changed, not what the commit brought
        assert (d / "results" / "out" / "report.csv").read_text() == "x\n"
        assert (d / "results" / "model.pkl").read_bytes() == b"\x80model"
        assert not (d / "results" / "out" / "committed.csv").exists()
        listed = json.loads(run(["results", str(rid), "--json"]).stdout)["files"]
        assert sorted(f["path"] for f in listed) == ["model.pkl", "out/report.csv",
                                                     "report.csv"]
        # the copy is gone once the run is over; the shared checkout is untouched
        assert not (d / "work").exists()
        shared = state_dir / "src" / commit
        assert sorted(os.listdir(shared / "out")) == ["committed.csv"]
        assert (shared / "job.py").read_text() == (work / "job.py").read_text()


def test_results_globs_in_place_take_only_what_the_command_changed(run, state_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.csv").write_text("old\n")
    (tmp_path / "out" / "touched.csv").write_text("old\n")
    f = tmp_path / "ephemeron.yaml"
    f.write_text(textwrap.dedent("""\
        jobs:
          inplace:
            schedule: "@hourly"
            run: echo new > out/fresh.csv; echo more >> out/touched.csv; exit 2
            results: out/*.csv
        """))
    p = run(["-f", f, "run", "inplace"])
    assert p.returncode == 1  # a failed run's results are collected too
    res = state_dir / "runs" / "1" / "results" / "out"
    assert sorted(os.listdir(res)) == ["fresh.csv", "touched.csv"]
    assert (res / "touched.csv").read_text() == "old\nmore\n"


def test_results_globs_are_checked(run, state_dir, tmp_path):
    f = tmp_path / "ephemeron.yaml"
    f.write_text(textwrap.dedent("""\
        jobs:
          bad:
            schedule: "@hourly"
            run: "true"
            results: [/etc/passwd, ../up.csv, ok/*.csv]
        """))
    p = run(["-f", f, "validate"])
    assert p.returncode == 2
    assert p.stderr.count("must be a glob relative to the working directory") == 2, p.stderr
