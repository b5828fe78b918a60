"""`eph pack RUN_DIR --json`: what a remote run carries, made on the scheduler from the run's
spec.json (issue 12; docs/cli.md "eph pack"): the archive of exactly its commit from the mirror,
and the wheels of its requirements for the worker's Python, in one JSON line; failures name
their reason (`source` for the code, `runtime` for the wheels), and a SIGTERM ends it at once
with what it runs, as the daemon's stop needs from the children it starts.

Real git repositories and mirrors (made by `eph fetch`), a real pip: no package index is
reachable here, so the scheduler's pip is pointed at a directory of wheels the test builds
(PIP_NO_INDEX, PIP_FIND_LINKS, as a user's pip configuration would point at an index)."""
import fcntl
import json
import os
import signal
import subprocess
import time

import pytest

import agentrun
from agentrun import PY, git
from conftest import eph_bin, pid_gone, run_eph, wait_for

OWN = subprocess.run([PY, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                     capture_output=True, text=True, check=True).stdout.strip()
_run_ids = agentrun.run_ids(840000)


def make_origin(tmp_path, files, name="origin"):
    """A bare repository TMP_PATH/NAME.git whose main branch has FILES ({path: text}) in one
    commit; returns (bare, commit)."""
    bare, work = tmp_path / f"{name}.git", tmp_path / f"{name}-work"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    git("remote", "add", "origin", str(bare), cwd=work)
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)
    return bare, git("rev-parse", "HEAD", cwd=work)


def make_mirror(state, bare):
    """The scheduler's mirror of BARE in STATE, as runs make it (`eph fetch`); its path."""
    p = run_eph(["fetch", "--repo", f"file://{bare}", "--json"], env={"EPH_STATE": state})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["mirror"]


def pack_run(tmp_path, state, mirror, commit, name="run", **spec):
    """A run directory whose spec.json pins MIRROR's COMMIT, with the scheduler's STATE."""
    return agentrun.make_run(tmp_path, name, next(_run_ids), argv=["true"],
                             state_dir=str(state),
                             source={"mirror": str(mirror), "commit": commit}, **spec)


def pack(run_dir, *args, env=None, timeout=300):
    """`eph pack RUN_DIR ARGS --json`: (the process, its one JSON line parsed)."""
    p = run_eph(["pack", run_dir, *args, "--json"], env=env, timeout=timeout)
    lines = p.stdout.splitlines()
    assert len(lines) == 1, (p.stdout, p.stderr)
    return p, json.loads(lines[0])


def _project(base, name, version, deps=()):
    src = base / f"{name}-{version}"
    (src / name).mkdir(parents=True)
    dep_list = ", ".join(f'"{d}"' for d in deps)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{dep_list}]\n')
    (src / name / "__init__.py").write_text(f'VERSION = "{version}"\n')
    return src


@pytest.fixture
def index(tmp_path):
    """A directory standing for the package index, seen by the scheduler's pip only: mypkg
    1.0 (which depends on mydep) and mydep 0.5, as wheels built offline."""
    base = tmp_path / "pkgsrc"
    out = tmp_path / "index"
    for src in (_project(base, "mypkg", "1.0", ["mydep"]), _project(base, "mydep", "0.5")):
        subprocess.run([PY, "-m", "pip", "wheel", "--no-index", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check", "-w", str(out),
                        str(src)], check=True, capture_output=True)
    assert sorted(os.listdir(out)) == ["mydep-0.5-py3-none-any.whl",
                                       "mypkg-1.0-py3-none-any.whl"]
    return out


