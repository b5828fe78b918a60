"""The agent on a host that is not the scheduler's (issue 12, docs/rundir.md): spec.json
version 2's source.archive, the tar archive of exactly the run's commit that the scheduler
ships (`git archive`, as source/archive.h makes it), unpacked without git into the cache
STATE/sources/<commit>; and clock_offset, the host's clock minus the scheduler's, by which the
agent states every time it writes, and reads not_before, in the scheduler's clock.

The agent runs here with a PATH that holds tar, sh and a few tools but no git, and a state
directory of its own (the remote one), as the ssh executor's spec names it."""
import json
import os
import re
import shutil
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

import agentrun
from agentrun import AGENT, PY, SAN_CODES, events, git, result
from test_pack import OWN, make_mirror, make_origin, pack, pack_run

_run_ids = agentrun.run_ids(870000)
TOOLS = ("tar", "sh", "find", "sort", "cat", "sleep", "date", "echo")


@pytest.fixture
def host(tmp_path):
    """The worker's side: its state directory, and a bin directory with the tools and no git,
    which is the whole PATH the agent and its command get."""
    state, bindir = tmp_path / "remote", tmp_path / "bin"
    state.mkdir()
    bindir.mkdir()
    for t in TOOLS:
        os.symlink(shutil.which(t), bindir / t)
    assert shutil.which("git", path=str(bindir)) is None
    return {"state": state, "path": str(bindir)}


