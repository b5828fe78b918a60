"""Fixtures shared by the end-to-end tests: the real `eph` binary, a state directory, and a
helper to run it. The binary comes from $EPH_BIN (scripts/check sets it to the sanitizer
build); ASan and UBSan report with exit codes 86 and 87, which no eph command uses, so any
sanitizer finding fails the test that provoked it."""

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SANITIZER_EXIT = {86: "AddressSanitizer/LeakSanitizer", 87: "UndefinedBehaviorSanitizer"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timing: depends on timing (schedules, instants, races with the clock or "
        "between processes); scripts/check runs these once more beside stress-ng --cpu 2")
    config.addinivalue_line(
        "markers", "hosts: runs against test hosts (HOST_MODULES); left out of the load pass")


# Modules each of whose tests runs the daemon against the clock (the daemon's own modules say
# so with pytestmark = pytest.mark.timing; these, kept with their areas, are marked here).
TIMING_MODULES = {"test_daemon_restart.py", "test_daemon_from_repo.py", "test_daemon_mail.py",
                  "test_mail_source_alarm.py"}


# Modules whose tests run against test hosts (sshd in network namespaces): their timing tests
# are bounded by ssh's own timeouts (ConnectTimeout, ServerAlive), not by the daemon's
# scheduling, and run once, in the full run, which keeps both cores busy itself (pytest -n 2).
# The load pass leaves them out (-m "timing and not hosts"): it is the daemon's and eph run's.
HOST_MODULES = {"test_remote.py", "test_ssh_exec.py", "test_ssh_results.py"}


@pytest.hookimpl(tryfirst=True)  # before -m selects by markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in TIMING_MODULES:
            item.add_marker(pytest.mark.timing)
        if item.path.name in HOST_MODULES:
            item.add_marker(pytest.mark.hosts)


# The load pass of scripts/check (pytest -m timing, both cores busy) records here what it ran
# and what failed; test_load_pass.py, in the full run that follows, fails if anything did, so
# that the last summary line, the one CI reads, counts the load pass too.
LOAD_REPORT = os.environ.get("EPH_LOAD_REPORT")


def pytest_runtest_logreport(report):
    if LOAD_REPORT and os.environ.get("EPH_LOAD_PASS") == "1":
        if report.when == "call" or report.outcome == "failed":
            with open(LOAD_REPORT, "a") as f:
                f.write(f"{report.outcome} {report.nodeid}\n")


def pytest_sessionfinish(session, exitstatus):
    if LOAD_REPORT and os.environ.get("EPH_LOAD_PASS") == "1":
        with open(LOAD_REPORT, "a") as f:
            f.write(f"exit {int(exitstatus)}\n")


def own_cgroup_dirs():
    """The directories of the cgroups this process (and so an agent a test starts) is in,
    where they are not a hierarchy's top: v1 memory and freezer, v2. An agent makes its run's
    cgroup there (docs/rundir.md "The cgroup")."""
    mine = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctls, path = line.rstrip("\n").split(":", 2)
            mine[ctls] = path
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ")
            mroot, mnt = pre.split()[3:5]
            fstype, _, opts = post.split()[:3]
            if fstype == "cgroup2":
                path = mine.get("")
            elif fstype == "cgroup" and set(opts.split(",")) & {"memory", "freezer"}:
                path = next((p for c, p in mine.items()
                             if c and set(c.split(",")) & {"memory", "freezer"}
                             and set(c.split(",")) <= set(opts.split(","))), None)
            else:
                continue
            if path is None:
                continue
            if mroot != "/":
                if not (path + "/").startswith(mroot + "/"):
                    continue
                path = path[len(mroot):]
            if path.strip("/"):
                out.append(os.path.join(mnt, path.strip("/")))
    return out


@pytest.fixture(scope="session", autouse=True)
def no_run_cgroup_left_in_our_own():
    """A test that kills an agent with SIGKILL (and its command) leaves the run's cgroup, empty.
    Our agents make it in the cgroup the tests run in, which is not the tests' own to fill:
    at the end, the empty run-<id>-<agent pid> cgroups whose agent is gone are removed."""
    yield
    for parent in own_cgroup_dirs():
        for d in Path(parent).glob("run-*-*"):
            m = re.fullmatch(r"run-\d+-(\d+)(\.\d+)?", d.name)
            if not m or not d.is_dir() or os.path.exists(f"/proc/{m[1]}"):
                continue
            try:
                if (d / "cgroup.procs").read_text().strip() == "":
                    d.rmdir()
            except OSError:
                pass


os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:exitcode=86:abort_on_error=0")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")


def eph_bin():
    path = os.environ.get("EPH_BIN")
    if not path:
        for cand in ("build-asan/eph", "build/eph"):
            if (ROOT / cand).exists():
                path = str(ROOT / cand)
                break
    if not path or not os.access(path, os.X_OK):
        pytest.exit("set EPH_BIN to the eph binary (scripts/check does)", returncode=2)
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def eph():
    """Path of the eph binary under test."""
    return eph_bin()


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """A fresh, private state directory, exported as EPH_STATE."""
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("EPH_STATE", str(d))
    return d


def run_eph(args, *, cwd=None, env=None, timeout=60, input=None, check_sanitizers=True):
    """Runs eph with ARGS; returns the CompletedProcess (text mode). Fails the test on a
    sanitizer report, whatever the expected exit status was."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(
        [eph_bin(), *[str(a) for a in args]],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        input=input,
    )
    if check_sanitizers and p.returncode in SANITIZER_EXIT:
        sys.stderr.write(p.stderr)
        pytest.fail(f"{SANITIZER_EXIT[p.returncode]} reported a problem running eph {args}")
    return p


@pytest.fixture
def run():
    """The run_eph helper as a fixture."""
    return run_eph


def wait_for(pred, timeout=20.0, what="condition"):
    """Polls PRED until it is true; fails the test after TIMEOUT seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def pid_gone(pid):
    """Whether process PID has ended, as eph judges it (src/rundir/rundir.c): no such
    process, or a zombie that its parent has not collected yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def agent_gone(run_dir):
    """Whether the agent of RUN_DIR (its agent.pid) has ended; False before it wrote it."""
    try:
        with open(os.path.join(run_dir, "agent.pid")) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid_gone(pid)


def marker_pids(marker):
    """Processes (but this one) whose environment holds MARKER."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def store_rows(state_dir, table, where="1", args=()):
    """Rows of TABLE in STATE_DIR's store, as dicts in id order; [] while the store does not
    exist yet or is being created (the first eph that opens it makes the file, then its
    tables, one migration after another: a reader in between sees schema version 0, or a
    version whose later tables are not made yet)."""
    path = f"{state_dir}/eph.db"
    if not os.path.exists(path):
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if con.execute("PRAGMA user_version").fetchone()[0] == 0:
            return []
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in
                    con.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY id", args)]
        except sqlite3.OperationalError as e:
            if f"no such table: {table}" in str(e):
                return []
            raise
    finally:
        con.close()
