"""Mail, end to end, against a real SMTP server on 127.0.0.1 (aiosmtpd, started and stopped by
each test through tests/e2e/smtpd_server.py): `eph mail test`, AUTH, STARTTLS with a private
CA, the mail of a foreground `eph run` (policy, subject, headers, log tail, no header
injection), and the outbox surviving an SMTP outage."""

import email
import email.policy
import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_eph

SERVER = Path(__file__).resolve().parent / "smtpd_server.py"
HOOKED = ("cmd_mail_after_run(" in (ROOT / "src/cmd/cmd_run.c").read_text()
          or os.environ.get("EPH_TEST_MAIL_HOOK") == "1")
needs_hook = pytest.mark.skipif(
    not HOOKED, reason="src/cmd/cmd_run.c does not call cmd_mail_after_run() yet")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smtpd:
    """One aiosmtpd process; messages land in DIR/new (a Maildir)."""

    def __init__(self, tmp, port=None, tls=None, auth=None, silent_quit=False):
        self.port = port or free_port()
        self.dir = tmp / f"maildir-{self.port}"
        self.tls, self.auth, self.proc = tls, auth, None
        self.silent_quit = silent_quit

    def start(self):
        ready = self.dir.parent / f"ready-{self.port}"
        if ready.exists():
            ready.unlink()
        args = ["/usr/bin/python3", str(SERVER), "--port", str(self.port), "--maildir",
                str(self.dir), "--ready", str(ready)]
        if self.tls:
            args += ["--cert", str(self.tls[0]), "--key", str(self.tls[1])]
        if self.auth:
            args += ["--user", self.auth[0], "--password", self.auth[1]]
        if self.silent_quit:
            args.append("--silent-quit")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 15
        while not ready.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("smtpd did not start: " + self.proc.stderr.read().decode())
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def messages(self):
        new = self.dir / "new"
        if not new.exists():
            return []
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in files]

    def raw(self):
        new = self.dir / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []

    def envelopes(self):
        d = self.dir / "envelopes"
        return [json.loads(p.read_text()) for p in d.iterdir()] if d.exists() else []


