"""`eph validate`: the golden error cases of tests/data/conf-errors (NAME.yaml next to
NAME.err, the exact stderr), success output, exit statuses, --json, and the inputs that
cannot be committed (huge, binary)."""

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_eph

GOLDEN = ROOT / "tests" / "data" / "conf-errors"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))

GOOD = """\
source:
  repo: git@github.com:acme/data-scripts.git
  branch: master
defaults:
  executor: local
  timezone: Europe/Berlin
  memory: 1GiB
  timeout: 30m
  notify: { email: [me@acme.io, team@acme.io], on: [failure, oom, timeout] }
python:
  requirements: requirements.txt
mail:
  smtp: smtps://smtp.acme.io:465
  from: ephemeron@acme.io
  username: ephemeron
  password_file: /etc/ephemeron/smtp-password
executors:
  local:
    memory_budget: 16GiB
jobs:
  fetch-prices:
    schedule: "*/10 * * * *"
    run: python fetch_prices.py
    memory: 512MiB
  train-model:
    schedule: "0 3 * * *"
    run: python train.py --full
    memory: 12GiB
    timeout: 2h
    retries: 1
"""


def test_golden_directory_has_the_cases():
    assert len(CASES) >= 25
    for name in CASES:
        assert (GOLDEN / f"{name}.err").exists(), f"{name}.yaml has no {name}.err"


@pytest.mark.parametrize("name", CASES)
def test_golden_errors(name):
    p = run_eph(["validate", f"{name}.yaml"], cwd=GOLDEN)
    expected = (GOLDEN / f"{name}.err").read_text()
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr == expected


@pytest.mark.parametrize("name", CASES)
def test_golden_errors_as_json(name):
    p = run_eph(["validate", f"{name}.yaml", "--json"], cwd=GOLDEN)
    assert p.returncode == 2
    doc = json.loads(p.stdout)
    assert doc["file"] == f"{name}.yaml"
    assert doc["ok"] is False
    assert doc["jobs"] == 0
    lines = (GOLDEN / f"{name}.err").read_text().splitlines()
    assert len(doc["errors"]) == len(lines)
    for e, line in zip(doc["errors"], lines):
        assert set(e) == {"file", "line", "col", "message"}
        if e["line"] > 0:
            assert line == f'{e["file"]}:{e["line"]}:{e["col"]}: {e["message"]}'
        else:
            assert line == f'{e["file"]}: {e["message"]}'


def test_success_prints_only_the_job_count(tmp_path):
    f = tmp_path / "ephemeron.yaml"
    f.write_text(GOOD)
    p = run_eph(["validate", str(f)])
    assert (p.returncode, p.stdout, p.stderr) == (0, f"{f}: 2 jobs OK\n", "")


def test_default_file_and_global_f_option(tmp_path):
    (tmp_path / "ephemeron.yaml").write_text(GOOD)
    p = run_eph(["validate"], cwd=tmp_path)
    assert (p.returncode, p.stdout) == (0, "ephemeron.yaml: 2 jobs OK\n")
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "jobs.yaml").write_text("jobs:\n  one: {schedule: '@daily', run: x}\n")
    p = run_eph(["-f", "ops/jobs.yaml", "validate"], cwd=tmp_path)
    assert (p.returncode, p.stdout, p.stderr) == (0, "ops/jobs.yaml: 1 job OK\n", "")


