"""`eph agent RUN_DIR` end to end: real processes, real cgroups (docs/rundir.md)."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import own_cgroup_dirs

EPH = os.environ.get("EPH_BIN", "build/eph")
# What executors start: the slim eph-agent next to eph (src/eph_agent.c), else `eph agent`.
_SLIM = os.path.join(os.path.dirname(os.path.abspath(EPH)), "eph-agent")
AGENT = [_SLIM] if os.access(_SLIM, os.X_OK) else [EPH, "agent"]
PY = "/usr/bin/python3"
SAN_CODES = (86, 87)  # ASan leak / UBSan report (see meson.build's sanitize setup)
MiB = 1 << 20
_run_ids = iter(range(700000 + os.getpid() % 1000 * 100, 10**9))


def cgroup_parents():
    """Where our cgroups would be (v1 memory and freezer, v2), from mountinfo: the top-level
    <mount>/ephemeron, and the cgroup that this test (and so an agent it starts) is in, where
    an agent puts its run's cgroup when that is not the root (docs/rundir.md)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ")
            mnt = pre.split()[4]
            fstype, _, opts = post.split()[:3]
            if fstype == "cgroup2" or (fstype == "cgroup" and ("memory" in opts.split(",") or "freezer" in opts.split(","))):
                out.append(os.path.join(mnt, "ephemeron"))
    out += own_cgroup_dirs()
    root = os.environ.get("EPH_CGROUP_ROOT")
    if root:
        out.append(root)
    return out


_made = []  # run ids of this test: other agents may run on the machine at the same time


def ours(name, ids):
    """Whether cgroup NAME is a run's of IDS: run-<id>-<agent pid>[.<n>]."""
    return any(name.startswith(f"run-{i}-") for i in ids)


def leftover_cgroups(ids):
    left = []
    for p in cgroup_parents():
        if os.path.isdir(p):
            left += [os.path.join(p, d) for d in os.listdir(p)
                     if ours(d, ids) and os.path.isdir(os.path.join(p, d))]
    return left


@pytest.fixture(autouse=True)
def no_cgroup_left():
    _made.clear()
    yield
    assert leftover_cgroups(_made) == [], "cgroups left behind"


def make_run(tmp_path, name="run", **spec):
    d = tmp_path / name
    d.mkdir()
    s = {"version": 1, "run_id": spec.pop("run_id", None) or next(_run_ids), "job": "t", "attempt": 1,
         "scheduled_at": 1764007200, "argv": None, "shell": None, "env": {},
         "cwd": str(tmp_path), "memory": 0, "timeout": 0, "kill_grace": 1,
         "commit": None, "enforce": "auto"}
    s.update(spec)
    _made.append(s["run_id"])
    (d / "spec.json").write_text(json.dumps(s))
    return d