@pytest.fixture
def repo(tmp_path):
    """A repository with two commits: FIRST holds job.sh, run.sh (executable) and sub/data.txt;
    SECOND adds later.txt. archive(commit) is `git archive` of a commit, in the worker's
    STATE/archives, where the ssh executor puts it."""
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    (work / "job.sh").write_text("echo job\n")
    (work / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(work / "run.sh", 0o755)
    (work / "sub").mkdir()
    (work / "sub" / "data.txt").write_text("data of the first commit\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "later.txt").write_text("not in the first commit\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "two", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)

    def archive(commit, state):
        path = state / "archives" / f"{commit}.tar"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(git("archive", "--format=tar", commit, cwd=work, text=False))
        return path

    return {"first": first, "second": second, "archive": archive}


def make_run(tmp_path, host, name, **spec):
    """A version-2 run directory whose state_dir is the worker's; SPEC's "source" is
    completed with the defaults of a remote run."""
    d = tmp_path / name
    d.mkdir()
    s = {"version": 2, "run_id": next(_run_ids), "job": "t", "attempt": 1,
         "scheduled_at": 1764007200, "argv": None, "shell": None,
         "env": {"PATH": host["path"]}, "cwd": None, "memory": 0, "timeout": 60,
         "kill_grace": 1, "commit": None, "enforce": "sampled",
         "state_dir": str(host["state"])}
    s.update(spec)
    (d / "spec.json").write_text(json.dumps(s))
    return d


def run_agent(d, host, timeout=120):
    env = {k: v for k, v in os.environ.items() if k.startswith(("ASAN_", "UBSAN_", "LSAN_"))}
    env["PATH"] = host["path"]
    p = subprocess.run([*AGENT, str(d)], env=env, timeout=timeout, capture_output=True,
                       text=True)
    assert p.returncode not in SAN_CODES, p.stderr
    return p


def source_events(d):
    ev = [e for e in events(d) if e["ev"] == "phase" and e["phase"] == "source"]
    assert [e["state"] for e in ev] == ["start", "end"], ev
    return ev


def archived(host, repo, commit, keep=5):
    return {"archive": str(repo["archive"](commit, host["state"])), "commit": commit,
            "keep_worktrees": keep}


# ---- source.archive


def test_a_run_from_an_archive_sees_exactly_the_commits_files_without_git(tmp_path, host,
                                                                          repo):
    c = repo["first"]
    d = make_run(tmp_path, host, "run", source=archived(host, repo, c), workdir="sub",
                 shell="pwd; cd .. && find . | sort; cat sub/data.txt; ./run.sh")
    p = run_agent(d, host)
    res = result(d)
    assert p.returncode == 0 and res["outcome"] == "succeeded", (res, p.stderr)
    tree = host["state"] / "sources" / c
    out = [l.split(" ", 2)[2] for l in (d / "output.log").read_text().splitlines()]
    # the command works in the run's own writable copy of the shared tree, removed at its end
    assert out == [str(d / "work" / "sub"), ".", "./job.sh", "./run.sh", "./sub",
                   "./sub/data.txt", "data of the first commit", "run"], out
    assert not (d / "work").exists()
    start, end = source_events(d)
    assert start["commit"] == c
    assert end["path"] == str(tree) and end["built"] is True
    assert end["work"] == str(d / "work") and end["copy_seconds"] >= 0
    assert end["seconds"] >= 0 and res["phases"]["source"] == pytest.approx(end["seconds"],
                                                                             abs=0.002)
    # shared by later runs: read-only, as a checkout is; nothing left aside
    for root, dirs, files in os.walk(tree):
        for n in [root, *(os.path.join(root, f) for f in files)]:
            assert os.stat(n).st_mode & 0o222 == 0, n
    assert sorted(os.listdir(tree.parent)) == [c, f"{c}.build", f"{c}.lock"]


def test_a_second_run_of_the_commit_reuses_its_tree_and_old_ones_are_pruned(tmp_path, host,
                                                                             repo):
    c1, c2 = repo["first"], repo["second"]
    srcs = host["state"] / "sources"
    src = archived(host, repo, c1, keep=1)
    d = make_run(tmp_path, host, "a", source=src, shell="true")
    assert run_agent(d, host).returncode == 0, result(d)
    assert source_events(d)[1]["built"] is True
    # the archive may be gone: the tree is what a later run of the commit uses
    os.unlink(src["archive"])
    d = make_run(tmp_path, host, "b", source=src,
                 shell="cat later.txt 2>/dev/null || echo no later")
    assert run_agent(d, host).returncode == 0, result(d)
    end = source_events(d)[1]
    assert end["built"] is False and end["path"] == str(srcs / c1)
    assert (d / "output.log").read_text().endswith(" out no later\n")
    # another commit, keep_worktrees 1: the least recently used tree goes
    d = make_run(tmp_path, host, "c", source=archived(host, repo, c2, keep=1),
                 shell="cat later.txt")
    assert run_agent(d, host).returncode == 0, result(d)
    assert source_events(d)[1]["built"] is True
    assert sorted(p.name for p in srcs.iterdir() if p.is_dir()) == [c2]


def test_concurrent_runs_of_one_commit_unpack_it_once(tmp_path, host, repo):
    c = repo["first"]
    src = archived(host, repo, c)
    dirs = [make_run(tmp_path, host, f"r{i}", source=src, shell="cat job.sh")
            for i in range(3)]
    procs = [None] * len(dirs)

    def go(i):
        procs[i] = run_agent(dirs[i], host)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(dirs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.returncode for p in procs] == [0] * len(dirs), [result(d) for d in dirs]
    built = [source_events(d)[1]["built"] for d in dirs]
    assert sorted(built) == [False] * (len(dirs) - 1) + [True], built
    assert sorted(os.listdir(host["state"] / "sources")) == [c, f"{c}.build", f"{c}.lock"]


@pytest.mark.parametrize("what", ["garbage", "truncated", "missing"])
def test_a_bad_archive_fails_the_run_with_reason_source(tmp_path, host, repo, what):
    c = repo["first"]
    src = archived(host, repo, c)
    path = src["archive"]
    if what == "garbage":
        open(path, "wb").write(b"this is no tar archive\n" * 100)
    elif what == "truncated":
        data = open(path, "rb").read()
        open(path, "wb").write(data[:1536 + 100])  # the pax header, then half a file
    else:
        os.unlink(path)
    marker = tmp_path / "ran"
    d = make_run(tmp_path, host, "run", source=src, shell=f"echo > {marker}")
    p = run_agent(d, host)
    res = result(d)
    assert p.returncode == 1, p.stderr
    assert res["outcome"] == "failed" and res["failure"] == "source", res
    want = ("source: cannot read the archive " if what == "missing"
            else "source: cannot unpack ")
    assert res["reason"].startswith(want + path), res
    assert what == "missing" or "tar" in res["reason"].lower(), res
    assert "exec" not in res["phases"] and not marker.exists()
    end = source_events(d)[1]
    assert end["error"] == res["reason"]
    # nothing half-unpacked is left to be taken for the commit's tree
    left = os.listdir(host["state"] / "sources")
    assert c not in left and f"{c}.tmp" not in left, left


def test_without_tar_the_run_fails_with_reason_source(tmp_path, host, repo):
    """No tar on PATH: /bin/tar or /usr/bin/tar (an ssh session's PATH may be bare)."""
    os.unlink(os.path.join(host["path"], "tar"))
    d = make_run(tmp_path, host, "run", source=archived(host, repo, repo["first"]),
                 shell="cat job.sh")
    p = run_agent(d, host)
    res = result(d)
    if not (os.access("/bin/tar", os.X_OK) or os.access("/usr/bin/tar", os.X_OK)):
        assert res["failure"] == "source" and "no tar program" in res["reason"], res
    else:
        assert p.returncode == 0 and res["outcome"] == "succeeded", res


# ---- versions


def test_a_spec_newer_than_the_agent_is_refused_and_nothing_runs(tmp_path, host):
    marker = tmp_path / "ran"
    d = make_run(tmp_path, host, "run", version=4, shell=f"echo > {marker}",
                 source={"somewhere": "new"})
    p = run_agent(d, host)
    assert p.returncode == 2
    res = result(d)
    assert res["outcome"] == "failed" and res["version"] == 1, res
    assert "spec.json version 4 is newer than this agent (3)" in res["reason"], res
    assert "spec.json version 4 is newer than this agent (3)" in p.stderr
    assert not marker.exists()


# ---- clock_offset

LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (out|err)\+? ")


def log_times(d):
    out = []
    for line in (d / "output.log").read_text().splitlines():
        m = LOG_TS.match(line)
        assert m, line
        t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
        out.append(t.timestamp())
    return out


@pytest.mark.parametrize("offset", [3600, -3600])
def test_clock_offset_states_every_time_in_the_schedulers_clock(tmp_path, host, offset):
    """The host's clock is OFFSET ahead of the scheduler's: every time the agent writes is the
    real time minus OFFSET, within a second or two."""
    d = make_run(tmp_path, host, "run", clock_offset=offset,
                 shell="echo one; sleep 0.3; echo two >&2")
    t0 = time.time()
    p = run_agent(d, host)
    t1 = time.time()
    assert p.returncode == 0, p.stderr
    lo, hi = t0 - offset - 1.5, t1 - offset + 1.5
    res = result(d)
    assert lo <= res["started_at"] <= res["ended_at"] <= hi, (res, lo, hi)
    assert res["wall_seconds"] == pytest.approx(res["ended_at"] - res["started_at"], abs=0.01)
    ev = events(d)
    assert {e["ev"] for e in ev} >= {"start", "phase"}
    for e in ev:
        assert lo <= e["t"] <= hi, (e, lo, hi)
    times = log_times(d)
    assert len(times) == 2
    for t in times:
        assert lo <= t <= hi, (t, lo, hi)


@pytest.mark.parametrize("offset", [3600, -3600])
def test_not_before_is_honoured_in_the_schedulers_clock(tmp_path, host, offset):
    """not_before is 2 s ahead in the scheduler's clock: an hour behind or ahead in the host's.
    The command starts 2 s after the agent, neither at once nor an hour later."""
    nb = round(time.time() - offset + 2.0, 3)
    d = make_run(tmp_path, host, "run", clock_offset=offset, not_before=nb,
                 argv=["sh", "-c", "date +%s.%N"])
    t0 = time.time()
    p = run_agent(d, host, timeout=60)
    t1 = time.time()
    assert p.returncode == 0, p.stderr
    res = result(d)
    ran_at = float((d / "output.log").read_text().split()[2])  # the host's clock
    assert ran_at - offset >= nb - 0.01, (ran_at, nb)
    assert t1 - t0 < 30
    assert nb - 0.01 <= res["started_at"] <= nb + 1.5, (res, nb)
    wait = next(e for e in events(d) if e["ev"] == "wait")
    assert wait["until"] == pytest.approx(nb, abs=0.001)
    assert wait["t"] == pytest.approx(t0 - offset, abs=1.5)


def test_a_version_1_spec_knows_no_clock_offset(tmp_path, host):
    d = make_run(tmp_path, host, "run", version=1, clock_offset=3600, shell="true")
    t0 = time.time()
    assert run_agent(d, host).returncode == 0
    res = result(d)
    assert t0 - 1.5 <= res["started_at"] <= time.time() + 1.5, res


# ---- all of it: a spec as the ssh executor writes it


def test_a_remote_run_needs_nothing_of_the_schedulers_but_what_it_shipped(tmp_path, host):
    """The code as an archive and the requirements as wheels, both under the worker's state
    directory, its clock an hour ahead: the venv is built offline from the wheels in the
    unpacked tree, and the run's times are the scheduler's."""
    # the scheduler's side, as the ssh executor makes it: `eph pack` of a run pinned to it
    sched = tmp_path / "sched"
    sched.mkdir()
    bare, commit = make_origin(tmp_path, {
        "requirements.txt": "# nothing but the standard library\n",
        "job.py": "import os, sys\nprint(sys.prefix, os.getcwd())\n"})
    spec_dir = pack_run(tmp_path, sched, make_mirror(sched, bare), commit, name="sched-run",
                        runtime={"interpreter": PY, "requirements": "requirements.txt"})
    p, out = pack(spec_dir, "--python-version", OWN, env={"PIP_NO_INDEX": "1"})
    assert p.returncode == 0, p.stderr
    state = host["state"]
    wheels = state / "wheels" / "w1"
    shutil.copytree(out["wheels"], wheels)
    archive = state / "archives" / f"{commit}.tar"
    archive.parent.mkdir()
    shutil.copy(out["archive"], archive)
    d = make_run(tmp_path, host, "run", clock_offset=3600,
                 source={"archive": str(archive), "commit": commit, "keep_worktrees": 5},
                 runtime={"interpreter": PY, "requirements": "requirements.txt",
                          "wheels": str(wheels)},
                 argv=["python", "job.py"])
    t0 = time.time()
    p = run_agent(d, host, timeout=300)
    res = result(d)
    assert p.returncode == 0 and res["outcome"] == "succeeded", (res, p.stderr,
                                                                  (d / "output.log").read_text())
    venv = next(v for v in (state / "venvs").iterdir() if v.is_dir())
    assert (d / "output.log").read_text().splitlines()[-1].endswith(
        f" out {venv} {d / 'work'}")  # the run's own copy of sources/<commit>
    assert t0 - 3600 - 1.5 <= res["started_at"] <= time.time() - 3600 + 1.5, res
    assert set(res["phases"]) == {"source", "runtime", "exec"}
