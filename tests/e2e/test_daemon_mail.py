"""The daemon's mail, end to end: the real daemon on `@every 2s` schedules, a real SMTP server
(tests/e2e/smtpd_server.py), the outbox surviving kill -9, and the admin's mail about a
configuration that failed to reload."""

import re
import signal
import time

from conftest import store_rows
from test_daemon import daemons, wait_for, write_jobs  # noqa: F401 (the fixture)
from test_mail import Smtpd, free_port, smtpd  # noqa: F401 (the fixture)


def jobs_yaml(port, jobs, admin=True):
    """A jobs file (for write_jobs, which dedents) with mail to 127.0.0.1:PORT and JOBS, given
    indented as "jobs:" entries ten spaces deep."""
    lines = ["defaults:", "  notify: { email: [ops@example.com] }", "mail:",
             f"  smtp: smtp://127.0.0.1:{port}", "  from: eph@example.com",
             "  starttls: false", "  timeout: 10s"]
    if admin:
        lines.append("  admin: [root@example.com]")
    lines.append("jobs:")
    return "".join(" " * 8 + l + "\n" for l in lines) + jobs


def outbox(state_dir):
    return store_rows(state_dir, "outbox")


def runs(state_dir):
    return store_rows(state_dir, "runs")


def test_each_failed_run_sends_one_message_and_a_retried_attempt_none(tmp_path, smtpd,
                                                                       daemons, state_dir):
    s = smtpd().start()
    jobs = write_jobs(tmp_path / "jobs.yaml", jobs_yaml(s.port, """\
          flaky:
            schedule: "@every 2s"
            run: echo boom; exit 3
            retries: 1
            retry_backoff: 1s
            notify: { on: [failure] }
        """))
    d = daemons(jobs, state_dir)
    wait_for(lambda: len(s.messages()) >= 2, 20, "two messages")
    assert d.stop() == 0
    failed = [r for r in runs(state_dir) if r["state"] == "failed"]
    # the first attempt is retried: only the last attempt of each run is mailed
    mailed = {r["run_id"] for r in outbox(state_dir)}
    assert mailed, "nothing queued"
    assert mailed <= {r["id"] for r in failed if r["attempt"] == 2}
    assert not mailed & {r["id"] for r in failed if r["attempt"] == 1}
    msgs = s.messages()
    ids = [m.get_content().split("eph show ")[1].split()[0] for m in msgs]
    assert len(ids) == len(set(ids)), "a run was mailed twice"
    for m in msgs:
        assert m["Subject"].startswith("[eph] flaky: failed after "), m["Subject"]
        assert "(exit 3" in m["Subject"]
        assert m["To"] == "ops@example.com"


def test_mail_queued_when_the_server_was_down_arrives_once_after_kill_and_restart(
        tmp_path, smtpd, daemons, state_dir):
    """Issue 6: the run fails while the SMTP server is down, the daemon is killed (-9), the
    server comes back, the restarted daemon sends the queued message at once: exactly once."""
    s = smtpd()  # not started yet
    marker = tmp_path / "failed-once"
    jobs = write_jobs(tmp_path / "jobs.yaml", jobs_yaml(s.port, f"""\
          once:
            schedule: "@every 2s"
            run: 'test -e {marker} || {{ touch {marker}; exit 3; }}'
            notify: {{ on: [failure] }}
        """))
    d = daemons(jobs, state_dir)
    # queued, and the sender's first attempt failed (connection refused): backoff 30 s
    wait_for(lambda: any(m["state"] == "queued" and m["attempts"] >= 1
                         for m in outbox(state_dir)), 20, "a failed attempt")
    d.p.send_signal(signal.SIGKILL)
    d.p.wait()
    s.start()
    d2 = daemons(jobs, state_dir, log_name="daemon2.log")
    wait_for(lambda: len(s.messages()) >= 1, 10, "the message after the restart")
    time.sleep(2.5)  # more runs (all succeeding) and sender passes: nothing more
    assert d2.stop() == 0
    [m] = s.messages()
    assert m["Subject"].startswith("[eph] once: failed after ")
    [row] = outbox(state_dir)
    assert row["state"] == "sent"


def test_a_broken_reload_mails_the_admin_once(tmp_path, smtpd, daemons, state_dir):
    s = smtpd().start()
    good = jobs_yaml(s.port, """\
          idle:
            schedule: "0 0 1 1 *"
            run: "true"
        """)
    jobs = write_jobs(tmp_path / "jobs.yaml", good)
    d = daemons(jobs, state_dir)
    broken = good.rstrip(" ") + "            bogus_key: 1\n"  # a key no job has
    write_jobs(jobs, broken)
    wait_for(lambda: "reload (the file changed) failed" in d.text(), 10, "the failed reload")
    wait_for(lambda: len(s.messages()) >= 1, 10, "the admin's message")
    # the same failure again (SIGHUP, and a save of the same text): no second message
    d.p.send_signal(signal.SIGHUP)
    write_jobs(jobs, broken)
    wait_for(lambda: d.text().count(") failed: kept the last good") >= 3, 10,
             "two more failed reloads")
    time.sleep(0.5)
    assert d.stop() == 0
    [m] = s.messages()
    assert m["Subject"] == "[eph] configuration failed to reload"
    assert m["To"] == "root@example.com"
    body = m.get_content()
    assert re.search(re.escape(str(jobs)) + r":\d+:\d+: .*bogus_key", body), body
