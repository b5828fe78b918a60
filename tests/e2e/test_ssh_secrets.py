"""Secrets on the `ssh` executor, end to end: `eph run` (no daemon) in the scheduler's
namespace runs a job on a test host (testhosts.py: a real sshd in a namespace of its own); the
command gets its secrets as environment variables, they are masked in its output, and their
values are on no file of the host (its home, where the agent's directory is, and its /tmp),
while the run goes on and after it, nor in the scheduler's state directory."""

import hashlib
import json
import os
import secrets as pysecrets
import subprocess
import time

import pytest

from conftest import eph_bin, wait_for
from testhosts import TestNet

MiB = 1 << 20


def sha(v):
    return hashlib.sha256(v.encode()).hexdigest()


def files_holding(root, value):
    found = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            try:
                with open(p, "rb") as f:
                    if value.encode() in f.read():
                        found.append(p)
            except OSError:
                pass
    return found


@pytest.fixture
def net(tmp_path):
    n = TestNet(tmp_path)
    yield n
    n.close()


def git(repo, *a):
    subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)


def test_a_remote_run_gets_its_secrets_over_ssh_only_masked(net, tmp_path):
    h = net.host(memory=512 * MiB)
    pw = "pw-" + pysecrets.token_hex(12)
    db = "postgres://u:" + pysecrets.token_hex(12) + "@h/db"
    secret_file = tmp_path / "smtp"
    secret_file.write_text(pw + "\n")
    os.chmod(secret_file, 0o600)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "job.sh").write_text(
        'printf "%s" "$PW" | sha256sum; printf "%s" "$DB" | sha256sum\n'
        'echo "pw=$PW db=$DB"; echo "$DB" >&2\n'
        'printf "half: "; printf "%s" "$PW" | head -c 5; sleep 1.4; '
        'printf "%s\\n" "$PW" | tail -c +6\n'
        'echo holding; sleep 3; echo done\n')
    jobs = repo / "ephemeron.yaml"
    jobs.write_text(f"""\
source: {{ repo: {repo} }}
secrets:
  smtp_password: {{ file: {secret_file} }}
  db_url: {{ env: EPH_TEST_SECRET_DB }}
executors:
  pool:
    type: ssh
    hosts:
      - {{ host: root@{h.addr}, memory: 512MiB }}
    identity_file: {net.identity}
    known_hosts: {net.known_hosts}
jobs:
  s:
    schedule: "0 3 * * *"
    run: sh job.sh
    memory: 128MiB
    executor: pool
    secrets: {{ PW: smtp_password, DB: db_url }}
""")
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "one")
    state = tmp_path / "state"
    env = dict(os.environ, EPH_STATE=str(state), EPH_TEST_SECRET_DB=db)
    p = subprocess.Popen(net.argv([eph_bin(), "-f", jobs, "run", "s"]), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # while the command runs on the host: its run directory there holds no value
        out_log = state / "runs" / "1" / "output.log"
        wait_for(lambda: out_log.exists() and "holding" in out_log.read_text(), 90,
                 "the remote command to run")
        runs = list((h.home / ".ephemeron").glob("*/runs/1"))
        assert runs and (runs[0] / "spec.json").exists(), list(h.home.rglob("*"))
        spec = json.loads((runs[0] / "spec.json").read_text())
        assert spec["secrets"] == ["PW", "DB"]
        assert files_holding(h.dir, pw) == [] and files_holding(h.dir, db) == []
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    log = out_log.read_text()
    assert f"out {sha(pw)}  -" in log, log
    assert f"out {sha(db)}  -" in log, log
    assert "out pw=*** db=***\n" in log, log
    assert "err ***\n" in log, log
    lines = log.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.endswith(" out+ half: "))
    assert lines[i + 1].endswith(" out ***"), log
    assert pw[:5] not in log and pw[5:] not in log
    # after the run: nothing on the host holds a value (its cache, its /tmp), nor here
    assert files_holding(h.dir, pw) == [] and files_holding(h.dir, db) == []
    assert files_holding(state, pw) == [] and files_holding(state, db) == []
    assert pw not in out and pw not in err and db not in out and db not in err
    show = net.run([eph_bin(), "show", "1"], env=env)
    assert "secrets     PW, DB" in show.stdout, show.stdout


def test_a_remote_run_whose_secret_is_missing_starts_nothing_on_the_host(net, tmp_path):
    h = net.host(memory=512 * MiB)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    jobs = repo / "ephemeron.yaml"
    jobs.write_text(f"""\
source: {{ repo: {repo} }}
secrets:
  db_url: {{ env: EPH_TEST_SECRET_UNSET }}
executors:
  pool:
    type: ssh
    hosts:
      - {{ host: root@{h.addr}, memory: 512MiB }}
    identity_file: {net.identity}
    known_hosts: {net.known_hosts}
jobs:
  s: {{ schedule: "0 3 * * *", run: "echo ran", memory: 64MiB, executor: pool, secrets: {{ DB: db_url }} }}
""")
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "one")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "EPH_TEST_SECRET_UNSET"}
    env["EPH_STATE"] = str(state)
    p = net.run([eph_bin(), "-f", jobs, "run", "--json", "s"], env=env, check=False,
                timeout=120)
    assert p.returncode == 1, (p.stdout, p.stderr)
    row = json.loads(p.stdout)
    assert row["state"] == "failed"
    assert row["reason"] == "secrets: db_url (for DB): the variable EPH_TEST_SECRET_UNSET is not set"
    time.sleep(0.5)
    assert not list((h.home / ".ephemeron").glob("*/runs/*"))