@pytest.fixture
def smtpd(tmp_path):
    servers = []

    def make(**kw):
        s = Smtpd(tmp_path, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def cert(tmp_path):
    """A self-signed certificate for 127.0.0.1 / localhost: (cert, key)."""
    c, k = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(k), "-out", str(c), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return c, k


def write_conf(tmp_path, port, *, mail_extra="", jobs=None, scheme="smtp"):
    jobs = jobs or {"hello": {"run": "echo hi", "notify": "{ on: [failure] }"}}
    lines = ["defaults:", "  notify: { email: [ops@example.com] }", "mail:",
             f"  smtp: {scheme}://127.0.0.1:{port}", "  from: eph@example.com",
             "  timeout: 10s"]
    lines += ["  " + l for l in mail_extra.strip().splitlines() if l.strip()]
    lines.append("jobs:")
    for name, j in jobs.items():
        lines.append(f"  {name}:")
        lines.append("    schedule: \"@hourly\"")
        for k, v in j.items():
            lines.append(f"    {k}: {v}")
    path = tmp_path / "ephemeron.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def eph(conf, *args, **kw):
    return run_eph(["-f", conf, *args], **kw)


# eph mail test

def test_mail_test_sends_a_message_with_the_required_headers(tmp_path, smtpd, state_dir):
    s = smtpd().start()
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false")
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 0, p.stderr
    assert "sent a test message to me@example.com" in p.stdout
    [m] = s.messages()
    assert m["To"] == "me@example.com" and m["From"] == "eph@example.com"
    assert m["Subject"].startswith("[eph] test message from ")
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["MIME-Version"] == "1.0"
    assert m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"
    assert m["Content-Transfer-Encoding"] == "8bit"
    assert m["Message-ID"].startswith("<eph.") and "@" in m["Message-ID"]
    assert m["Date"].datetime.tzinfo is not None
    assert [e["rcpt_tos"] for e in s.envelopes()] == [["me@example.com"]]


def test_a_server_silent_after_accepting_does_not_hold_eph(tmp_path, smtpd, state_dir):
    """libcurl waits for the reply to QUIT, blocking, up to the timeout; once the message is
    accepted eph does not wait (the daemon's loop must not block on it)."""
    s = smtpd(silent_quit=True).start()
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false")  # timeout: 10s
    t0 = time.monotonic()
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 5
    assert len(s.messages()) == 1


def test_mail_test_with_the_server_down_says_it_could_not_connect(tmp_path, state_dir):
    conf = write_conf(tmp_path, free_port(), mail_extra="starttls: false")
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 1
    assert "not sent to me@example.com" in p.stderr
    assert "connect" in p.stderr.lower()


def test_starttls_is_required_by_default(tmp_path, smtpd, state_dir):
    s = smtpd().start()  # no TLS offered
    conf = write_conf(tmp_path, s.port)
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 1
    assert "STARTTLS" in p.stderr or "TLS" in p.stderr, p.stderr
    assert s.messages() == []


def password_file(tmp_path, text, mode=0o600):
    pw = tmp_path / "smtp-password"
    pw.write_text(text + "\n")
    pw.chmod(mode)
    return pw


def test_auth_with_a_password_file(tmp_path, smtpd, state_dir):
    s = smtpd(auth=("eph", "s3cret pass")).start()
    pw = password_file(tmp_path, "s3cret pass")
    conf = write_conf(tmp_path, s.port, mail_extra=f"""
starttls: false
username: eph
password_file: {pw}""")
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 0, p.stderr
    assert len(s.messages()) == 1
    assert "s3cret" not in p.stdout + p.stderr


def test_auth_refused_shows_what_the_server_said(tmp_path, smtpd, state_dir):
    s = smtpd(auth=("eph", "right")).start()
    pw = password_file(tmp_path, "wrong")
    conf = write_conf(tmp_path, s.port, mail_extra=f"""
starttls: false
username: eph
password_file: {pw}""")
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 1
    assert "127.0.0.1 said: 535 5.7.8 Authentication credentials invalid" in p.stderr, p.stderr
    assert "wrong" not in p.stderr
    assert s.messages() == []


def test_a_password_file_others_can_read_is_refused(tmp_path, smtpd, state_dir):
    s = smtpd(auth=("eph", "pw")).start()
    pw = password_file(tmp_path, "pw", mode=0o644)
    conf = write_conf(tmp_path, s.port, mail_extra=f"""
starttls: false
username: eph
password_file: {pw}""")
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 2
    assert f"mail.password_file {pw} can be read by group or others (mode 0644)" in p.stderr
    assert s.messages() == []


def test_starttls_with_a_self_signed_certificate_and_ca_file(tmp_path, smtpd, cert,
                                                             state_dir):
    s = smtpd(tls=cert, auth=("eph", "pw")).start()
    pw = password_file(tmp_path, "pw")
    base = f"""
username: eph
password_file: {pw}"""
    # without the CA the certificate is not trusted
    conf = write_conf(tmp_path, s.port, mail_extra=base)
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 1
    assert "certificate" in p.stderr.lower(), p.stderr
    conf = write_conf(tmp_path, s.port, mail_extra=base + f"\nca_file: {cert[0]}")
    p = eph(conf, "mail", "test", "me@example.com")
    assert p.returncode == 0, p.stderr
    assert len(s.messages()) == 1


# the mail of a foreground run

FAIL_JOB = {"run": "'for i in $(seq 1 60); do echo line $i; done; echo .dot-line; exit 3'",
            "notify": "{ on: [failure] }"}


def run_job(conf, job):
    return eph(conf, "run", job, timeout=120)


@needs_hook
def test_a_failing_run_sends_one_message_with_subject_headers_and_log_tail(tmp_path, smtpd,
                                                                          state_dir):
    s = smtpd().start()
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false", jobs={"nightly": FAIL_JOB})
    p = run_job(conf, "nightly")
    assert p.returncode == 1
    [m] = s.messages()
    assert m["Subject"].startswith("[eph] nightly: failed after ")
    assert "(exit 3" in m["Subject"]
    assert m["To"] == "ops@example.com"
    assert m["Auto-Submitted"] == "auto-generated"
    body = m.get_content()
    assert "Job:        nightly" in body
    assert "Outcome:    failed" in body
    lines = body.splitlines()
    # the last 50 lines of the log: lines 12..60 and the dot line
    assert "line 12" in lines and "line 60" in lines and "line 11" not in lines
    assert ".dot-line" in lines  # curl dot-stuffs it; the server unstuffs it
    run_id = p.stderr.split("run ")[-1].split()[0]
    assert f"eph show {run_id}" in body
    # run again: a second run is a second message, the first is not sent again
    run_job(conf, "nightly")
    assert len(s.messages()) == 2


@needs_hook
def test_a_succeeding_run_with_on_failure_sends_nothing(tmp_path, smtpd, state_dir):
    s = smtpd().start()
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false",
                      jobs={"ok": {"run": "true", "notify": "{ on: [failure] }"}})
    assert run_job(conf, "ok").returncode == 0
    assert s.messages() == []


