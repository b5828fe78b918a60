"""What a remote run carries, so that a worker brings nothing from the internet (issue 12,
docs/source.md "What a remote run carries"): the commit as a tar archive made from the
scheduler's mirror, and the requirements as wheels (with a pip wheel) made on the scheduler,
from which the agent builds its venv offline, with neither pip nor ensurepip installed.

The scheduler's side is `eph pack RUN_DIR --json` (test_pack.py), which calls archive_get() and
wheels_prepare() for a run's spec.json as the daemon will, in a child; the worker's side is
the real agent, in the source unpacked from the archive, with spec.json's runtime.wheels.
There is no package index here: the scheduler's pip is pointed at a directory of wheels the
test builds (PIP_NO_INDEX, PIP_FIND_LINKS: the user's pip configuration on the scheduler), and
that directory is gone before the agent runs.

The worker's Python: /usr/bin/python3 in a private mount namespace where ensurepip, the
system's pip and Debian's python-wheels are replaced by packages that write a marker and
raise on import. A control in the same namespace shows `python3 -m venv` (with pip) and
`python3 -m pip` then fail; the agent's run must leave no marker: nothing imported them."""
import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import agentrun
from agentrun import AGENT, PY, SAN_CODES, events, git, result
from conftest import run_eph
from test_pack import (OWN, index, make_mirror, make_origin, pack, pack_run,  # noqa: F401
                       pip_env)