def run_agent(d, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([*AGENT, str(d)], env=e, timeout=timeout,
                       capture_output=True)
    assert p.returncode not in SAN_CODES, p.stderr.decode()
    return p


def result(d):
    return json.loads((d / "result.json").read_text())


def events(d):
    return [json.loads(l) for l in (d / "events.jsonl").read_text().splitlines()]


def exec_start(d):
    return next(e for e in events(d) if e["ev"] == "phase" and e["phase"] == "exec"
                and e["state"] == "start")


def output(d):
    return (d / "output.log").read_text(errors="strict")


def alive_with_marker(marker):
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{p}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmd and st != "Z":
            pids.append(int(p))
    return pids


ALLOC = ("import sys\n"
         "n = int(sys.argv[1]) << 20\n"
         "b = bytearray(n)\n"
         "for i in range(0, n, 4096): b[i] = 1\n"
         "print('allocated', n >> 20, flush=True)\n")


def test_allocating_300mib_under_200mib_is_oom(tmp_path):
    (tmp_path / "alloc.py").write_text(ALLOC)
    d = make_run(tmp_path, argv=[PY, "alloc.py", "300"], memory=200 * MiB)
    p = run_agent(d)
    r = result(d)
    assert p.returncode == 1
    assert r["outcome"] == "oom", r
    assert r["enforced"] in ("cgroup1", "cgroup2")
    assert r["memory_limit"] == 200 * MiB
    assert 150 * MiB <= r["peak_bytes"] <= 201 * MiB


def test_allocating_300mib_under_1gib_succeeds_with_its_peak(tmp_path):
    (tmp_path / "alloc.py").write_text(ALLOC)
    d = make_run(tmp_path, argv=[PY, "alloc.py", "300"], memory=1024 * MiB)
    p = run_agent(d)
    r = result(d)
    assert p.returncode == 0, r
    assert r["outcome"] == "succeeded"
    assert 300 * MiB <= r["peak_bytes"] <= 400 * MiB, r
    assert r["maxrss_bytes"] >= 300 * MiB
    assert "allocated 300" in output(d)


def test_job_without_memory_is_still_measured(tmp_path):
    (tmp_path / "alloc.py").write_text(ALLOC + "import time; time.sleep(1.3)\n")
    d = make_run(tmp_path, argv=[PY, "alloc.py", "50"], memory=0)
    run_agent(d)
    r = result(d)
    assert r["outcome"] == "succeeded"
    assert r["memory_limit"] == 0
    assert r["peak_bytes"] >= 50 * MiB
    mems = [e for e in events(d) if e["ev"] == "mem"]
    assert mems and max(e["bytes"] for e in mems) >= 50 * MiB


def test_sampled_fallback_enforces_the_limit(tmp_path):
    (tmp_path / "alloc.py").write_text(ALLOC + "import time; time.sleep(5)\n")
    d = make_run(tmp_path, argv=[PY, "alloc.py", "300"], memory=200 * MiB)
    p = run_agent(d, env={"EPH_ENFORCE": "sampled"})
    r = result(d)
    assert p.returncode == 1
    assert r["outcome"] == "oom", r
    assert r["enforced"] == "sampled"
    assert r["signal"] == 9
    assert r["peak_bytes"] > 200 * MiB
    assert "sampled PSS" in r["reason"], r["reason"]
    assert exec_start(d)["enforced"] == "sampled" and exec_start(d)["cgroup"] is None


def test_sampled_run_succeeds_under_its_limit(tmp_path):
    (tmp_path / "alloc.py").write_text(ALLOC + "import time; time.sleep(1.2)\n")
    d = make_run(tmp_path, argv=[PY, "alloc.py", "60"], memory=300 * MiB, enforce="sampled")
    run_agent(d)
    r = result(d)
    assert r["outcome"] == "succeeded", r
    assert r["enforced"] == "sampled"
    assert 60 * MiB <= r["peak_bytes"] <= 120 * MiB


FORKED = ("import os, time\n"
          "n = 150 << 20\n"
          "b = bytearray(n)\n"
          "for i in range(0, n, 4096): b[i] = 1\n"
          "kids = []\n"
          "for _ in range(3):\n"
          "    k = os.fork()\n"
          "    if k == 0:\n"
          "        time.sleep(3)\n"
          "        os._exit(0)\n"
          "    kids.append(k)\n"
          "print('forked', len(kids), flush=True)\n"
          "for k in kids: os.waitpid(k, 0)\n")


def test_sampled_counts_pages_shared_after_fork_once(tmp_path):
    # 150 MiB in a process and 3 forked children: 600 MiB of RSS summed, ~150 MiB of PSS
    (tmp_path / "forked.py").write_text(FORKED)
    d = make_run(tmp_path, argv=[PY, "forked.py"], memory=400 * MiB)
    p = run_agent(d, env={"EPH_ENFORCE": "sampled"})
    r = result(d)
    assert r["outcome"] == "succeeded", r
    assert p.returncode == 0
    assert r["enforced"] == "sampled"
    assert "forked 3" in output(d)
    mems = [e["bytes"] for e in events(d) if e["ev"] == "mem"]
    assert mems and 150 * MiB <= max(mems) < 300 * MiB, mems
    assert 150 * MiB <= r["peak_bytes"] < 300 * MiB, r


GRANDCHILD = ("import os, signal, sys, time\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "    os.execv('/bin/sleep', ['sleep', '1000', sys.argv[1]])\n"
              "print('started', flush=True)\n"
              "time.sleep(1000)\n")


@pytest.mark.parametrize("enforce", ["auto", "sampled"])
def test_timeout_kills_a_grandchild_that_ignores_sigterm(tmp_path, enforce):
    marker = "eph-marker-" + uuid.uuid4().hex
    (tmp_path / "gc.py").write_text(GRANDCHILD)
    d = make_run(tmp_path, argv=[PY, "gc.py", marker], timeout=2, kill_grace=1,
                 enforce=enforce)
    t0 = time.monotonic()
    p = run_agent(d)
    took = time.monotonic() - t0
    r = result(d)
    assert p.returncode == 1
    assert r["outcome"] == "timeout", r
    assert 2.0 <= took < 6
    assert alive_with_marker(marker) == []


def test_exit_code_is_recorded(tmp_path):
    d = make_run(tmp_path, shell="exit 7")
    p = run_agent(d)
    r = result(d)
    assert (p.returncode, r["outcome"], r["exit_code"], r["signal"]) == (1, "failed", 7, None)


def test_success_and_environment(tmp_path):
    d = make_run(tmp_path, shell='echo "$FOO $EPH_RUN_ID $EPH_JOB $EPH_ATTEMPT $EPH_SCHEDULED_AT $EPH_COMMIT"; pwd; cat',
                 env={"FOO": "bar"}, commit="abc123")
    rid = json.loads((d / "spec.json").read_text())["run_id"]
    p = run_agent(d)
    r = result(d)
    assert p.returncode == 0 and r["outcome"] == "succeeded" and r["exit_code"] == 0
    lines = [l.split(" ", 2) for l in output(d).splitlines()]
    assert lines[0][1:] == ["out", f"bar {rid} t 1 2025-11-24T18:00:00Z abc123"]
    assert lines[1][1:] == ["out", str(tmp_path)]
    assert len(lines) == 2  # stdin is /dev/null


def test_a_signal_is_killed(tmp_path):
    d = make_run(tmp_path, shell="kill -USR1 $$")
    run_agent(d)
    r = result(d)
    assert (r["outcome"], r["signal"], r["signal_name"], r["exit_code"]) == ("killed", 10, "SIGUSR1", None)


def test_missing_program_fails_with_a_reason(tmp_path):
    d = make_run(tmp_path, argv=["/nonexistent/prog"])
    p = run_agent(d)
    r = result(d)
    assert p.returncode == 1 and r["outcome"] == "failed"
    assert "cannot execute /nonexistent/prog" in r["reason"]


def test_bad_spec_exits_2_and_still_writes_a_result(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "spec.json").write_text('{"version": 1, "job": "x"')
    p = run_agent(d)
    assert p.returncode == 2
    r = result(d)
    assert r["outcome"] == "failed" and r["reason"].startswith("bad spec")


@pytest.mark.parametrize("agent", [[_SLIM], [EPH, "agent"]], ids=["eph-agent", "eph agent"])
@pytest.mark.parametrize("rundir", ["", "run", "./run"])
def test_an_empty_or_relative_run_dir_is_refused_before_anything_is_written(tmp_path, agent,
                                                                              rundir):
    if not os.access(agent[0], os.X_OK):
        pytest.skip("no eph-agent next to eph")
    make_run(tmp_path, argv=["/bin/true"])
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(tmp_path / "run"))
    # from the run's parent, where a relative RUN_DIR would point (and "" would write
    # agent.pid and result.json into the current directory)
    p = subprocess.run([*agent, rundir], cwd=tmp_path, timeout=30, capture_output=True)
    assert p.returncode == 2, p.stderr
    assert b"RUN_DIR must be an absolute path" in p.stderr
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(tmp_path / "run"))) == before


