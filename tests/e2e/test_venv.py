"""The agent's runtime phase: a venv per (interpreter, version, requirements) under
STATE/venvs/<key>, built once under a lock (docs/rundir.md, "The runtime phase").

There is no PyPI here (no network beyond loopback), so every requirements file names its own
source: `--no-index` and `--find-links DIR`, options pip accepts inside a requirements file,
where DIR holds a wheel of a tiny package built offline from a local directory. The
interpreter is /usr/bin/python3 (Debian's, which has venv through python3-venv and pip,
setuptools and wheel to build the wheel)."""
import os
import signal
import subprocess
import time

import pytest

import agentrun
from agentrun import AGENT, PY, SAN_CODES, events, result

_run_ids = agentrun.run_ids(810000)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """A directory holding mypkg-1.0 and mypkg-2.0 wheels, built offline."""
    base = tmp_path_factory.mktemp("pkgs")
    out = base / "wheels"
    for version in ("1.0", "2.0"):
        src = base / f"mypkg-{version}"
        (src / "mypkg").mkdir(parents=True)
        (src / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools"]\n'
            'build-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "mypkg"\nversion = "{version}"\n')
        (src / "mypkg" / "__init__.py").write_text(f'VERSION = "{version}"\n')
        subprocess.run([PY, "-m", "pip", "wheel", "--no-index", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check",
                        "-w", str(out), str(src)], check=True, capture_output=True)
    assert len(list(out.glob("mypkg-*.whl"))) == 2
    return out


def reqs(path, wheels, line):
    path.write_text(f"# offline: no PyPI here\n--no-index\n--find-links {wheels}\n{line}\n")
    return path


def make_run(tmp_path, name="run", **spec):
    return agentrun.make_run(tmp_path, name, next(_run_ids),
                             **{"state_dir": str(tmp_path / "state"), **spec})