def pip_env(index):
    """The scheduler's pip configuration: no index reachable here, the test's directory."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}


# ---- the code

def test_the_archive_is_made_once_per_commit_and_the_answer_is_one_line(tmp_path, state_dir):
    bare, commit = make_origin(tmp_path, {"run.sh": "echo run\n", "jobs/a.py": "print(1)\n"})
    mirror = make_mirror(state_dir, bare)
    d = pack_run(tmp_path, state_dir, mirror, commit)

    p, out = pack(d)
    assert p.returncode == 0, p.stderr
    archive = str(state_dir / "archives" / f"{commit}.tar")
    # no requirements: nothing but the archive
    assert out == {"archive": archive, "commit": commit, "wheels": None, "pip": None,
                   "python": None, "files": []}
    assert open(archive, "rb").read() == git(f"--git-dir={mirror}", "archive", "--format=tar",
                                             commit, text=False)
    # no checkout without requirements: the archive is all a worker needs of the code
    assert not (state_dir / "src").exists()

    # cached: the second run of the commit ships the same file, not a new one
    ino = os.stat(archive).st_ino
    p, again = pack(d)
    assert p.returncode == 0 and again == out, p.stderr
    assert os.stat(archive).st_ino == ino

    # without --json: for a person
    p = run_eph(["pack", d])
    assert p.returncode == 0 and p.stdout == f"archive {archive} (cached)\n", p


def test_a_commit_missing_from_the_mirror_fails_with_reason_source(tmp_path, state_dir):
    bare, _ = make_origin(tmp_path, {"a.txt": "a\n"})
    mirror = make_mirror(state_dir, bare)
    missing = "1" * 40
    d = pack_run(tmp_path, state_dir, mirror, missing)
    p, out = pack(d)
    assert p.returncode == 1, p.stderr
    assert out["failure"] == "source", out
    assert out["error"].startswith(f"cannot archive commit {missing} of {mirror}: "), out
    # nothing half-made is left for the next run to take
    assert not os.path.exists(state_dir / "archives" / f"{missing}.tar")
    assert not os.path.exists(state_dir / "archives" / f"{missing}.tar.tmp")


# ---- the dependencies

def test_wheels_for_the_workers_python_from_a_checkout_of_the_commit(tmp_path, state_dir, index):
    # the requirements file names another by a path relative to itself: pip runs in the source
    bare, commit = make_origin(tmp_path, {"requirements.txt": "-r deps/base.txt\n",
                                          "deps/base.txt": "mypkg==1.0\n"})
    mirror = make_mirror(state_dir, bare)
    d = pack_run(tmp_path, state_dir, mirror, commit,
                 runtime={"interpreter": PY, "requirements": "requirements.txt"})

    p, out = pack(d, "--python-version", OWN, env=pip_env(index))
    assert p.returncode == 0, p.stderr
    wheels = out["wheels"]
    assert os.path.dirname(wheels) == str(state_dir / "wheels")
    assert out["python"] == OWN and out["pip"].startswith("pip-")
    names = sorted(["mydep-0.5-py3-none-any.whl", "mypkg-1.0-py3-none-any.whl", out["pip"]])
    assert out["files"] == [{"path": f"{wheels}/{n}", "name": n} for n in names]
    assert sorted(os.listdir(wheels)) == names
    assert out["archive"] == str(state_dir / "archives" / f"{commit}.tar")
    # the checkout pip ran in, as the local agent makes it
    assert (state_dir / "src" / commit / "deps" / "base.txt").is_file()

    # cached per requirements and version: the same set, even with the "index" gone
    ino = os.stat(wheels).st_ino
    p, again = pack(d, "--python-version", OWN, env={"PIP_NO_INDEX": "1"})
    assert p.returncode == 0 and again == out, p.stderr
    assert os.stat(wheels).st_ino == ino

    # a file JSON cannot name (not UTF-8) is a failure, not a file left off the list
    with open(os.path.join(os.fsencode(wheels), b"bad-\xff.whl"), "wb"):
        pass
    p, out = pack(d, "--python-version", OWN, env={"PIP_NO_INDEX": "1"})
    assert p.returncode == 1 and out["failure"] == "runtime", out
    assert out["error"].startswith(f"cannot list {wheels}: "), out


def test_pips_words_that_are_not_utf8_still_make_one_json_line(tmp_path, state_dir):
    fake = tmp_path / "python3"  # the spec's interpreter: tells its version, then pip fails
    fake.write_text('#!/bin/sh\nif [ "$1" = -c ]; then printf "%s\\n\\n/none\\n" ' + OWN
                    + '; exit 0; fi\nprintf "ERROR: no \\377 wheel\\n" >&2\nexit 1\n')
    fake.chmod(0o755)
    bare, commit = make_origin(tmp_path, {"requirements.txt": "mypkg\n"})
    mirror = make_mirror(state_dir, bare)
    d = pack_run(tmp_path, state_dir, mirror, commit,
                 runtime={"interpreter": str(fake), "requirements": "requirements.txt"})
    p, out = pack(d, "--python-version", OWN)
    assert p.returncode == 1, p.stderr
    assert out == {"error": "pip wheel failed: no ? wheel", "failure": "runtime"}


def test_an_absolute_requirements_path_and_no_python_version(tmp_path, state_dir, index):
    req = tmp_path / "reqs.txt"
    req.write_text("mydep\n")
    bare, commit = make_origin(tmp_path, {"a.txt": "a\n"})
    mirror = make_mirror(state_dir, bare)
    d = pack_run(tmp_path, state_dir, mirror, commit,
                 runtime={"interpreter": PY, "requirements": str(req)})
    # the worker's Python must be said: the scheduler's may not be it
    p = run_eph(["pack", d, "--json"], env=pip_env(index))
    assert p.returncode == 2 and p.stdout == "", p
    assert "--python-version" in p.stderr
    assert not (state_dir / "archives").exists()  # checked before anything is made

    p, out = pack(d, "--python-version", f"{OWN}.1", env=pip_env(index))
    assert p.returncode == 0, p.stderr
    assert out["python"] == OWN
    assert [f["name"] for f in out["files"]] == sorted(["mydep-0.5-py3-none-any.whl",
                                                        out["pip"]])


def test_a_requirement_without_a_wheel_fails_with_reason_runtime_naming_it(tmp_path,
                                                                           state_dir, index):
    bare, commit = make_origin(tmp_path, {"requirements.txt": "mypkg==1.0\nnosuchpkg>=2\n"})
    mirror = make_mirror(state_dir, bare)
    d = pack_run(tmp_path, state_dir, mirror, commit,
                 runtime={"interpreter": PY, "requirements": "requirements.txt"})
    p, out = pack(d, "--python-version", OWN, env=pip_env(index))
    assert p.returncode == 1, p.stderr
    assert out["failure"] == "runtime", out
    assert out["error"].startswith(f'no wheel for requirement "nosuchpkg>=2" (Python {OWN})'), out
    # nothing half-made is left for the next run to take
    assert [n for n in os.listdir(state_dir / "wheels")
            if not n.endswith((".lock", ".build"))] == []
    # another version than the scheduler's: test_ship.py


def test_usage_and_specs_it_cannot_pack(tmp_path, state_dir):
    p = run_eph(["pack"])
    assert p.returncode == 2 and "RUN_DIR" in p.stderr, p
    p = run_eph(["pack", tmp_path / "nowhere", "--json"])
    assert p.returncode == 2 and p.stdout == "" and "spec.json" in p.stderr, p
    d = agentrun.make_run(tmp_path, "inplace", next(_run_ids), argv=["true"])
    p = run_eph(["pack", d, "--json"])
    assert p.returncode == 2 and "no pinned commit" in p.stderr, p
    p = run_eph(["pack", d, "--bogus"])
    assert p.returncode == 2 and "unknown option" in p.stderr, p


# ---- a stop

def _start(run_dir, *args, env=None):
    return subprocess.Popen([eph_bin(), "pack", str(run_dir), *args, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def _stop(proc):
    """SIGTERM to PROC, which must end within 2 s: its answer and its time."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    took = time.monotonic() - t0
    assert proc.returncode not in agentrun.SAN_CODES, err
    assert took < 2.0, (took, err)
    return json.loads(out), err


