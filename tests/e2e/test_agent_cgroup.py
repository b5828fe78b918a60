"""Where the agent puts its run's memory cgroup (docs/rundir.md "The cgroup"): under the
cgroup it was started in when that is not the root and it may write it, so that a host's or a
container's own limit holds for the run; else the top-level <mount>/ephemeron. Real cgroups:
these machines have cgroup v1 (the v2 path is decided in tests/unit/test_cgroup.c and run in
the cgroup v2 VM test)."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from test_agent import (AGENT, ALLOC, MiB, PY, SAN_CODES, _made, events, exec_start, make_run,
                        output, result)

V1_MEMORY = Path("/sys/fs/cgroup/memory")


def v1_memory():
    if not (V1_MEMORY / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory (the v2 path is "
                    "the VM test's)")
    return V1_MEMORY


def _pids(cg):
    try:
        return [int(p) for p in (cg / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _remove(cg):
    """Removes CG and what is below it, first killing what is in them: all of it was started
    by this test (the cgroups are this test's)."""
    if not cg.is_dir():
        return
    for sub in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _remove_one(sub)
    _remove_one(cg)


def _remove_one(cg):
    deadline = time.monotonic() + 10
    while True:
        for pid in _pids(cg):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def host_cgroup():
    """A memory cgroup made by the test, as a host's or a container's: made with its limit,
    removed at the end with everything below it, whatever happened."""
    made = []

    def make(limit):
        cg = v1_memory() / f"eph-test-{os.getpid()}-host{len(made)}"
        cg.mkdir()
        made.append(cg)
        (cg / "memory.limit_in_bytes").write_text(str(limit))
        if (cg / "memory.memsw.limit_in_bytes").exists():
            (cg / "memory.memsw.limit_in_bytes").write_text(str(limit))
        return cg

    yield make
    for cg in made:
        _remove(cg)


NOBODY = 65534


@pytest.fixture
def user_dir():
    """A directory the user nobody owns, for a run of an agent that runs as nobody."""
    d = Path(tempfile.mkdtemp(prefix="eph-test-cgroup-"))
    d.chmod(0o755)
    os.chown(d, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d)


def run_agent_in(cg, d, timeout=120, user=None):
    """The agent started inside memory cgroup CG: joined before exec, as a login on a host
    whose sshd runs in the host's cgroup; as USER (a uid) if given."""
    if user is not None:
        for p in [d, *d.iterdir()]:
            os.chown(p, user, user)
    as_user = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}",
                                       "--clear-groups", "--"]
    p = subprocess.run(["sh", "-c", 'echo $$ >"$0/cgroup.procs" && exec "$@"', str(cg),
                        *as_user, *AGENT, str(d)], timeout=timeout, capture_output=True)
    assert p.returncode not in SAN_CODES, p.stderr.decode()
    return p


def test_a_run_started_in_a_host_cgroup_is_placed_under_it_and_held_to_its_limit(
        tmp_path, host_cgroup):
    host = host_cgroup(200 * MiB)
    (tmp_path / "alloc.py").write_text(ALLOC)
    # the run's own limit (1 GiB) would let 300 MiB through: the host's 200 MiB does not
    d = make_run(tmp_path, argv=[PY, "alloc.py", "300"], memory=1024 * MiB)
    p = run_agent_in(host, d)
    r = result(d)
    cg = exec_start(d)["cgroup"]
    assert cg is not None and Path(cg).parent == host, (cg, events(d))
    assert Path(cg).name.startswith(f"run-{_made[-1]}-")
    assert p.returncode == 1
    assert r["outcome"] == "oom", r
    assert r["enforced"] == "cgroup1"
    assert "oom_kill" in r["reason"], r
    assert r["memory_limit"] == 1024 * MiB
    assert r["peak_bytes"] <= 201 * MiB, r
    assert "allocated 300" not in output(d)
    # the run's cgroup is gone, and nothing else of the run is left in the host's
    assert [c.name for c in host.iterdir() if c.is_dir()] == []
    assert _pids(host) == []


def test_a_run_under_the_host_limit_succeeds_there(tmp_path, host_cgroup):
    host = host_cgroup(200 * MiB)
    (tmp_path / "alloc.py").write_text(ALLOC)
    d = make_run(tmp_path, argv=[PY, "alloc.py", "50"], memory=1024 * MiB)
    run_agent_in(host, d)
    r = result(d)
    assert Path(exec_start(d)["cgroup"]).parent == host
    assert r["outcome"] == "succeeded", r
    assert 50 * MiB <= r["peak_bytes"] <= 200 * MiB, r
    assert r["peak_method"] == "cgroup1 memory.max_usage_in_bytes"
    assert [c.name for c in host.iterdir() if c.is_dir()] == []


def test_a_run_started_in_the_root_cgroup_keeps_the_top_level_place(tmp_path):
    root = v1_memory()
    (tmp_path / "alloc.py").write_text(ALLOC)
    d = make_run(tmp_path, argv=[PY, "alloc.py", "50"], memory=200 * MiB)
    run_agent_in(root, d)
    r = result(d)
    cg = Path(exec_start(d)["cgroup"])
    assert cg.parent == root / "ephemeron", cg
    assert cg.name.startswith(f"run-{_made[-1]}-")
    assert r["outcome"] == "succeeded", r
    assert not cg.exists()


def test_a_user_runs_under_a_host_cgroup_delegated_to_it(user_dir, host_cgroup):
    host = host_cgroup(200 * MiB)
    # delegated as systemd does it on v1's name=systemd hierarchy: the directory and the
    # file that moves processes are the user's
    for p in (host, host / "cgroup.procs"):
        os.chown(p, NOBODY, NOBODY)
    (user_dir / "alloc.py").write_text(ALLOC)
    d = make_run(user_dir, argv=[PY, "alloc.py", "300"], memory=1024 * MiB,
                 cwd=str(user_dir))
    run_agent_in(host, d, user=NOBODY)
    r = result(d)
    assert Path(exec_start(d)["cgroup"]).parent == host, events(d)
    assert r["enforced"] == "cgroup1"
    assert r["outcome"] == "oom", r
    assert [c.name for c in host.iterdir() if c.is_dir()] == []


def test_a_user_with_no_cgroup_to_write_samples_and_says_why(user_dir, host_cgroup):
    host = host_cgroup(200 * MiB)  # root's
    (user_dir / "alloc.py").write_text(ALLOC)
    d = make_run(user_dir, argv=[PY, "alloc.py", "20"], memory=100 * MiB, cwd=str(user_dir))
    run_agent_in(host, d, user=NOBODY)
    r = result(d)
    assert r["enforced"] == "sampled" and exec_start(d)["cgroup"] is None
    assert r["outcome"] == "succeeded", r
    warns = [e["msg"] for e in events(d) if e["ev"] == "warn"]
    assert len(warns) == 1 and "sampling the process tree instead" in warns[0], warns
    # each place tried, and why not
    assert f"own cgroup {host}: Permission denied" in warns[0], warns
    assert f"{V1_MEMORY}/ephemeron: Permission denied" in warns[0], warns