def start_agent(d):
    return subprocess.Popen([*AGENT, str(d)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def run_agent(d, timeout=300):
    p = subprocess.run([*AGENT, str(d)], timeout=timeout, capture_output=True)
    assert p.returncode not in SAN_CODES, p.stderr.decode()
    return p


def phase_events(d):
    return [(e["phase"], e["state"]) for e in events(d) if e["ev"] == "phase"]


def log(d):
    return (d / "output.log").read_text()


def venv_dirs(state):
    v = state / "venvs"
    return sorted(p.name for p in v.iterdir() if p.is_dir()) if v.is_dir() else []


PROBE = ("python -c 'import mypkg, sys, os; "
         "print(mypkg.VERSION, sys.prefix, os.environ[\"VIRTUAL_ENV\"], "
         "os.environ.get(\"PYTHONHOME\"))'")


def test_venv_built_once_and_reused_by_the_next_run(tmp_path, wheels):
    reqs(tmp_path / "requirements.txt", wheels, "mypkg==1.0")
    rt = {"interpreter": PY, "requirements": "requirements.txt"}
    env = {"PYTHONHOME": "/nonexistent"}  # would break any venv: the agent unsets it
    a = make_run(tmp_path, "a", shell=PROBE, runtime=rt, env=env)
    p = run_agent(a)
    assert p.returncode == 0, log(a)
    ra = result(a)
    assert ra["outcome"] == "succeeded" and ra["failure"] is None
    [key] = venv_dirs(tmp_path / "state")
    venv = str(tmp_path / "state" / "venvs" / key)
    assert f"out 1.0 {venv} {venv} None" in log(a)
    assert "eph: building venv" in log(a) and "Successfully installed mypkg-1.0" in log(a)
    assert set(ra["phases"]) == {"runtime", "exec"}
    assert phase_events(a) == [("runtime", "start"), ("runtime", "end"),
                               ("exec", "start"), ("exec", "end")]
    end = [e for e in events(a) if e["ev"] == "phase" and e["phase"] == "runtime"][1]
    assert end["built"] is True and end["venv"] == venv

    # the second run uses it as it is; argv mode finds `python` on the venv's PATH too
    b = make_run(tmp_path, "b", argv=["python", "-c", "import mypkg, sys; print(mypkg.VERSION, sys.prefix)"],
                 runtime=rt)
    assert run_agent(b).returncode == 0, log(b)
    rb = result(b)
    assert rb["phases"]["runtime"] < 1.0, rb["phases"]
    assert "eph: building venv" not in log(b)
    assert f"out 1.0 {venv}" in log(b)
    assert venv_dirs(tmp_path / "state") == [key]
    # its last use is the lock file's mtime (gc's LRU order)
    assert os.path.exists(venv + ".lock")


def test_changed_requirements_make_a_new_venv(tmp_path, wheels):
    r = reqs(tmp_path / "requirements.txt", wheels, "mypkg==1.0")
    rt = {"interpreter": PY, "requirements": str(r)}  # an absolute path works too
    a = make_run(tmp_path, "a", shell="python -c 'import mypkg; print(mypkg.VERSION)'", runtime=rt)
    assert run_agent(a).returncode == 0, log(a)
    first = venv_dirs(tmp_path / "state")
    reqs(r, wheels, "mypkg==2.0")
    b = make_run(tmp_path, "b", shell="python -c 'import mypkg; print(mypkg.VERSION)'", runtime=rt)
    assert run_agent(b).returncode == 0, log(b)
    assert "out 2.0" in log(b) and "eph: building venv" in log(b)
    second = venv_dirs(tmp_path / "state")
    assert len(first) == 1 and len(second) == 2 and first[0] in second


def test_failed_build_fails_the_run_with_pips_output_and_leaves_nothing(tmp_path, wheels):
    reqs(tmp_path / "requirements.txt", wheels, "no-such-package-here==1.0")
    a = make_run(tmp_path, "a", shell="echo should-not-run",
                 runtime={"interpreter": PY, "requirements": "requirements.txt"})
    p = run_agent(a)
    assert p.returncode == 1
    r = result(a)
    assert r["outcome"] == "failed" and r["failure"] == "runtime"
    assert r["reason"].startswith("runtime: pip install failed"), r["reason"]
    assert r["exit_code"] is None and "exec" not in r["phases"] and r["phases"]["runtime"] > 0
    out = log(a)
    assert "No matching distribution found for no-such-package-here" in out
    assert "eph: venv build failed; removed what it made" in out
    assert "should-not-run" not in out
    assert venv_dirs(tmp_path / "state") == []  # no half-built venv
    assert phase_events(a) == [("runtime", "start"), ("runtime", "end")]


def test_two_runs_started_together_build_the_venv_once(tmp_path, wheels):
    reqs(tmp_path / "requirements.txt", wheels, "mypkg==1.0")
    rt = {"interpreter": PY, "requirements": "requirements.txt"}
    runs = [make_run(tmp_path, n, shell="python -c 'import mypkg; print(mypkg.VERSION)'", runtime=rt)
            for n in ("a", "b")]
    procs = [start_agent(d) for d in runs]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    builds = sum(log(d).count("eph: building venv") for d in runs)
    assert builds == 1
    assert all("out 1.0" in log(d) for d in runs)
    assert len(venv_dirs(tmp_path / "state")) == 1


def test_missing_interpreter_is_a_runtime_failure(tmp_path, wheels):
    reqs(tmp_path / "requirements.txt", wheels, "mypkg==1.0")
    a = make_run(tmp_path, "a", shell="true",
                 runtime={"interpreter": "python3.99", "requirements": "requirements.txt"})
    assert run_agent(a).returncode == 1
    r = result(a)
    assert r["failure"] == "runtime"
    assert r["reason"] == 'runtime: python interpreter "python3.99" not found on PATH'


def test_missing_requirements_file_is_a_runtime_failure(tmp_path):
    a = make_run(tmp_path, "a", shell="true",
                 runtime={"interpreter": PY, "requirements": "nope.txt"})
    assert run_agent(a).returncode == 1
    r = result(a)
    assert r["failure"] == "runtime"
    assert "cannot read the requirements file" in r["reason"] and "nope.txt" in r["reason"]


def test_cancel_during_the_build_kills_it_and_cleans_up(tmp_path, wheels):
    reqs(tmp_path / "requirements.txt", wheels, "mypkg==1.0")
    a = make_run(tmp_path, "a", shell="echo should-not-run",
                 runtime={"interpreter": PY, "requirements": "requirements.txt"})
    p = start_agent(a)
    deadline = time.time() + 30
    while "eph: building venv" not in (log(a) if (a / "output.log").exists() else ""):
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == 1
    r = result(a)
    assert r["outcome"] == "cancelled", r
    assert "should-not-run" not in log(a)
    assert venv_dirs(tmp_path / "state") == []


def test_requirements_are_read_from_the_pinned_worktree(tmp_path, wheels):
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    reqs(repo / "requirements.txt", wheels, "mypkg==2.0")
    (repo / "jobs" / "train.py").write_text("import mypkg, os\nprint(mypkg.VERSION, os.getcwd())\n")
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True,
                                    text=True).stdout.strip()
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    commit = git("rev-parse", "HEAD")
    mirror = tmp_path / "state" / "mirrors" / "x.git"
    subprocess.run(["git", "clone", "-q", "--mirror", str(repo), str(mirror)], check=True)
    a = make_run(tmp_path, "a", shell="python train.py", cwd=None, workdir="jobs",
                 source={"mirror": str(mirror), "commit": commit},
                 runtime={"interpreter": PY, "requirements": "requirements.txt"})
    assert run_agent(a).returncode == 0, log(a)
    # the command runs in the run's own copy of the checkout
    assert f"out 2.0 {a}/work/jobs" in log(a)
    assert set(result(a)["phases"]) == {"source", "runtime", "exec"}
    assert [p for p, s in phase_events(a) if s == "start"] == ["source", "runtime", "exec"]


def fake_python(path, pip_step):
    """A stand-in interpreter (a shell script): tells a version, makes a venv with a copy of
    itself as bin/python, and runs PIP_STEP (shell) for `-m pip install`."""
    path.write_text("#!/bin/sh\n"
                    "case \"$1 $2\" in\n"
                    "'-c '*) echo '3.99.0 (fake)'; exit 0;;\n"
                    "'-m venv') mkdir -p \"$3/bin\" && cp \"$0\" \"$3/bin/python\"; exit $?;;\n"
                    f"'-m pip') {pip_step}; exit 0;;\n"
                    "esac\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_loser_of_a_build_race_waits_for_the_build_not_for_the_winners_run(tmp_path):
    (tmp_path / "requirements.txt").write_text("anything\n")
    rt = {"interpreter": fake_python(tmp_path / "python", "sleep 1.5"),
          "requirements": "requirements.txt"}
    # both start together and both find the venv missing (its build takes 1.5 s); the winner
    # then holds its venv for 5 s, the loser's command is quick
    a = make_run(tmp_path, "a", shell="sleep 5", runtime=rt)
    b = make_run(tmp_path, "b", shell="true", runtime=rt)
    t0 = time.monotonic()
    procs = [start_agent(a), start_agent(b)]
    ends = {}
    while len(ends) < 2:
        for i, p in enumerate(procs):
            if i not in ends and p.poll() is not None:
                ends[i] = time.monotonic() - t0
        assert time.monotonic() - t0 < 60
        time.sleep(0.02)
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err.decode()
    assert sum(log(d).count("eph: building venv") for d in (a, b)) == 1
    # b needed the build (1.5 s) and a little more, not a's whole run (6.5 s)
    assert ends[1] < 3.5, ends
    assert ends[0] >= 6.0, ends


def test_cancel_ends_the_build_even_if_a_descendant_keeps_its_output_open(tmp_path):
    (tmp_path / "requirements.txt").write_text("anything\n")
    pidfile = tmp_path / "grandchild.pid"
    # pip's stand-in leaves its process group (setsid) with our pipes as its stdout/stderr
    rt = {"interpreter": fake_python(tmp_path / "python",
                                     f"setsid sleep 30 & echo $! > {pidfile}; sleep 30"),
          "requirements": "requirements.txt"}
    a = make_run(tmp_path, "a", shell="echo should-not-run", runtime=rt)
    p = start_agent(a)
    try:
        deadline = time.time() + 30
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.time() < deadline and p.poll() is None
            time.sleep(0.05)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, _, ru = os.wait4(p.pid, 0)
        took = time.monotonic() - t0
        # the kill, then at most a 2 s grace for the output: not the 30 s of the grandchild
        assert took < 6, took
        # and no busy loop on the cancel fd meanwhile
        assert ru.ru_utime + ru.ru_stime < 1.0, (ru.ru_utime, ru.ru_stime)
        p.returncode = 0  # reaped above
        r = result(a)
        assert r["outcome"] == "cancelled", r
        assert "should-not-run" not in log(a)
    finally:
        if pidfile.exists() and pidfile.read_text().strip():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.returncode is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_a_profiled_run_in_a_venv_is_profiled_by_its_pth_even_with_python_E(tmp_path, wheels):
    # docs/profile.md: the venvs eph builds hold eph-profile.pth, which starts the hook
    # without PYTHONPATH (python -E ignores it); without EPH_PROFILE_HOOK it does nothing
    reqs(tmp_path / "requirements.txt", wheels, "mypkg==1.0")
    rt = {"interpreter": PY, "requirements": "requirements.txt"}
    (tmp_path / "big.py").write_text("def grab():\n    return bytearray(64 << 20)\n\n\n"
                                     "b = grab()\nimport time\ntime.sleep(0.5)\n")
    a = make_run(tmp_path, "a", argv=["python", "-E", str(tmp_path / "big.py")],
                 runtime=rt, profile_room=64 << 20)
    assert run_agent(a).returncode == 0, log(a)
    prof = [e for e in events(a) if e["ev"] == "profile"]
    assert prof and prof[0]["sites"][0]["function"] == "grab", events(a)
    assert prof[0]["sites"][0]["line"] == 2
    # the same venv, unprofiled: the .pth is there and does nothing
    b = make_run(tmp_path, "b", argv=["python", "-c", "import tracemalloc; "
                                      "print(tracemalloc.is_tracing())"], runtime=rt)
    assert run_agent(b).returncode == 0, log(b)
    assert "False" in log(b)
    assert not (b / "profile.json").exists()
    assert not [e for e in events(b) if e["ev"] in ("profile", "unprofiled")]
