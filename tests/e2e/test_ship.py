"""What a remote run carries, so that a worker brings nothing from the internet (issue 12,
docs/source.md "What a remote run carries"): the commit as a tar archive made from the
scheduler's mirror, and the requirements as wheels (with a pip wheel) made on the scheduler,
from which the agent builds its venv offline, with neither pip nor ensurepip installed.

The scheduler's side is driven through `ship-tool` (tests/unit/ship_tool.c), which calls
archive_get() and wheels_prepare() as the ssh executor will; the worker's side is the real
agent with spec.json's runtime.wheels. There is no package index here: the scheduler's pip is
pointed at a directory of wheels the test builds (PIP_NO_INDEX, PIP_FIND_LINKS: the user's
pip configuration on the scheduler), and that directory is gone before the agent runs.

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

import pytest

import agentrun
from agentrun import AGENT, PY, SAN_CODES, events, git, result
from conftest import eph_bin, run_eph

TOOL = os.path.join(os.path.dirname(eph_bin()), "tests", "unit", "ship-tool")
STDLIB = subprocess.run([PY, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                        capture_output=True, text=True, check=True).stdout.strip()
OWN = subprocess.run([PY, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                     capture_output=True, text=True, check=True).stdout.strip()
_run_ids = agentrun.run_ids(830000)

def tool(*args, env=None):
    assert os.access(TOOL, os.X_OK), f"{TOOL} is not built (meson's tests option)"
    p = subprocess.run([TOOL, *[str(a) for a in args]], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})), timeout=300)
    assert p.returncode not in SAN_CODES, p.stderr
    return p


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
    p = run_eph(["fetch", "--repo", f"file://{bare}", "--json"])
    assert p.returncode == 0, p.stderr
    mirror = state_dir / "mirrors" / (
        hashlib.sha256(f"file://{bare}".encode()).hexdigest()[:32] + ".git")
    assert mirror.is_dir()

    p = tool("archive", state_dir, mirror, commit)
    assert p.returncode == 0, p.stderr
    path, how = p.stdout.split()
    assert path == str(state_dir / "archives" / f"{commit}.tar") and how == "built"
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
    p = tool("archive", state_dir, mirror, commit)
    assert p.returncode == 0 and p.stdout.split() == [path, "cached"], p.stderr
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


def test_wheels_then_offline_venv_without_ensurepip_or_pip(tmp_path, index):
    src = tmp_path / "src"  # the run's source root (an extracted archive, on a worker)
    src.mkdir()
    (src / "requirements.txt").write_text("mypkg==1.0\n")
    sched = tmp_path / "sched"
    p = tool("wheels", sched, PY, "-", "requirements.txt", src, env=pip_env(index))
    assert p.returncode == 0, p.stderr
    wheels, pipwhl, version, how = p.stdout.split()
    assert version == OWN and how == "built"
    assert os.path.dirname(wheels) == str(sched / "wheels")
    names = sorted(os.listdir(wheels))
    # the requirement, its dependency, and a pip to install them with
    assert names == sorted(["mydep-0.5-py3-none-any.whl", "mypkg-1.0-py3-none-any.whl",
                            pipwhl]) and pipwhl.startswith("pip-")
    # made once per (requirements, version)
    p = tool("wheels", sched, PY, OWN, "requirements.txt", src, env=pip_env(index))
    assert p.returncode == 0 and p.stdout.split() == [wheels, pipwhl, OWN, "cached"], p.stderr

    # the worker: nothing but the shipped set (the "index" is gone, no PIP_* settings)
    shipped = tmp_path / "shipped-wheels"
    shutil.copytree(wheels, shipped)
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
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("mypkg==1.0\n")
    p = tool("wheels", tmp_path / "sched", PY, "-", "requirements.txt", src,
             env=pip_env(index))
    assert p.returncode == 0, p.stderr
    wheels = p.stdout.split()[0]
    shipped = tmp_path / "shipped-wheels"
    shutil.copytree(wheels, shipped)
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
    3.9, whose failure names the requirement."""
    other = tmp_path / "index310"
    other.mkdir()
    shutil.copy(index / "mydep-0.5-py3-none-any.whl", other)
    shutil.copy(index / "mypkg-1.0-py3-none-any.whl",
                other / "mypkg-1.0-cp310-cp310-manylinux2014_x86_64.whl")
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("mypkg==1.0\n")
    sched = tmp_path / "sched"

    p = tool("wheels", sched, PY, "3.10", "requirements.txt", src, env=pip_env(other))
    assert p.returncode == 0, p.stderr
    wheels, pipwhl, version, how = p.stdout.split()
    assert (version, how) == ("3.10", "built")
    # no index to download a pip for 3.10 from: the scheduler's own pip wheel is shipped
    assert sorted(os.listdir(wheels)) == sorted([
        "mydep-0.5-py3-none-any.whl", "mypkg-1.0-cp310-cp310-manylinux2014_x86_64.whl",
        pipwhl])

    p = tool("wheels", sched, PY, "3.9.18", "requirements.txt", src, env=pip_env(other))
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert 'no wheel for requirement "mypkg==1.0" for Python 3.9 (manylinux2014_x86_64)' \
        in p.stderr, p.stderr
    # nothing half-made is left for the next run to take
    assert sorted(n for n in os.listdir(sched / "wheels") if not n.endswith((".lock", ".build"))
                  ) == [os.path.basename(wheels)]

    p = tool("wheels", sched, PY, "three", "requirements.txt", src, env=pip_env(other))
    assert p.returncode == 1 and "is not a Python version" in p.stderr, p.stderr

    # eph gc: a set of wheels goes once unused for --venv-days days
    os.utime(f"{wheels}.lock", (1, 1))
    (tmp_path / "ephemeron.yaml").write_text("jobs:\n  j: { schedule: '@daily', run: 'true' }\n")
    p = run_eph(["-f", tmp_path / "ephemeron.yaml", "gc", "--json"], env={"EPH_STATE": sched})
    assert p.returncode == 0, p.stderr
    assert [(r["kind"], r["path"]) for r in json.loads(p.stdout)["removed"]] == [
        ("wheels", wheels)]
    assert not os.path.exists(wheels)
