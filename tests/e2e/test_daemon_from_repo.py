"""`eph daemon --from-repo` and `eph fetch` end to end: the jobs file read from a real git
repository (file://), reloaded on a new commit, a broken commit reported once while the last
good one keeps running (also across a restart), runs pinned to the configuration's commit, and
a fetch in progress that does not hold up a stop."""

import json
import os
import signal
import stat
import subprocess
import textwrap
import time

from conftest import wait_for
from test_daemon import daemons, rows, wait_all_terminal  # noqa: F401 (a fixture)
from test_mail import smtpd  # noqa: F401 (a fixture)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
}

JOBS = """\
source:
  refresh: 1s
jobs:
  hello:
    schedule: "@every 1s"
    run: echo {word}; git rev-parse HEAD
    memory: 64MiB
"""


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=dict(os.environ, **GIT_ENV)).stdout.strip()


def commit(repo, text, msg, path="ephemeron.yaml"):
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg)
    return git(repo, "rev-parse", "HEAD")


def make_repo(tmp_path, text):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo, commit(repo, text, "first")


def output(run_row):
    """The lines the run's command printed (output.log has "TIME STREAM TEXT" lines)."""
    with open(run_row["log_path"]) as f:
        return [line.rstrip("\n").split(" ", 2)[2] for line in f]


def runs_of(state_dir, since=0):
    return [r for r in rows(state_dir, "id > ?", (since,)) if r["state"] == "succeeded"]


def test_new_commit_reloads_and_runs_are_pinned_to_it(tmp_path, state_dir, daemons, run):
    repo, c1 = make_repo(tmp_path, JOBS.format(word="one"))
    d = daemons("ephemeron.yaml", state_dir, extra=("--from-repo", f"file://{repo}"))
    assert f"ephemeron.yaml@{c1[:12]}" in d.text()
    wait_for(lambda: len(runs_of(state_dir)) >= 2, what="runs of the first commit")
    status = json.loads(run(["status", "--json"]).stdout)
    assert status["daemon"]["conf"] == f"ephemeron.yaml@{c1[:12]}"

    c2 = commit(repo, JOBS.format(word="two"), "second")
    wait_for(lambda: f"(new commit {c2[:12]})" in d.text(), what="the reload")
    last = rows(state_dir)[-1]["id"]
    wait_for(lambda: len(runs_of(state_dir, last)) >= 2, what="runs of the second commit")
    assert d.stop() == 0
    wait_all_terminal(state_dir)
    for r in rows(state_dir):
        assert r["commit_id"] in (c1, c2), r
        out = output(r)
        # the command and the code come from one commit, the one the run records
        assert out == ["one" if r["commit_id"] == c1 else "two", r["commit_id"]], (r, out)
    assert [r["commit_id"] for r in rows(state_dir)][-1] == c2


def test_refresh_0_still_polls_the_jobs_file_every_second(tmp_path, state_dir, daemons):
    # refresh 0: each run fetches; the daemon's own fetch of the jobs file comes every second
    repo, c1 = make_repo(tmp_path, JOBS.format(word="one").replace("1s", "0", 1))
    d = daemons("ephemeron.yaml", state_dir, extra=("--from-repo", f"file://{repo}"))
    assert "fetched every 1s" in d.text(), d.text()
    for word in ("two", "three"):  # not a single fetch: it keeps polling
        c = commit(repo, JOBS.format(word=word).replace("1s", "0", 1), word)
        wait_for(lambda: f"(new commit {c[:12]})" in d.text(), what=f"the reload to {word}")
    assert d.stop() == 0


def test_a_broken_commit_keeps_the_last_good_one_also_across_a_restart(tmp_path, state_dir,
                                                                        daemons):
    repo, c1 = make_repo(tmp_path, JOBS.format(word="good"))
    d = daemons("ephemeron.yaml", state_dir, extra=("--from-repo", f"file://{repo}"))
    bad = commit(repo, JOBS.format(word="bad").replace("memory:", "memroy:"), "broken")
    want = f'ephemeron.yaml@{bad[:12]}:7:5: unknown key "memroy" (did you mean "memory"?)'
    wait_for(lambda: want in d.text(), what="the broken commit's error")
    since = rows(state_dir)[-1]["id"] if rows(state_dir) else 0
    wait_for(lambda: len(runs_of(state_dir, since)) >= 3, what="runs after the broken commit")
    assert d.text().count(want) == 1  # fetched every second, reported once
    assert {r["commit_id"] for r in runs_of(state_dir)} == {c1}
    assert d.stop() == 0

    # restarted while the branch's head is still broken: the last good commit's jobs run
    d = daemons("ephemeron.yaml", state_dir, "daemon2.log",
                extra=("--from-repo", f"file://{repo}"))
    assert d.p.poll() is None, d.text()
    assert want in d.text()
    assert f"started from the last good commit, {c1[:12]}" in d.text()
    since = rows(state_dir)[-1]["id"]
    wait_for(lambda: len(runs_of(state_dir, since)) >= 1, what="a run after the restart")
    # fixed: taken at once
    c3 = commit(repo, JOBS.format(word="fixed"), "fixed")
    wait_for(lambda: f"(new commit {c3[:12]})" in d.text(), what="the fixed commit")
    assert d.stop() == 0
    wait_all_terminal(state_dir)
    assert {r["commit_id"] for r in rows(state_dir)} <= {c1, c3}