@pytest.mark.parametrize("field,value", [
    ("scheduled_at", 9223372036854775807),
    ("scheduled_at", 253402300800),
    ("not_before", -1),
    ("not_before", 1e300),
])
def test_an_instant_past_year_9999_is_a_bad_spec_and_nothing_runs(tmp_path, field, value):
    mark = tmp_path / "ran"
    d = make_run(tmp_path, shell=f'echo "$EPH_SCHEDULED_AT" > {mark}', **{field: value})
    p = run_agent(d)
    assert p.returncode == 2, p.stderr
    r = result(d)
    assert r["outcome"] == "failed" and r["reason"].startswith("bad spec")
    assert f'"{field}": out of range' in r["reason"]
    assert not mark.exists()


def test_the_last_second_of_year_9999_is_handed_over_as_iso_8601(tmp_path):
    mark = tmp_path / "ran"
    d = make_run(tmp_path, shell=f'echo "$EPH_SCHEDULED_AT" > {mark}', scheduled_at=253402300799)
    p = run_agent(d)
    assert p.returncode == 0, p.stderr
    assert mark.read_text() == "9999-12-31T23:59:59Z\n"


def test_spec_with_both_argv_and_shell_is_bad(tmp_path):
    d = make_run(tmp_path, shell="true", argv=["true"])
    p = run_agent(d)
    assert p.returncode == 2
    assert "exactly one" in result(d)["reason"]


