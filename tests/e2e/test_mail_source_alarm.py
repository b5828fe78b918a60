"""The admin's alarm about a source that cannot be fetched (mail.source_alarm), end to end:
the real daemon running a job every second from a real git repository (file://), a real SMTP
server on loopback, the repository moved away (an outage), the daemon killed -9 and restarted
during it, the repository back, then away again (a second outage)."""

import json
import re
import signal
import subprocess
import time

from test_daemon import daemons, wait_for, write_jobs  # noqa: F401 (the fixture)
from test_daemon_mail import outbox, runs
from test_mail import Smtpd, smtpd  # noqa: F401 (the fixture)


def make_repo(path):
    path.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.com"],
                 ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    (path / "job.sh").write_text("echo from the repository\n")
    subprocess.run(["git", "-C", str(path), "add", "job.sh"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "first"], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def mirror_state(state_dir):
    [f] = list((state_dir / "mirrors").glob("*.git/eph-state.json"))
    return json.loads(f.read_text())


def test_an_outage_longer_than_source_alarm_mails_the_admin_once(tmp_path, smtpd, daemons,
                                                                 state_dir):
    s = smtpd().start()
    repo, gone = tmp_path / "repo", tmp_path / "repo.gone"
    commit = make_repo(repo)
    url = f"file://{repo}"
    jobs = write_jobs(tmp_path / "jobs.yaml", f"""\
        source:
          repo: {url}
          refresh: 1s
          on_fetch_error: use_last
        mail:
          smtp: smtp://127.0.0.1:{s.port}
          from: eph@example.com
          starttls: false
          timeout: 10s
          admin: [root@example.com]
          source_alarm: 2s
        jobs:
          tick:
            schedule: "@every 1s"
            run: sh job.sh
        """)
    d = daemons(jobs, state_dir)
    wait_for(lambda: any(r["state"] == "succeeded" and r["commit_id"] == commit
                         for r in runs(state_dir)), 15, "a run of the repository's commit")

    # outage 1: runs go on with the last commit, and say why
    gone_at = time.time()
    repo.rename(gone)
    wait_for(lambda: any(r["created_at"] > gone_at and r["warning"]
                         and "cannot fetch" in r["warning"] for r in runs(state_dir)),
             15, "a run warning about the failed fetch")
    for r in runs(state_dir):
        if r["created_at"] > gone_at and r["state"] != "skipped":
            assert r["commit_id"] == commit, r
    wait_for(lambda: len(s.messages()) >= 1, 15, "the alarm")
    alarm_at = time.time()
    [m] = s.messages()
    assert m["To"] == "root@example.com"
    assert re.fullmatch(r"\[eph\] source unreachable for ([2-9]|\d\d)\.\ds: "
                        + re.escape(url), m["Subject"]), m["Subject"]
    body = m.get_content()
    assert f"Repository:    {url}\n" in body, body
    assert "Branch:        main\n" in body, body
    assert f"Runs now use:  {commit}\n" in body, body
    assert "has failed for " in body and "(mail.source_alarm is 2s)" in body, body
    assert "repo.gone" not in body  # git's words name the missing repository as configured
    assert str(repo) in body.split("git's words):")[1], body
    assert "on_fetch_error is use_last, so runs go on with " + commit in body, body
    assert "(mailed mail.admin): fatal: " in d.text()
    since = mirror_state(state_dir)["failing_since"]
    assert gone_at - 5 < since < alarm_at  # (a fetch may have started just before)

    # it keeps failing, runs keep fetching: no second message
    n_runs = len(runs(state_dir))
    wait_for(lambda: len(runs(state_dir)) >= n_runs + 3, 15, "three more runs")
    assert not mirror_state(state_dir)["ok"]
    assert mirror_state(state_dir)["failing_since"] == since
    assert len(s.messages()) == 1

    # a daemon killed and restarted during the outage: still one
    d.p.send_signal(signal.SIGKILL)
    d.p.wait()
    d2 = daemons(jobs, state_dir, log_name="daemon2.log")
    restarted = time.time()
    wait_for(lambda: sum(r["created_at"] > restarted for r in runs(state_dir)) >= 3
             and mirror_state(state_dir)["attempt_at"] > restarted, 15,
             "three runs of the restarted daemon, and a failed fetch")
    assert mirror_state(state_dir)["failing_since"] == since
    # the outbox is written when the run is created: a second alarm would be there already
    time.sleep(0.5)
    assert len(s.messages()) == 1
    assert len([o for o in outbox(state_dir) if o["dedup"].startswith("admin:source:")]) == 1

    # the repository is back: the outage ends; then away again: a second outage, a second mail
    gone.rename(repo)
    wait_for(lambda: mirror_state(state_dir).get("ok") is True, 15, "a successful fetch")
    assert "failing_since" not in mirror_state(state_dir)
    back = time.time()
    wait_for(lambda: any(r["created_at"] > back and r["state"] == "succeeded"
                         and not r["warning"] for r in runs(state_dir)), 15,
             "a run without a warning")
    repo.rename(gone)
    wait_for(lambda: len(s.messages()) >= 2, 15, "the second alarm")
    assert mirror_state(state_dir)["failing_since"] > since
    assert d2.stop() == 0
    msgs = s.messages()
    assert len(msgs) == 2
    assert msgs[1]["Subject"].startswith("[eph] source unreachable for ")
    assert len({o["dedup"] for o in outbox(state_dir)}) == 2