def test_no_good_commit_at_all_is_refused_with_file_line_col(tmp_path, state_dir, run):
    repo, c1 = make_repo(tmp_path, "jobs:\n  x:\n    schedule: nope\n    run: true\n")
    p = run(["daemon", "--from-repo", repo], timeout=30)
    assert p.returncode == 1
    assert f"ephemeron.yaml@{c1[:12]}:3:15:" in p.stderr, p.stderr
    p = run(["daemon", "--from-repo", repo, "ops/jobs.yaml"], timeout=30)
    assert p.returncode == 1
    assert f"ephemeron.yaml@{c1[:12]}" not in p.stderr
    assert f"ops/jobs.yaml@{c1[:12]}: no such file in commit {c1[:12]}" in p.stderr, p.stderr


def test_a_file_in_a_subdirectory_and_a_branch(tmp_path, state_dir, daemons):
    repo, _ = make_repo(tmp_path, "unrelated\n")
    git(repo, "checkout", "-q", "-b", "prod")
    c = commit(repo, JOBS.format(word="prod"), "prod jobs", "ops/jobs.yaml")
    git(repo, "checkout", "-q", "main")
    d = daemons("ops/jobs.yaml", state_dir,
                extra=("--from-repo", str(repo), "--branch", "prod"))
    assert f"ops/jobs.yaml@{c[:12]}" in d.text(), d.text()
    wait_for(lambda: len(runs_of(state_dir)) >= 1, what="a run")
    assert d.stop() == 0
    r = runs_of(state_dir)[0]
    assert r["commit_id"] == c
    assert output(r) == ["prod", c]


def test_an_unreachable_repository_keeps_the_jobs_running(tmp_path, state_dir, daemons):
    repo, c1 = make_repo(tmp_path, JOBS.format(word="one"))
    d = daemons("ephemeron.yaml", state_dir, extra=("--from-repo", f"file://{repo}"))
    wait_for(lambda: len(runs_of(state_dir)) >= 1, what="a first run")
    away = tmp_path / "away"
    os.rename(repo, away)
    wait_for(lambda: "cannot fetch" in d.text(), what="the fetch failure")
    since = rows(state_dir)[-1]["id"]
    wait_for(lambda: len(runs_of(state_dir, since)) >= 3, what="runs while unreachable")
    assert d.text().count("cannot fetch") == 1, d.text()  # the same failure, said once
    assert any("cannot fetch" in (r["warning"] or "") for r in runs_of(state_dir, since))
    os.rename(away, repo)
    wait_for(lambda: "fetches again" in d.text(), what="the recovery")
    assert d.stop() == 0
    assert {r["commit_id"] for r in rows(state_dir)} == {c1}