def test_empty_output(tmp_path):
    d = make_run(tmp_path, argv=["true"])
    run_agent(d)
    assert result(d)["outcome"] == "succeeded"
    assert (d / "output.log").read_bytes() == b""


def test_binary_output_is_escaped_and_reconstructible(tmp_path):
    data = bytes(range(256)) + b"\n" + "é€😀".encode() + b"\xe2\x82\n"
    (tmp_path / "data.bin").write_bytes(data)
    d = make_run(tmp_path, argv=["cat", "data.bin"])
    run_agent(d)
    text = output(d)  # valid UTF-8
    assert "\\x00\\x01" in text and "\\xff" in text and "é€😀\\xe2\\x82" in text
    assert reconstruct(d, "out") == data


def reconstruct(d, stream):
    """Rebuilds a stream's bytes from output.log as docs/rundir.md says."""
    out = bytearray()
    for line in (d / "output.log").read_bytes().split(b"\n")[:-1]:
        _, tag, text = line.split(b" ", 2)
        if tag.rstrip(b"+") != stream.encode():
            continue
        i = 0
        while i < len(text):
            if text[i:i + 2] == b"\\\\":
                out += b"\\"
                i += 2
            elif text[i:i + 2] == b"\\x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
            else:
                out.append(text[i])
                i += 1
        if not tag.endswith(b"+"):
            out += b"\n"
    return bytes(out)


def test_ten_megabyte_line_without_newline(tmp_path):
    d = make_run(tmp_path, argv=[PY, "-c", "import sys; sys.stdout.write('ab' * (5 << 20))"])
    run_agent(d)
    lines = (d / "output.log").read_bytes().split(b"\n")[:-1]
    assert all(l.split(b" ")[1] == b"out+" for l in lines)
    assert all(len(l.split(b" ", 2)[2]) <= 64 * 1024 for l in lines)
    assert reconstruct(d, "out") == b"ab" * (5 << 20)


def test_partial_line_is_flushed_within_a_second(tmp_path):
    d = make_run(tmp_path, argv=[PY, "-c", "import sys, time; sys.stdout.write('waiting'); sys.stdout.flush(); time.sleep(3); print('done')"])
    p = subprocess.Popen([*AGENT, str(d)])
    try:
        deadline = time.monotonic() + 2.5
        seen = None
        while time.monotonic() < deadline:
            log = d / "output.log"
            if log.exists() and b"waiting" in log.read_bytes():
                seen = log.read_bytes()
                break
            time.sleep(0.05)
        assert seen is not None and seen.split(b" ")[1] == b"out+"
    finally:
        assert p.wait(timeout=10) == 0
    assert reconstruct(d, "out") == b"waitingdone\n"


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def test_one_gigabyte_of_output_keeps_the_agent_small(tmp_path):
    # 1 GiB of 100-byte lines, then one 10 MB line without a newline
    prog = ("import os\nline = b'x' * 99 + b'\\n'\nblock = line * 10000\n"
            "for _ in range((1 << 30) // len(block)): os.write(1, block)\n"
            "os.write(1, b'y' * (10 << 20))\n")
    d = make_run(tmp_path, argv=[PY, "-c", prog])
    p = subprocess.Popen([*AGENT, str(d)])
    hwm = 0
    while p.poll() is None:
        v = vm_hwm_kib(p.pid) if os.path.exists(f"/proc/{p.pid}/status") else None
        hwm = max(hwm, v or 0)
        time.sleep(0.2)
    assert p.returncode == 0
    size = (d / "output.log").stat().st_size
    assert size > (1 << 30)
    limit = 40 * 1024 if os.environ.get("EPH_ASAN") else 8 * 1024
    assert 0 < hwm < limit, f"agent VmHWM {hwm} KiB"