def test_sigterm_ends_it_at_once_with_the_pip_it_runs(tmp_path, state_dir):
    """The scheduler's interpreter (the spec's, a path that exists here) hangs, with a child
    of its own: a SIGTERM ends pack at once, and both are gone (their process group killed)."""
    pids = tmp_path / "pids"
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\necho $$ >> {pids}\nsleep 300 &\necho $! >> {pids}\nwait\n")
    fake.chmod(0o755)
    bare, commit = make_origin(tmp_path, {"requirements.txt": "mypkg\n"})
    mirror = make_mirror(state_dir, bare)
    d = pack_run(tmp_path, state_dir, mirror, commit,
                 runtime={"interpreter": str(fake), "requirements": "requirements.txt"})
    proc = _start(d, "--python-version", OWN)
    try:
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2,
                 what="the interpreter and its child")
        out, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert out == {"error": "stopped by a signal while making the wheels",
                   "failure": "runtime"}
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda: pid_gone(pid), timeout=2, what=f"process {pid} to end")


def test_sigterm_ends_the_wait_for_anothers_build(tmp_path, state_dir):
    """Another process builds the commit's archive (it holds the build lock): pack waits for
    it, and a SIGTERM ends the wait at once."""
    bare, commit = make_origin(tmp_path, {"a.txt": "a\n"})
    mirror = make_mirror(state_dir, bare)
    d = pack_run(tmp_path, state_dir, mirror, commit)
    (state_dir / "archives").mkdir(mode=0o700)
    with open(state_dir / "archives" / f"{commit}.tar.build", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = _start(d)
        try:
            time.sleep(0.5)
            assert proc.poll() is None, proc.communicate()
            out, err = _stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 1, err
    assert out == {"error": "stopped by a signal while making the archive",
                   "failure": "source"}
    # once the other is done, the next pack makes it
    p, out = pack(d)
    assert p.returncode == 0 and out["archive"].endswith(f"/{commit}.tar"), p.stderr
