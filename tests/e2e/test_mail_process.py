"""Mail is sent by eph-mail, a process of its own next to eph: the daemon never maps libcurl
(4.3 MiB of RSS in every process that does) and still delivers; without eph-mail the daemon
says so once and the mail stays queued; eph-mail's own interface (settings as JSON on stdin,
JSON lines on stdout)."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from conftest import SANITIZER_EXIT, eph_bin, wait_for
from test_daemon import daemons, write_jobs  # noqa: F401 (the fixture)
from test_daemon_mail import jobs_yaml, outbox
from test_mail import smtpd  # noqa: F401 (the fixture)

FAILING_JOB = """\
          broken:
            schedule: "@every 2s"
            run: echo boom; exit 3
            notify: { on: [failure] }
        """


def mapped(pid, name):
    with open(f"/proc/{pid}/maps") as f:
        return [line for line in f if name in line]


def test_the_daemon_does_not_map_libcurl_and_still_delivers(tmp_path, smtpd, daemons,
                                                            state_dir):
    s = smtpd().start()
    jobs = write_jobs(tmp_path / "jobs.yaml", jobs_yaml(s.port, FAILING_JOB))
    d = daemons(jobs, state_dir)
    wait_for(lambda: len(s.messages()) >= 1, 20, "a failed run's message")
    # the check would fail if it looked at the wrong thing: the daemon maps its own libraries
    assert mapped(d.p.pid, "libuv"), "not the daemon's maps?"
    assert mapped(d.p.pid, "libcurl") == []
    # eph-mail's report became the daemon's own log line
    wait_for(lambda: 'mail "[eph] broken: failed after' in d.text() and '" sent' in d.text(),
             10, "the log line of the message sent")
    assert mapped(d.p.pid, "libcurl") == []
    assert d.stop() == 0
    assert "eph-mail" not in d.text(), d.text()  # no error about it
    m = s.messages()[0]
    assert m["Subject"].startswith("[eph] broken: failed after ")
    assert any(r["state"] == "sent" for r in outbox(state_dir))


def test_without_eph_mail_the_daemon_says_so_once_and_the_mail_stays_queued(tmp_path, smtpd,
                                                                            state_dir):
    s = smtpd().start()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    eph = bindir / "eph"
    shutil.copy2(eph_bin(), eph)  # eph alone: no eph-mail (nor eph-agent) next to it
    jobs = write_jobs(tmp_path / "jobs.yaml", jobs_yaml(s.port, FAILING_JOB))
    log_path = tmp_path / "daemon.log"
    with open(log_path, "ab") as log:
        p = subprocess.Popen([str(eph), "daemon", str(jobs)], stdout=subprocess.DEVNULL,
                             stderr=log, env=dict(os.environ, EPH_STATE=str(state_dir)))
    try:
        text = lambda: log_path.read_text(errors="replace")  # noqa: E731
        wait_for(lambda: sum(r["state"] == "queued" for r in outbox(state_dir)) >= 2, 20,
                 "two queued messages")
        wait_for(lambda: "eph-mail" in text(), 5, "the error about eph-mail")
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=10)
    assert rc not in SANITIZER_EXIT, text()
    assert rc == 0, text()
    said = [line for line in text().splitlines() if "eph-mail" in line]
    assert len(said) == 1, said  # once, however many messages were queued
    assert "error" in said[0] and str(bindir / "eph-mail") in said[0]
    assert "stays queued" in said[0]
    rows = outbox(state_dir)
    assert len(rows) >= 2
    assert all(r["state"] == "queued" and r["attempts"] == 0 for r in rows), rows
    assert s.messages() == []


def eph_mail(args, stdin, env=None):
    p = subprocess.run([str(Path(eph_bin()).parent / "eph-mail"), *args], input=stdin,
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **(env or {})))
    assert p.returncode not in SANITIZER_EXIT, p.stderr
    return p


def test_eph_mail_reads_its_settings_on_stdin_and_reports_json_lines(tmp_path, smtpd,
                                                                     state_dir):
    s = smtpd().start()
    settings = {"smtp": f"smtp://127.0.0.1:{s.port}", "from": "eph@example.com",
                "starttls": False, "timeout": 10, "max_age": 3600, "admin": []}
    # bad input: not JSON
    p = eph_mail(["send", "--state", str(tmp_path / "st")], "{nope")
    assert p.returncode == 2
    [line] = p.stdout.splitlines()
    assert "error" in json.loads(line)
    # an empty outbox (the store is created): the counts, nothing else
    p = eph_mail(["send", "--all", "--state", str(state_dir)], json.dumps(settings))
    assert p.returncode == 0, p.stderr
    assert [json.loads(l) for l in p.stdout.splitlines()] == [
        {"sent": 0, "retried": 0, "given_up": 0, "last_error": None}]
    # test: the server's words, its exit status
    p = eph_mail(["test", "me@example.com"], json.dumps(settings))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("sent a test message to me@example.com")
    wait_for(lambda: len(s.messages()) == 1, 5, "the test message")
    settings["smtp"] = "smtp://127.0.0.1:1"
    t0 = time.monotonic()
    p = eph_mail(["test", "me@example.com"], json.dumps(settings))
    assert p.returncode == 1
    assert "not sent to me@example.com" in p.stderr and time.monotonic() - t0 < 15


def test_a_foreground_run_without_eph_mail_says_so_and_keeps_the_mail(tmp_path, smtpd,
                                                                      state_dir):
    s = smtpd().start()
    jobs = write_jobs(tmp_path / "jobs.yaml", jobs_yaml(s.port, FAILING_JOB))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    eph = bindir / "eph"
    shutil.copy2(eph_bin(), eph)  # eph alone: no eph-mail next to it
    p = subprocess.run([str(eph), "-f", str(jobs), "run", "broken"], capture_output=True,
                       text=True, env=dict(os.environ, EPH_STATE=str(state_dir)), timeout=60)
    assert p.returncode == 1, p.stderr  # the run failed, as it should
    assert p.returncode not in SANITIZER_EXIT
    assert f"cannot send: {bindir / 'eph-mail'}" in p.stderr, p.stderr
    assert "eph-mail belongs next to eph" in p.stderr
    [row] = outbox(state_dir)
    assert row["state"] == "queued" and row["attempts"] == 0, row
    assert s.messages() == []
    # with eph-mail there, `eph mail send` delivers what was kept, even with its stdin
    # closed (the settings' pipe is then fd 0 itself, which must survive the exec)
    p = subprocess.run(["sh", "-c", 'exec "$0" -f "$1" mail send <&-', eph_bin(), str(jobs)],
                       capture_output=True, text=True,
                       env=dict(os.environ, EPH_STATE=str(state_dir)), timeout=60)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: len(s.messages()) == 1, 20, "the kept message")
    assert outbox(state_dir)[0]["state"] == "sent"
