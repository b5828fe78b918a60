"""What the e2e tests of the agent and of what it runs share (test_venv.py, test_ship.py,
test_source.py): the agent's command line, a run directory with its spec.json (docs/rundir.md),
what the agent leaves there, and git with a fixed identity."""
import json
import os
import subprocess

from conftest import eph_bin

PY = "/usr/bin/python3"
SAN_CODES = (86, 87)  # ASan leak / UBSan report (see meson.build's sanitize setup)
# What executors start: the slim eph-agent next to eph (src/eph_agent.c), else `eph agent`.
_SLIM = os.path.join(os.path.dirname(os.path.abspath(eph_bin())), "eph-agent")
AGENT = [_SLIM] if os.access(_SLIM, os.X_OK) else [eph_bin(), "agent"]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "eph test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "eph test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def run_ids(base):
    """Run ids from BASE on, apart for each process: other suites run on the machine too."""
    return iter(range(base + os.getpid() % 1000 * 100, 10**9))


def make_run(tmp_path, name, run_id, **spec):
    """The run directory TMP_PATH/NAME with a spec.json: a shell-less, limitless run of job
    "t" in TMP_PATH, sampled, unless SPEC says otherwise."""
    d = tmp_path / name
    d.mkdir()
    s = {"version": 1, "run_id": run_id, "job": "t", "attempt": 1,
         "scheduled_at": 1764007200, "argv": None, "shell": None, "env": {},
         "cwd": str(tmp_path), "memory": 0, "timeout": 0, "kill_grace": 1,
         "commit": None, "enforce": "sampled"}
    s.update(spec)
    (d / "spec.json").write_text(json.dumps(s))
    return d


def result(d):
    return json.loads((d / "result.json").read_text())


def events(d):
    return [json.loads(l) for l in (d / "events.jsonl").read_text().splitlines()]


def git(*args, cwd=None, text=True):
    """git ARGS in CWD with GIT_ENV's identity; its stdout, stripped when TEXT."""
    env = dict(os.environ, **GIT_ENV)
    p = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                       text=text)
    return p.stdout.strip() if text else p.stdout