def test_success_as_json(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(GOOD)
    p = run_eph(["validate", str(f), "--json"])
    assert p.returncode == 0
    assert json.loads(p.stdout) == {"file": str(f), "ok": True, "jobs": 2, "errors": [],
                                    "warnings": []}


def test_a_job_that_dst_gaps_always_skip_is_a_warning(tmp_path):
    # 2:00 and 2:30 on the second Sunday of March ("*/7" starts with '*': the days are
    # ANDed): New York's clocks skip that hour every year since 2007
    f = tmp_path / "e.yaml"
    f.write_text("jobs:\n"
                 "  ok: {schedule: '@daily', run: x}\n"
                 "  gap:\n"
                 "    schedule: '*/30 2 8-14 3 */7'\n"
                 "    timezone: America/New_York\n"
                 "    run: x\n"
                 "  utc: {schedule: '*/30 2 8-14 3 */7', timezone: UTC, run: x}\n")
    p = run_eph(["validate", str(f)])
    assert p.returncode == 0
    assert p.stdout == f"{f}: 3 jobs OK\n"
    assert p.stderr == (f"{f}:3:3: warning: job gap never fires: every time of "
                        '"*/30 2 8-14 3 */7" falls in a daylight-saving gap of America/New_York\n')
    p = run_eph(["validate", str(f), "--json"])
    doc = json.loads(p.stdout)
    assert (p.returncode, doc["ok"], doc["errors"]) == (0, True, [])
    assert [(w["line"], w["col"]) for w in doc["warnings"]] == [(3, 3)]
    assert "job gap never fires" in doc["warnings"][0]["message"]


def test_aliases_merge_keys_and_extension_keys_are_valid(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(
        "x-big: &big {memory: 2GiB, timeout: 1h}\n"
        "jobs:\n"
        "  a: {<<: *big, schedule: '@hourly', run: x}\n"
        "  b:\n    <<: *big\n    schedule: '0 2 * * *'\n    command: [python, b.py]\n"
    )
    p = run_eph(["validate", str(f)])
    assert (p.returncode, p.stdout, p.stderr) == (0, f"{f}: 2 jobs OK\n", "")


def test_missing_file(tmp_path):
    p = run_eph(["validate", str(tmp_path / "nope.yaml")])
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr == f"{tmp_path}/nope.yaml: cannot read: No such file or directory\n"


def test_directory(tmp_path):
    p = run_eph(["validate", str(tmp_path)])
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == f"{tmp_path}: cannot read: Is a directory\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(GOOD)
    f.chmod(0)
    p = run_eph(["validate", str(f)])
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == f"{f}: cannot read: Permission denied\n"


def test_unreadable_path_component(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    p = run_eph(["validate", str(f / "ephemeron.yaml")])
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == f"{f}/ephemeron.yaml: cannot read: Not a directory\n"


def test_huge_file_is_refused_without_reading_it(tmp_path):
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as out:
        out.write(b"jobs:\n")
        out.truncate(50 << 20)
    t0 = time.monotonic()
    p = run_eph(["validate", str(f)])
    assert time.monotonic() - t0 < 5
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == f"{f}: too large (50.00 MiB): a jobs file may have at most 4 MiB\n"


def test_huge_stream_is_capped(tmp_path):
    # a character device has no size to check: reading stops at the cap
    p = run_eph(["validate", "/dev/zero"])
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == "/dev/zero: too large: a jobs file may have at most 4 MiB\n"


def test_pipe_input(tmp_path):
    p = run_eph(["validate", "/dev/stdin"], input=GOOD)
    assert (p.returncode, p.stdout, p.stderr) == (0, "/dev/stdin: 2 jobs OK\n", "")


def test_not_utf8_is_reported_at_the_first_bad_byte(tmp_path):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("jobs:\n  a:\n    schedule: '@daily'\n    run: echo café\n".encode("latin-1"))
    p = run_eph(["validate", "latin1.yaml"], cwd=tmp_path)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == "latin1.yaml:4:18: not valid UTF-8 (byte 0xe9): a jobs file must be UTF-8\n"


def test_nul_byte(tmp_path):
    f = tmp_path / "nul.yaml"
    f.write_bytes(b"jobs:\n  a: {schedule: '@daily', run: x\x00}\n")
    p = run_eph(["validate", "nul.yaml"], cwd=tmp_path)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == "nul.yaml:2:33: contains a NUL byte: a jobs file is text\n"


def test_billion_laughs_is_refused_quickly(tmp_path):
    lines = ["x-0: &l0 ['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol']"]
    for i in range(1, 10):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        lines.append(f"x-{i}: &l{i} [{refs}]")
    lines.append("jobs:")
    lines.append("  a: {schedule: '@daily', command: *l9}")
    f = tmp_path / "lol.yaml"
    f.write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    p = run_eph(["validate", "lol.yaml"], cwd=tmp_path)
    assert time.monotonic() - t0 < 5
    assert (p.returncode, p.stdout) == (2, "")
    assert "each item of \"command\" must be a string, not a list" in p.stderr


def test_libfyaml_prints_nothing_of_its_own(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("jobs: [1\n  x: {\n")
    p = run_eph(["validate", "bad.yaml"], cwd=tmp_path)
    assert (p.returncode, p.stdout) == (2, "")
    lines = p.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bad.yaml:")
    assert "\x1b" not in p.stderr


def test_too_many_arguments():
    p = run_eph(["validate", "a.yaml", "b.yaml"])
    assert p.returncode == 2
    assert p.stdout == ""


def test_the_documented_example_is_valid(tmp_path):
    doc = (ROOT / "docs" / "jobs-file.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    f = tmp_path / "ephemeron.yaml"
    f.write_text(example)
    p = run_eph(["validate", str(f)])
    assert (p.returncode, p.stdout, p.stderr) == (0, f"{f}: 2 jobs OK\n", "")


def _hostile():
    spec = importlib.util.spec_from_file_location("conf_hostile", ROOT / "bench" / "conf_hostile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("case,ok", [
    ("flowkeys-32000", True),          # 67 s and more before: a quadratic duplicate-key check
    ("mergekeys-10000-2000", False),   # 28 s, 20 million errors
    ("envanchor-20000-2000", False),   # 25 s
    ("cmdanchor-20000-2000", False),   # 66 s on the ASan build
])
def test_hostile_files_are_answered_quickly(tmp_path, case, ok):
    f = tmp_path / f"{case}.yaml"
    f.write_text(_hostile().BIG[case]())
    t0 = time.monotonic()
    p = run_eph(["validate", f.name], cwd=tmp_path)
    assert time.monotonic() - t0 < 10
    assert p.returncode == (0 if ok else 2)
    lines = p.stderr.splitlines()
    assert len(lines) <= 101
    if case.startswith("mergekeys"):
        assert lines[0] == f"{f.name}: too many errors, stopping: these are the first 100"
        assert lines[1] == f'{f.name}:2:3: unknown key "u0" (did you mean "run"?)'
    elif not ok:
        assert lines[-1].endswith("once aliases are followed")


SSH_KEY = " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOr1n0Vh0Xq2vEw4Qf3pZ0eWc9b6k1m2n3o4p5q6r7s8\n"

SSH_GOOD = """\
source: {repo: /srv/jobs.git}
executors:
  pool:
    type: ssh
    hosts:
      - { host: eph@10.0.0.5, memory: 4GiB }
      - { host: "eph@[fd00::5]:2222", memory: 16GiB }
    identity_file: id_ed25519
    known_hosts: known_hosts
jobs:
  train: { schedule: "0 3 * * *", run: python train.py, memory: 12GiB, executor: pool }
"""

SSH_BAD = """\
executors:
  pool:
    type: ssh
    hosts:
      - { host: eph@10.0.0.5, memory: 4GiB }
      - { host: eph@10.0.0.9, memory: 8GiB }
    identity_file: id_ed25519
    known_hosts: known_hosts
    memory_budget: 8GiB
    dir: runs
jobs:
  train: { schedule: "0 3 * * *", run: python train.py, memory: 12GiB, executor: pool }
"""


def _ssh_files(d):
    kh = d / "known_hosts"
    kh.write_text("10.0.0.5" + SSH_KEY + "[fd00::5]:2222" + SSH_KEY)
    kh.chmod(0o644)
    key = d / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o640)  # too open: reported


def test_ssh_executor_keys_are_checked(tmp_path):
    _ssh_files(tmp_path)
    (tmp_path / "bad.yaml").write_text(SSH_BAD)
    errors = [
        f"bad.yaml:6:17: host eph@10.0.0.9 has no entry in known_hosts {tmp_path}/known_hosts: "
        "add its key (ssh-keyscan -p 22 10.0.0.9) and check its fingerprint out of band; "
        "keys are never learned",
        f"bad.yaml:7:20: identity_file {tmp_path}/id_ed25519 can be read or written by others "
        "(mode 0640): a private key is a secret; chmod 600 it",
        'bad.yaml:9:5: unknown key "memory_budget"',
        'bad.yaml:10:10: "dir" must be absolute (/srv/ephemeron) or start with "~/" (the login '
        'user\'s home), not "runs"',
        'bad.yaml:12:82: job "train" runs on executor "pool" (ssh): its code travels as a '
        'commit, so the file needs a "source:" section (or run the daemon with --from-repo)',
    ]
    p = run_eph(["validate", "bad.yaml"], cwd=tmp_path)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr.splitlines() == errors
    # --from-repo: the file's commit is the jobs' code
    p = run_eph(["validate", "--json", "--from-repo", "bad.yaml"], cwd=tmp_path)
    assert p.returncode == 2
    got = [f"{e['file']}:{e['line']}:{e['col']}: {e['message']}"
           for e in json.loads(p.stdout)["errors"]]
    assert got == errors[:-1]


def test_ssh_executor_that_is_right_is_valid(tmp_path):
    _ssh_files(tmp_path)
    (tmp_path / "id_ed25519").chmod(0o600)
    (tmp_path / "good.yaml").write_text(SSH_GOOD)
    p = run_eph(["validate", "good.yaml"], cwd=tmp_path)
    assert (p.returncode, p.stdout, p.stderr) == (0, "good.yaml: 1 job OK\n", "")
    # a job no host could hold
    (tmp_path / "big.yaml").write_text(SSH_GOOD.replace("memory: 12GiB", "memory: 20GiB"))
    p = run_eph(["validate", "big.yaml"], cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr == ('big.yaml:11:65: job "train" needs 20.00 GiB but the largest host of '
                        'executor "pool" has 16.00 GiB\n')