STDLIB = subprocess.run([PY, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                        capture_output=True, text=True, check=True).stdout.strip()
_run_ids = agentrun.run_ids(830000)


# ---- the code: an archive of exactly the run's commit

def test_archive_is_git_archive_of_the_commit_from_the_mirror(tmp_path, state_dir):
    bare, work = tmp_path / "origin.git", tmp_path / "work"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    git("remote", "add", "origin", str(bare), cwd=work)
    (work / "jobs").mkdir()
    (work / "jobs" / "train.py").write_text("print('train')\n")
    (work / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(work / "run.sh", 0o755)
    (work / "requirements.txt").write_text("mypkg==1.0\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    (work / "later.txt").write_text("not in the run's commit\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "two", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)

    # the scheduler's mirror, as runs make it
    mirror = make_mirror(state_dir, bare)
    assert mirror == str(state_dir / "mirrors" / (
        hashlib.sha256(f"file://{bare}".encode()).hexdigest()[:32] + ".git"))

    d = pack_run(tmp_path, state_dir, mirror, commit)
    p, answer = pack(d)
    assert p.returncode == 0, p.stderr
    path = answer["archive"]
    assert path == str(state_dir / "archives" / f"{commit}.tar") and answer["commit"] == commit
    data = open(path, "rb").read()
    # byte for byte git archive's, of that commit
    assert data == git(f"--git-dir={mirror}", "archive", "--format=tar", commit, text=False)

    out = tmp_path / "extracted"
    with tarfile.open(path) as t:
        t.extractall(out)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir())
    assert files == sorted(git(f"--git-dir={mirror}", "ls-tree", "-r", "--name-only",
                               commit).splitlines())
    assert files == ["jobs/train.py", "requirements.txt", "run.sh"]  # no .git, no later.txt
    assert not (out / ".git").exists()
    for f in files:
        assert (out / f).read_bytes() == git(f"--git-dir={mirror}", "show", f"{commit}:{f}",
                                             text=False)
    assert os.access(out / "run.sh", os.X_OK)

    # cached by commit: the second run ships the same file, not a new one
    ino = os.stat(path).st_ino
    p, again = pack(d)
    assert p.returncode == 0 and again == answer, p.stderr
    assert os.stat(path).st_ino == ino
    assert sorted(os.listdir(state_dir / "archives")) == [
        f"{commit}.tar", f"{commit}.tar.build", f"{commit}.tar.lock"]

    # eph gc: the archive of a commit no job uses goes (this jobs file has no source)
    (tmp_path / "ephemeron.yaml").write_text("jobs:\n  j: { schedule: '@daily', run: 'true' }\n")
    p = run_eph(["-f", tmp_path / "ephemeron.yaml", "gc", "--json"])
    assert p.returncode == 0, p.stderr
    removed = json.loads(p.stdout)["removed"]
    assert {"kind": "archive", "path": path} in [
        {"kind": r["kind"], "path": r["path"]} for r in removed]
    assert not os.path.exists(path)


# ---- the dependencies: wheels made on the scheduler, a venv built offline on the worker

def hide_dir(tmp_path):
    """Packages that stand in for ensurepip and pip on the worker: importing one writes its
    name into the marker file and fails."""
    hide = tmp_path / "hide"
    for name in ("ensurepip", "pip"):
        (hide / name).mkdir(parents=True, exist_ok=True)
        (hide / name / "__init__.py").write_text(
            "import os\n"
            f"open(os.environ.get('HIDE_MARK', {str(tmp_path / 'mark')!r}), 'a')"
            f".write('{name}\\n')\n"
            f"raise ImportError('{name} is not installed on this worker')\n")
    return hide


def worker(tmp_path, argv, env):
    """Runs ARGV as on a worker without ensurepip or pip: /usr/bin/python3 in a private mount
    namespace where they (and Debian's python-wheels) are hidden."""
    hide = hide_dir(tmp_path)
    script = (f"mount --bind {hide}/ensurepip {STDLIB}/ensurepip && "
              f"mount --bind {hide}/pip /usr/lib/python3/dist-packages/pip && "
              f"mount --bind {hide} /usr/share/python-wheels && exec \"$@\"")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           "sh", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def worker_env():
    """The agent's environment on a worker: no pip configuration pointing anywhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}


def make_run(tmp_path, name, **spec):
    return agentrun.make_run(tmp_path, name, next(_run_ids),
                             **{"cwd": str(tmp_path / "src"),
                                "state_dir": str(tmp_path / "worker"), **spec})


def scheduler(tmp_path, requirements):
    """The scheduler's side of a run whose commit has REQUIREMENTS as requirements.txt: its
    state directory TMP_PATH/sched (with the mirror) and the run directory eph pack reads."""
    sched = tmp_path / "sched"
    sched.mkdir()
    bare, commit = make_origin(tmp_path, {"requirements.txt": requirements,
                                          "job.py": "print('job')\n"})
    mirror = make_mirror(sched, bare)
    d = pack_run(tmp_path, sched, mirror, commit, name="sched-run",
                 runtime={"interpreter": PY, "requirements": "requirements.txt"})
    return sched, d


def ship(tmp_path, out):
    """What the executor does with eph pack's answer OUT: the worker's source root
    TMP_PATH/src unpacked from the archive, and the wheels copied to TMP_PATH/shipped-wheels
    (every file OUT lists); returns the latter."""
    with tarfile.open(out["archive"]) as t:
        t.extractall(tmp_path / "src")
    shipped = tmp_path / "shipped-wheels"
    shipped.mkdir()
    for f in out["files"]:
        shutil.copy(f["path"], shipped / f["name"])
    return shipped


def test_wheels_then_offline_venv_without_ensurepip_or_pip(tmp_path, index):
    sched, spec_dir = scheduler(tmp_path, "mypkg==1.0\n")
    p, out = pack(spec_dir, "--python-version", OWN, env=pip_env(index))
    assert p.returncode == 0, p.stderr
    wheels, pipwhl = out["wheels"], out["pip"]
    assert out["python"] == OWN
    assert os.path.dirname(wheels) == str(sched / "wheels")
    names = sorted(os.listdir(wheels))
    # the requirement, its dependency, and a pip to install them with
    assert names == sorted(["mydep-0.5-py3-none-any.whl", "mypkg-1.0-py3-none-any.whl",
                            pipwhl]) and pipwhl.startswith("pip-")
    assert [f["name"] for f in out["files"]] == names
    # made once per (requirements, version)
    ino = os.stat(wheels).st_ino
    p, again = pack(spec_dir, "--python-version", OWN, env=pip_env(index))
    assert p.returncode == 0 and again == out, p.stderr
    assert os.stat(wheels).st_ino == ino

    # the worker: the source from the archive, nothing but the shipped set (the "index" is
    # gone, no PIP_* settings)
    shipped = ship(tmp_path, out)
    assert (tmp_path / "src" / "requirements.txt").read_text() == "mypkg==1.0\n"
    shutil.rmtree(index)
    mark = tmp_path / "mark"
    env = worker_env()
    # the control: on this worker, neither a venv with pip nor the system's pip can be had
    ctl = worker(tmp_path, [PY, "-c", "import subprocess, sys; sys.exit(subprocess.run("
                            f"[{PY!r}, '-m', 'venv', {str(tmp_path / 'ctl')!r}]).returncode)"],
                 env)
    assert ctl.returncode != 0 and "ensurepip" in ctl.stdout + ctl.stderr, ctl
    ctl = worker(tmp_path, [PY, "-m", "pip", "--version"], env)
    assert ctl.returncode != 0, ctl
    assert mark.read_text().split() == ["ensurepip", "pip"]
    mark.unlink()

    d = make_run(tmp_path, "run", argv=["python", "-c",
                                        "import mypkg, mydep, sys; "
                                        "print('got', mypkg.VERSION, mydep.VERSION, sys.prefix)"],
                 runtime={"interpreter": PY, "requirements": "requirements.txt",
                          "wheels": str(shipped)})
    p = worker(tmp_path, [*AGENT, str(d)], env)
    assert p.returncode not in SAN_CODES, p.stderr
    log = (d / "output.log").read_text()
    res = result(d)
    assert res["outcome"] == "succeeded", (res, log)
    venvs = tmp_path / "worker" / "venvs"
    venv = next(v for v in venvs.iterdir() if v.is_dir())
    assert f"got 1.0 0.5 {venv}" in log
    assert "-m venv --without-pip" in log and "--no-index" in log
    assert not mark.exists(), mark.read_text()  # neither ensurepip nor pip was imported
    assert not (venv / "bin" / "pip").exists()  # pip ran from its wheel, installed nowhere
    ev = events(d)
    start = next(e for e in ev if e.get("phase") == "runtime" and e.get("state") == "start")
    assert start["wheels"] == str(shipped)


def test_a_requirement_missing_from_the_wheels_fails_the_runtime_phase_naming_it(tmp_path,
                                                                                  index):
    _, spec_dir = scheduler(tmp_path, "mypkg==1.0\n")
    p, out = pack(spec_dir, "--python-version", OWN, env=pip_env(index))
    assert p.returncode == 0, p.stderr
    shipped = ship(tmp_path, out)
    (shipped / "mydep-0.5-py3-none-any.whl").unlink()  # a set that lacks one
    d = make_run(tmp_path, "run", argv=["python", "-c", "import mypkg"],
                 runtime={"interpreter": PY, "requirements": "requirements.txt",
                          "wheels": str(shipped)})
    p = worker(tmp_path, [*AGENT, str(d)], worker_env())
    assert p.returncode == 1, p.stderr
    res = result(d)
    assert res["outcome"] == "failed" and res["failure"] == "runtime", res
    assert res["reason"].startswith(f"runtime: no wheel for requirement \"mydep\" in {shipped}"), res
    assert not [v for v in (tmp_path / "worker" / "venvs").iterdir() if v.is_dir()]


def test_another_python_version_gets_binary_wheels_or_a_failure_naming_the_requirement(
        tmp_path, index):
    """For a worker whose Python is not the scheduler's, pip download --only-binary: a wheel
    built for CPython 3.10 only (its file name says so) is taken for 3.10 and refused for
    3.9, whose failure names the requirement with the reason runtime."""
    other = tmp_path / "index310"
    other.mkdir()
    shutil.copy(index / "mydep-0.5-py3-none-any.whl", other)
    shutil.copy(index / "mypkg-1.0-py3-none-any.whl",
                other / "mypkg-1.0-cp310-cp310-manylinux2014_x86_64.whl")
    sched, spec_dir = scheduler(tmp_path, "mypkg==1.0\n")

    p, out = pack(spec_dir, "--python-version", "3.10", "--platform", "manylinux2014_x86_64",
                  env=pip_env(other))
    assert p.returncode == 0, p.stderr
    wheels, pipwhl = out["wheels"], out["pip"]
    assert out["python"] == "3.10"
    # no index to download a pip for 3.10 from: the scheduler's own pip wheel is shipped
    assert [f["name"] for f in out["files"]] == sorted([
        "mydep-0.5-py3-none-any.whl", "mypkg-1.0-cp310-cp310-manylinux2014_x86_64.whl",
        pipwhl])
    assert sorted(os.listdir(wheels)) == [f["name"] for f in out["files"]]

    p, out = pack(spec_dir, "--python-version", "3.9.18", env=pip_env(other))
    assert p.returncode == 1 and out["failure"] == "runtime", (out, p.stderr)
    assert out["error"].startswith(
        'no wheel for requirement "mypkg==1.0" for Python 3.9 (manylinux2014_x86_64)'), out
    # nothing half-made is left for the next run to take
    assert sorted(n for n in os.listdir(sched / "wheels") if not n.endswith((".lock", ".build"))
                  ) == [os.path.basename(wheels)]

    p, out = pack(spec_dir, "--python-version", "three", env=pip_env(other))
    assert p.returncode == 1 and out["failure"] == "runtime", (out, p.stderr)
    assert "is not a Python version" in out["error"], out

    # eph gc: a set of wheels goes once unused for --venv-days days
    os.utime(f"{wheels}.lock", (1, 1))
    (tmp_path / "ephemeron.yaml").write_text("jobs:\n  j: { schedule: '@daily', run: 'true' }\n")
    p = run_eph(["-f", tmp_path / "ephemeron.yaml", "gc", "--json"], env={"EPH_STATE": sched})
    assert p.returncode == 0, p.stderr
    assert [(r["kind"], r["path"]) for r in json.loads(p.stdout)["removed"]
            if r["kind"] == "wheels"] == [("wheels", wheels)]
    assert not os.path.exists(wheels)