def test_cancel_with_sigterm(tmp_path):
    marker = "eph-marker-" + uuid.uuid4().hex
    (tmp_path / "gc.py").write_text(GRANDCHILD)
    d = make_run(tmp_path, argv=[PY, "gc.py", marker], kill_grace=1)
    p = subprocess.Popen([*AGENT, str(d)])
    deadline = time.monotonic() + 10
    while b"started" not in ((d / "output.log").read_bytes() if (d / "output.log").exists() else b""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 1
    r = result(d)
    assert r["outcome"] == "cancelled", r
    assert alive_with_marker(marker) == []


def test_agent_survives_the_death_of_its_starter(tmp_path):
    d = make_run(tmp_path, shell="sleep 1.5; echo finished")
    # a starter that starts the agent in its own session, then is SIGKILLed
    starter = subprocess.Popen([PY, "-c",
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([*{AGENT!r}, {str(d)!r}], start_new_session=True,"
        " stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(100)\n"], stdout=subprocess.PIPE)
    agent_pid = int(starter.stdout.readline())
    time.sleep(0.3)
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 15
    while not (d / "result.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = result(d)
    assert r["outcome"] == "succeeded", r
    assert "out finished" in output(d)
    ev = events(d)
    assert ev[0]["agent_pid"] == agent_pid
    assert [e.get("state") for e in ev if e["ev"] == "phase"] == ["start", "end"]
    pid, start = (d / "agent.pid").read_text().split()
    assert int(pid) == agent_pid


# ---- the source phase (docs/rundir.md, "spec.json: source and runtime")

def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def mirror(tmp_path):
    """A bare mirror (as source_resolve makes) of a repository with one commit."""
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    (repo / "jobs" / "hello.sh").write_text("echo hello from $(basename $(dirname $PWD))\n")
    git("init", "-q", "-b", "main", str(repo))
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one", cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo)
    m = tmp_path / "state" / "mirrors" / "x.git"
    git("clone", "-q", "--mirror", str(repo), str(m))
    return m, commit


def test_source_phase_runs_the_command_in_the_pinned_worktree(tmp_path, mirror):
    m, commit = mirror
    state = tmp_path / "state"
    d = make_run(tmp_path, shell='pwd; echo "commit=$EPH_COMMIT"; sh hello.sh', cwd=None,
                 state_dir=str(state), workdir="jobs",
                 source={"mirror": str(m), "commit": commit, "repo": "file:///x", "branch": "main"})
    p = run_agent(d)
    assert p.returncode == 0, output(d)
    r = result(d)
    assert r["outcome"] == "succeeded" and r["failure"] is None
    assert set(r["phases"]) == {"source", "exec"}
    out = output(d)
    # the command runs in the run's own copy of the shared checkout (RUN_DIR/work)
    assert f"out {d}/work/jobs\n" in out
    assert f"out commit={commit}\n" in out
    assert "out hello from work\n" in out
    assert not (d / "work").exists()
    ev = [e for e in events(d) if e["ev"] == "phase"]
    assert [(e["phase"], e["state"]) for e in ev] == [
        ("source", "start"), ("source", "end"), ("exec", "start"), ("exec", "end")]
    assert ev[1]["built"] is True and ev[1]["path"] == f"{state}/src/{commit}"
    # the hold is released when the run ends: the worktree's lock is free again
    import fcntl
    with open(f"{state}/src/{commit}.lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)

    d2 = tmp_path / "again"
    d2.mkdir()
    (d2 / "spec.json").write_text((d / "spec.json").read_text())
    assert run_agent(d2).returncode == 0
    end2 = [e for e in events(d2) if e["ev"] == "phase"][1]
    assert end2["built"] is False


def test_a_commit_that_cannot_be_checked_out_is_a_source_failure(tmp_path, mirror):
    m, _ = mirror
    d = make_run(tmp_path, shell="echo should-not-run", state_dir=str(tmp_path / "state"),
                 source={"mirror": str(m), "commit": "1" * 40})
    assert run_agent(d).returncode == 1
    r = result(d)
    assert r["outcome"] == "failed" and r["failure"] == "source"
    assert r["reason"].startswith("source: "), r["reason"]
    assert "should-not-run" not in output(d)
    assert set(r["phases"]) == {"source"}
    assert [e["phase"] for e in events(d) if e["ev"] == "phase"] == ["source", "source"]


def test_source_without_state_dir_is_a_bad_spec(tmp_path, mirror):
    m, commit = mirror
    d = make_run(tmp_path, shell="true", source={"mirror": str(m), "commit": commit})
    assert run_agent(d).returncode == 2
    assert "state_dir" in result(d)["reason"]


# ---- agents that share a run id (run ids restart at 1 in every state directory)

def wait_until(cond, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_agents_of_two_state_dirs_with_the_same_run_id_keep_their_own_cgroup(tmp_path, mirror):
    """A's source phase is held on its worktree's lock while B, with A's run id and another
    limit, starts and allocates; then A runs. Each run must get its own limit, and A's end
    must not kill B."""
    import fcntl
    m, commit = mirror
    state = tmp_path / "state"
    (tmp_path / "alloc.py").write_text(ALLOC + "import time; time.sleep(float(sys.argv[2]))\n")
    rid = next(_run_ids)
    a = make_run(tmp_path, "run-a", run_id=rid, argv=[PY, str(tmp_path / "alloc.py"), "300", "0"],
                 memory=200 * MiB, cwd=None, state_dir=str(state),
                 source={"mirror": str(m), "commit": commit})
    b = make_run(tmp_path, "run-b", run_id=rid, argv=[PY, "alloc.py", "300", "4"],
                 memory=1024 * MiB, state_dir=str(tmp_path / "state-b"))
    (state / "src").mkdir()
    lock = open(state / "src" / f"{commit}.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    pa = pb = None
    try:
        pa = subprocess.Popen([*AGENT, str(a)])
        wait_until(lambda: (a / "events.jsonl").exists() and
                   any(e.get("phase") == "source" for e in events(a)), "A's source phase")
        time.sleep(0.2)
        pb = subprocess.Popen([*AGENT, str(b)])
        wait_until(lambda: (b / "output.log").exists() and "allocated 300" in output(b),
                   "B's allocation")
        lock.close()  # A goes on: checkout, then its command, while B's still runs
        assert pa.wait(timeout=60) == 1
        assert pb.poll() is None, "B ended with A"
        assert pb.wait(timeout=60) == 0, result(b)
    finally:
        lock.close()
        for p in (pa, pb):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    ra, rb = result(a), result(b)
    assert ra["outcome"] == "oom", ra
    assert ra["memory_limit"] == 200 * MiB and ra["peak_bytes"] <= 201 * MiB
    assert rb["outcome"] == "succeeded", rb
    assert rb["peak_bytes"] >= 300 * MiB
    if ra["enforced"] != "sampled":
        ca, cb = exec_start(a)["cgroup"], exec_start(b)["cgroup"]
        assert ca != cb
        assert os.path.basename(ca).startswith(f"run-{rid}-")


def test_eph_agent_subcommand_runs_a_spec_as_eph_agent_does(tmp_path):
    """`eph agent RUN_DIR` (the same code as eph-agent) runs a run to its result."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "spec.json").write_text(json.dumps({
        "version": 1, "run_id": 1, "job": "sub", "attempt": 1, "scheduled_at": 0,
        "argv": ["/bin/echo", "via eph agent"], "shell": None, "env": {}, "cwd": str(tmp_path),
        "memory": 0, "timeout": 0, "kill_grace": 1, "commit": None, "enforce": "sampled"}))
    p = subprocess.run([EPH, "agent", str(d)], timeout=30, capture_output=True)
    assert p.returncode == 0, p.stderr
    res = json.loads((d / "result.json").read_text())
    assert res["outcome"] == "succeeded"
    assert " out via eph agent\n" in (d / "output.log").read_text()