@needs_hook
def test_recovered_fires_once(tmp_path, smtpd, state_dir):
    s = smtpd().start()
    flag = tmp_path / "fail"
    flag.write_text("x")
    job = {"run": f"'test ! -e {flag}'", "notify": "{ on: [recovered] }"}
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false", jobs={"flaky": job})
    assert run_job(conf, "flaky").returncode == 1
    assert s.messages() == []  # on: [recovered] only
    flag.unlink()
    assert run_job(conf, "flaky").returncode == 0
    [m] = s.messages()
    assert m["Subject"].startswith("[eph] flaky: recovered, succeeded after ")
    assert run_job(conf, "flaky").returncode == 0
    assert len(s.messages()) == 1


@needs_hook
def test_output_cannot_inject_a_header(tmp_path, smtpd, state_dir):
    s = smtpd().start()
    job = {"run": "'printf \"x\\r\\nBcc: victim@example.com\\r\\n\\nBcc: victim2@example.com\\n\"; "
                  "exit 1'",
           "notify": "{ on: [failure] }"}
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false", jobs={"evil": job})
    assert run_job(conf, "evil").returncode == 1
    [m] = s.messages()
    assert m["Bcc"] is None
    assert [e["rcpt_tos"] for e in s.envelopes()] == [["ops@example.com"]]
    [raw] = s.raw()
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    assert b"victim" not in head
    assert "victim2@example.com" in m.get_content()


@needs_hook
def test_mail_queued_while_the_server_is_down_arrives_exactly_once(tmp_path, smtpd,
                                                                   state_dir):
    s = smtpd()  # not started
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false",
                      jobs={"nightly": FAIL_JOB,
                            "ok": {"run": "true", "notify": "{ on: [failure] }"}})
    p = run_job(conf, "nightly")
    assert p.returncode == 1
    assert "1 message(s) not sent (1 queued for a retry, 0 given up)" in p.stderr
    listed = eph(conf, "mail", "list")
    assert "[eph] nightly: failed" in listed.stdout and "1 attempt(s)" in listed.stdout
    s.start()
    # the next foreground command that sends mail (here a run of another job) flushes it
    assert run_job(conf, "ok").returncode == 0
    assert len(s.messages()) == 1
    assert run_job(conf, "ok").returncode == 0
    assert eph(conf, "mail", "send").returncode == 0
    assert len(s.messages()) == 1
    assert eph(conf, "mail", "list").stdout == ""


def test_mail_send_flushes_the_outbox_after_an_outage(tmp_path, smtpd, state_dir):
    """The outbox path without the run hook: a message queued by `eph mail send` failing is
    sent exactly once when the server is back."""
    s = smtpd()
    conf = write_conf(tmp_path, s.port, mail_extra="starttls: false")
    import sqlite3
    # queue one message the way notify_run_finished does (the store creates the table)
    assert eph(conf, "mail", "send").returncode == 0  # creates the store, nothing queued
    db = sqlite3.connect(state_dir / "eph.db")
    msg = (b"From: eph@example.com\r\nTo: ops@example.com\r\nSubject: queued\r\n\r\n"
           b"body\r\n")
    db.execute("INSERT INTO outbox (dedup, mail_from, rcpt, subject, message, state, "
               "created_at, next_at) VALUES ('t:1', 'eph@example.com', 'ops@example.com\n', "
               "'queued', ?, 'queued', ?, ?)", (msg, time.time(), time.time()))
    db.commit()
    db.close()
    p = eph(conf, "mail", "send")
    assert p.returncode == 1
    assert "1 queued for a retry" in p.stderr
    s.start()
    p = eph(conf, "mail", "send")
    assert p.returncode == 0, p.stderr
    assert "1 message(s) sent" in p.stdout
    assert eph(conf, "mail", "send").stdout.startswith("0 message(s) sent")
    [m] = s.messages()
    assert m["Subject"] == "queued"