def test_a_stop_does_not_wait_for_a_hanging_fetch(tmp_path, state_dir, daemons):
    repo, _ = make_repo(tmp_path, JOBS.format(word="one"))
    # a git that hangs in `fetch` once the marker exists: the daemon's next fetch hangs
    bindir = tmp_path / "bin"
    bindir.mkdir()
    marker = tmp_path / "hang"
    pids = tmp_path / "hung.pids"
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True,
                          text=True).stdout.strip()
    wrapper = bindir / "git"
    wrapper.write_text(f'#!/bin/sh\ncase " $* " in *" fetch "*) if [ -e {marker} ]; then '
                       f'echo $$ >>{pids}; exec sleep 60; fi;; esac\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{bindir}:{old}"
    try:
        d = daemons("ephemeron.yaml", state_dir, extra=("--from-repo", f"file://{repo}"))
        marker.touch()
        wait_for(lambda: pids.exists(), what="the daemon's fetch to hang")
        # the repository (a URL may hold a password) is not on eph fetch's command line,
        # which every user can read, but in its environment, which only its owner can
        hung = int(pids.read_text().split()[0])
        ppid = next(int(l.split()[1]) for l in open(f"/proc/{hung}/status")
                    if l.startswith("PPid:"))
        argv = open(f"/proc/{ppid}/cmdline").read().split("\0")
        assert "fetch" in argv and "--repo-env" in argv, argv
        assert not any(str(repo) in a for a in argv), argv
        assert f"EPH_FETCH_REPO=file://{repo}" in open(f"/proc/{ppid}/environ").read()
        t0 = time.monotonic()
        assert d.stop(signal.SIGTERM) == 0
        assert time.monotonic() - t0 < 5
        assert "stopped" in d.text()
        # and the hung git does not outlive it: eph fetch kills its process group
        hung = [int(x) for x in pids.read_text().split()]
        wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and
                                 open(f"/proc/{p}/stat").read().split()[2] != "Z"
                                 for p in hung), 5, "the hung git to be killed")
    finally:
        os.environ["PATH"] = old
        # the hung "git" runs in its own process group and outlives the fetch: end it
        for pid in (pids.read_text().split() if pids.exists() else []):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_fetch_command(tmp_path, state_dir, run):
    repo, c1 = make_repo(tmp_path, JOBS.format(word="one"))
    p = run(["fetch", "--repo", repo, "--checkout", "--json"])
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["commit"] == c1 and got["branch"] == "main"
    assert got["worktree"] == f"{state_dir}/src/{c1}"
    assert (state_dir / "src" / c1 / "ephemeron.yaml").exists()

    # as a run would resolve it (what the daemon runs for each run): within --refresh no
    # fetch, --commit taken as it is; --subject adds the commit's subject line
    c2 = commit(repo, "changed\n", "second", "other.txt")
    p = run(["fetch", "--repo", repo, "--refresh", "1h", "--json", "--subject"])
    assert p.returncode == 0, p.stderr
    answer, subject = map(json.loads, p.stdout.splitlines())
    assert answer["commit"] == c1 and answer["mirror"].startswith(f"{state_dir}/mirrors/")
    assert subject == {"subject": "first"}
    p = run(["fetch", "--repo", repo, "--refresh", "0", "--json"])
    assert json.loads(p.stdout)["commit"] == c2
    p = run(["fetch", "--repo", repo, "--commit", c1, "--json", "--subject"])
    assert [json.loads(l) for l in p.stdout.splitlines()][1] == {"subject": "first"}
    p = run(["fetch", "--repo", repo, "--on-fetch-error", "retry"])
    assert p.returncode == 2 and "use_last or fail" in p.stderr

    # from the jobs file's own source section
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"source:\n  repo: file://{repo}\njobs:\n  x:\n    schedule: '@daily'\n"
                    "    run: 'true'\n")
    c2 = commit(repo, "changed again\n", "third", "other.txt")
    p = run(["-f", jobs, "fetch"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[:2] == [c2, "main"]

    # unreachable: the last fetched commit, with a warning
    os.rename(repo, tmp_path / "away")
    p = run(["-f", jobs, "fetch"])
    assert p.returncode == 0
    assert p.stdout.split()[0] == c2
    assert "warning: cannot fetch" in p.stderr
    p = run(["fetch", "--repo", f"file://{tmp_path}/nothing", "--json"])
    assert p.returncode == 1
    assert "cannot clone" in json.loads(p.stdout)["error"]
    assert run(["fetch", "--branch", "main"]).returncode == 2
    assert run(["daemon", "--from-repo", repo, "../x.yaml"]).returncode == 2
    assert run(["daemon", "--branch", "main"]).returncode == 2


def test_a_broken_commit_is_mailed_to_the_admin_once(tmp_path, state_dir, daemons, smtpd):
    s = smtpd().start()
    text = JOBS.format(word="good") + textwrap.dedent(f"""\
        mail:
          smtp: smtp://127.0.0.1:{s.port}
          from: eph@example.com
          starttls: false
          admin: [root@example.com]
        """)
    repo, c1 = make_repo(tmp_path, text)
    d = daemons("ephemeron.yaml", state_dir, extra=("--from-repo", f"file://{repo}"))
    bad = commit(repo, text.replace("memory:", "memroy:"), "broken")
    wait_for(lambda: len(s.messages()) >= 1, 20, "the admin's message")
    time.sleep(2.5)  # fetched twice more: no second message
    assert d.stop() == 0
    [m] = s.messages()
    assert m["Subject"] == "[eph] configuration failed to reload"
    body = m.get_content()
    assert f"ephemeron.yaml@{bad[:12]}:7:5: unknown key" in body, body
    assert f"keeps the last good configuration, ephemeron.yaml@{c1[:12]}" in body, body
