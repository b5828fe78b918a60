"""results_store end to end (docs/results.md): runs' results uploaded to a real S3-compatible
server on loopback, moto's moto_server, VERIFYING signatures (FACTS.md: started with
INITIAL_NO_AUTH_ACTION_COUNT=3, the first three requests make an IAM user, its policy and its
access key; from then on a bad key gets 403 InvalidAccessKeyId and a bad signature 403
SignatureDoesNotMatch). The bucket is listed and read back with signed requests (curl's own
--aws-sigv4), never through eph. A store that is down is a loopback forwarder in front of moto
that stops listening, so the same server (and its keys) comes back.

moto is looked for in $EPH_TEST_VENV (scripts/deps.sh installs it there from the package
index), then on PATH; without it these tests fail and say so.

moto's verifier (5.2) gets keys with "+" or non-ASCII bytes wrong (boto3's own requests are
refused the same way), so the results here use spaces and subdirectories only."""

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_eph, store_rows, wait_for
from test_daemon import daemons, write_jobs  # noqa: F401 (the fixture)
from test_mail import free_port, smtpd  # noqa: F401 (the fixture)

BUCKET = "eph-results"
REGION = "us-east-1"
IAM_AUTH = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/"
            "aws4_request, SignedHeaders=host, Signature=0")


def moto_server_path():
    venv = os.environ.get("EPH_TEST_VENV",
                          os.path.expanduser("~/.cache/ephemeron/test-venv"))
    cand = os.path.join(venv, "bin", "moto_server")
    if os.access(cand, os.X_OK):
        return cand
    return shutil.which("moto_server")


class Moto:
    """One moto_server verifying signatures, with an IAM user allowed everything, its key,
    and the bucket."""

    def __init__(self, tmp):
        path = moto_server_path()
        if path is None:
            pytest.fail("moto_server not found (in $EPH_TEST_VENV or on PATH): scripts/deps.sh "
                        "installs it (pip install 'moto[server]') where a package index is "
                        "reachable")
        self.port = free_port()
        self.log_path = tmp / "moto.log"
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        self.p = subprocess.Popen([path, "-H", "127.0.0.1", "-p", str(self.port)],
                                  stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                assert self.p.poll() is None, self.log_path.read_text()
                return False

        wait_for(up, 20, "moto_server to listen")
        self.iam("CreateUser", UserName="eph")
        policy = json.dumps({"Version": "2012-10-17",
                             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        self.iam("PutUserPolicy", UserName="eph", PolicyName="all", PolicyDocument=policy)
        xml = self.iam("CreateAccessKey", UserName="eph")
        self.access = re.search(r"<AccessKeyId>([^<]+)<", xml)[1]
        self.secret = re.search(r"<SecretAccessKey>([^<]+)<", xml)[1]
        code, body = self.s3("PUT", f"/{BUCKET}")
        assert code == 200, body

    def iam(self, action, **params):
        q = urllib.parse.urlencode(dict(Action=action, Version="2010-05-08", **params))
        req = urllib.request.Request(f"{self.url}/?{q}", headers={"Authorization": IAM_AUTH})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def s3(self, method, path, key=None):
        """A request signed by curl's own SigV4: (HTTP status, body bytes)."""
        key = key or (self.access, self.secret)
        p = subprocess.run(
            ["curl", "-s", "-X", method, "--aws-sigv4", f"aws:amz:{REGION}:s3",
             "-u", f"{key[0]}:{key[1]}", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
             "-w", "\n%{http_code}", f"{self.url}{path}"],
            capture_output=True, timeout=20)
        body, _, code = p.stdout.rpartition(b"\n")
        return int(code), body

    def objects(self, prefix=""):
        """{key: size} of the bucket's objects under PREFIX, listed with a signed request."""
        code, body = self.s3("GET", f"/{BUCKET}?list-type=2&prefix={urllib.parse.quote(prefix)}")
        assert code == 200, body
        ns = {"s": "http://s3.amazonaws.com/doc/2006-03-01/"}
        root = ET.fromstring(body)
        return {c.find("s:Key", ns).text: int(c.find("s:Size", ns).text)
                for c in root.findall("s:Contents", ns)}

    def get(self, key):
        code, body = self.s3("GET", f"/{BUCKET}/{urllib.parse.quote(key)}")
        assert code == 200, body
        return body

    def puts(self, key):
        """How many PUTs of object KEY (as its path is written) the server logged."""
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(r"\"PUT /" + BUCKET + "/" + re.escape(key) + " ", text))

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(tmp_path_factory.mktemp("moto"))
    yield m
    m.stop()


class Forwarder:
    """A loopback TCP port forwarding to TARGET while up; while down nothing listens there, so
    a connection is refused, as to a store that is down. Up with ALLOW_PUTS, it goes down by
    itself at the request after that many PUTs (the store failing in the middle of a run's
    files)."""

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.lsock = None
        self.conns = []
        self.lock = threading.Lock()
        self.allow_puts = None

    def up(self, allow_puts=None):
        self.allow_puts = allow_puts
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b, up in ((c, u, True), (u, c, False)):
                threading.Thread(target=self._pipe, args=(a, b, up), daemon=True).start()

    def _pipe(self, a, b, upstream):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if upstream and self.allow_puts is not None and data.startswith(b"PUT /"):
                    if self.allow_puts == 0:
                        self.down()
                        break
                    self.allow_puts -= 1
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self):
        if self.lsock is not None:
            self.lsock.close()
            self.lsock = None
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
            self.conns = []


def helper_clean(text):
    """eph-upload's stderr is eph's (and the daemon's): no sanitizer's report, no bad exit."""
    for bad in ("Sanitizer", "runtime error:", "exited with status", "killed by signal",
                "stay queued for upload"):
        assert bad not in text, text[-4000:]


def key_files(tmp, access, secret, mode=0o600):
    a, s = tmp / "access-key", tmp / "secret-key"
    a.write_text(access + "\n")
    s.write_text(secret + "\n")
    a.chmod(mode)
    s.chmod(mode)
    return a, s


def jobs_file(tmp, endpoint, prefix, access, secret, extra="", jobs=None):
    a, s = key_files(tmp, access, secret)
    return write_jobs(tmp / "ephemeron.yaml", f"""\
        results_store:
          url: s3://{BUCKET}/{prefix}
          endpoint: {endpoint}
          region: {REGION}
          access_key: {{ file: {a.name} }}
          secret_key: {{ file: {s.name} }}
        {extra}
        jobs:
          report:
            schedule: "0 0 1 1 *"
            run: |
              mkdir -p "$EPH_RESULTS/charts" out
              printf 'day,total\\n1,42\\n' > "$EPH_RESULTS/report.csv"
              head -c 300000 /dev/urandom > "$EPH_RESULTS/charts/daily chart.png"
              echo model > out/model.pkl
              exit ${{EXIT:-0}}
            results: [out/*.pkl]
        """ + (jobs or ""))


def upload_row(state_dir, run_id):
    """Run RUN_ID's row of the uploads table, or None."""
    con = sqlite3.connect(f"file:{state_dir}/eph.db?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        r = con.execute("SELECT * FROM uploads WHERE run_id = ?", (run_id,)).fetchone()
        return dict(r) if r else None
    finally:
        con.close()


def last_run(state_dir):
    return store_rows(state_dir, "runs")[-1]


def show_json(tmp, run_id):
    p = run_eph(["show", str(run_id), "--json"], cwd=tmp)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_eph_run_uploads_each_result_to_prefix_job_run_path(tmp_path, state_dir, moto):
    jobs_file(tmp_path, moto.url, "team/nightly", moto.access, moto.secret)
    p = run_eph(["run", "report"], cwd=tmp_path, env={"EXIT": "3"})  # a failed run too
    assert p.returncode == 1, p.stderr
    helper_clean(p.stderr)
    run = last_run(state_dir)
    rid = run["id"]
    url = f"s3://{BUCKET}/team/nightly/report/{rid}/"
    assert f"results of run {rid} uploaded to {url} (3 files)" in p.stderr
    base = f"team/nightly/report/{rid}/"
    rdir = Path(run["run_dir"]) / "results"
    want = {base + "report.csv": 15, base + "charts/daily chart.png": 300000,
            base + "out/model.pkl": 6}
    assert moto.objects(base) == want
    for key in want:
        assert moto.get(key) == (rdir / key[len(base):]).read_bytes()
    up = show_json(tmp_path, rid)["upload"]
    assert (up["state"], up["url"], up["files"], up["sent"]) == ("done", url, 3, 3)
    assert up["sent_bytes"] == 300021 and up["last_error"] is None
    text = run_eph(["show", str(rid)], cwd=tmp_path).stdout
    assert f"upload      done: 3 files, 293 KiB to {url}" in text
    # the keys are in no record, log or output
    db = (state_dir / "eph.db").read_bytes() + (state_dir / "eph.db-wal").read_bytes() \
        if (state_dir / "eph.db-wal").exists() else (state_dir / "eph.db").read_bytes()
    for secret in (moto.secret, moto.access):
        assert secret.encode() not in db
        assert secret not in p.stderr + p.stdout + text
        for f in Path(run["run_dir"]).rglob("*"):
            if f.is_file():
                assert secret.encode() not in f.read_bytes(), f


def test_key_files_others_can_read_are_refused(tmp_path, state_dir, moto):
    f = jobs_file(tmp_path, moto.url, "x", moto.access, moto.secret)
    (tmp_path / "secret-key").chmod(0o644)
    p = run_eph(["validate", f.name], cwd=tmp_path)
    assert p.returncode == 2
    assert re.search(r"ephemeron\.yaml:\d+:\d+: results_store\.secret_key: .*secret-key can be "
                     r"read by group or others \(mode 0644\)", p.stderr), p.stderr


def test_a_store_down_is_retried_and_resumed_after_a_restart_nothing_lost(
        tmp_path, state_dir, moto, daemons):
    fw = Forwarder(moto.port)
    jobs = jobs_file(tmp_path, f"http://127.0.0.1:{fw.port}", "resume", moto.access, moto.secret)
    # eph run while the store fails after the first of its three files (then stays down): the
    # run is recorded, its upload stays queued with one file sent
    fw.up(allow_puts=1)
    p = run_eph(["run", "report"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    first = last_run(state_dir)["id"]
    assert f"results of run {first} not uploaded yet: out/model.pkl: " in p.stderr, p.stderr
    helper_clean(p.stderr)
    row = upload_row(state_dir, first)
    assert (row["state"], row["attempts"]) == ("queued", 1)
    text = run_eph(["show", str(first)], cwd=tmp_path).stdout
    assert "upload      pending, 1 of 3 files sent" in text and "last error: " in text
    # a daemon started while it is still down tries at once, fails, and is stopped
    d = daemons(jobs, state_dir)
    wait_for(lambda: upload_row(state_dir, first)["attempts"] >= 2, 15, "the daemon's attempt")
    assert d.stop() == 0
    # the store is back; a new daemon resumes the upload at once (not after its backoff)
    fw.up()
    d2 = daemons(jobs, state_dir, log_name="daemon2.log")
    wait_for(lambda: upload_row(state_dir, first)["state"] == "done", 15, "the resumed upload")
    # a run the daemon records while the store is down again: retried with backoff
    fw.down()
    p = run_eph(["run", "report"], cwd=tmp_path)  # through the daemon
    assert p.returncode == 0, p.stderr
    wait_for(lambda: len(store_rows(state_dir, "runs")) == 2
             and upload_row(state_dir, last_run(state_dir)["id"]) is not None
             and upload_row(state_dir, last_run(state_dir)["id"])["attempts"] >= 1, 15,
             "the second run's failed upload")
    second = last_run(state_dir)["id"]
    fw.up()
    wait_for(lambda: upload_row(state_dir, second)["state"] == "done", 20,
             "the second upload after the backoff")
    assert d2.stop() == 0
    fw.down()
    assert "results not uploaded yet (tried again later)" in d2.text()
    helper_clean(d.text() + d2.text())
    for rid in (first, second):
        base = f"resume/report/{rid}/"
        assert sorted(moto.objects(base)) == sorted(
            base + k for k in ("report.csv", "charts/daily chart.png", "out/model.pkl"))
        # each file was sent once: none again after a restart
        assert moto.puts(f"{base}report.csv") == 1
        assert moto.puts(f"{base}charts/daily%20chart.png") == 1
    for secret in (moto.secret, moto.access):
        assert secret not in d2.text()


def test_a_stopped_pass_counts_no_failure_against_the_uploads_it_had_not_begun(
        tmp_path, state_dir):
    # no store at all: two runs recorded, each upload refused a connection once
    port = free_port()
    jobs_file(tmp_path, f"http://127.0.0.1:{port}", "stop", "AKIAEXAMPLE", "not-a-secret")
    for _ in range(2):
        p = run_eph(["run", "report"], cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    ids = [r["id"] for r in store_rows(state_dir, "runs")]
    assert [upload_row(state_dir, i)["attempts"] for i in ids] == [1, 1]
    # a store that takes connections and never answers: the pass hangs on its first put...
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", port))
    hole.listen(16)
    keys = {k: {"name": f"results_store.{k}", "kind": "file", "from": str(tmp_path / f)}
            for k, f in (("access_key", "access-key"), ("secret_key", "secret-key"))}
    settings = {"url": f"s3://{BUCKET}/stop", "bucket": BUCKET, "prefix": "stop",
                "endpoint": f"http://127.0.0.1:{port}", "region": REGION, **keys}
    helper = str(Path(os.environ.get("EPH_BIN") or "build-asan/eph").parent / "eph-upload")
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    with open(tmp_path / "settings.json") as stdin:
        proc = subprocess.Popen([helper, "send", "--all", "--state", str(state_dir)],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        wait_for(lambda: upload_row(state_dir, ids[0])["lease_until"] > 0, 10, "the claim")
        time.sleep(0.5)
        # ...until it is stopped, as the daemon stops it
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        hole.close()
    assert proc.returncode == 0, err
    helper_clean(err)
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0]["run"] == ids[0] and lines[0]["state"] == "queued", lines
    assert "stopped" in lines[0]["error"]
    assert lines[-1] == {"done": 0, "retried": 1, "refused": 0}, lines
    # the one going on stays queued, resumed by the next pass; the other was not touched
    first, second = (upload_row(state_dir, i) for i in ids)
    assert (first["state"], first["attempts"], first["lease_until"]) == ("queued", 2, 0)
    assert (second["state"], second["attempts"], second["lease_until"]) == ("queued", 1, 0)


def test_a_wrong_key_is_said_in_the_run_and_its_mail_and_the_results_are_kept(
        tmp_path, state_dir, moto, smtpd, daemons):
    s = smtpd().start()
    mail = (f"mail: {{ smtp: 'smtp://127.0.0.1:{s.port}', from: eph@example.com, "
            "starttls: false, timeout: 10s }\n"
            "        defaults: { notify: { email: [ops@example.com], on: [failure] } }")
    jobs = jobs_file(tmp_path, moto.url, "refused", "AKIAWRONGWRONGWRONG0", moto.secret,
                     extra=mail)
    p = run_eph(["run", "report"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr  # the run succeeded; its upload did not
    rid = last_run(state_dir)["id"]
    assert f"results of run {rid} NOT uploaded, refused: " in p.stderr
    assert "403 InvalidAccessKeyId" in p.stderr, p.stderr
    helper_clean(p.stderr)
    row = upload_row(state_dir, rid)
    assert row["state"] == "refused" and "InvalidAccessKeyId" in row["last_error"]
    text = run_eph(["show", str(rid)], cwd=tmp_path).stdout
    assert "upload      REFUSED by the store: " in text and "InvalidAccessKeyId" in text
    assert f"the results stay in the run directory (eph results {rid})" in text
    # the results are all kept
    p = run_eph(["results", str(rid), "--json"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(f["path"] for f in json.loads(p.stdout)["files"]) == [
        "charts/daily chart.png", "out/model.pkl", "report.csv"]
    assert moto.objects("refused/") == {}
    # and its mail says so
    wait_for(lambda: len(s.messages()) >= 1, 10, "the mail about the refusal")
    [m] = s.messages()
    assert m["Subject"] == f"[eph] report: results of run {rid} not uploaded (refused)"
    assert m["To"] == "ops@example.com"
    body = m.get_content()
    assert "InvalidAccessKeyId" in body and f"eph results {rid} --to DIR" in body
    assert f"eph results {rid} --upload" in body
    assert moto.secret not in body
    # the same through the daemon: its log and a mail say so
    d = daemons(jobs, state_dir)
    assert run_eph(["run", "report"], cwd=tmp_path).returncode == 0
    wait_for(lambda: len(s.messages()) >= 2, 15, "the mail about the daemon's refusal")
    second = last_run(state_dir)["id"]
    assert d.stop() == 0
    assert upload_row(state_dir, second)["state"] == "refused"
    helper_clean(d.text())
    assert re.search(rf"run {second}.*results NOT uploaded, refused by the store: "
                     r".*403 InvalidAccessKeyId", d.text()), d.text()
    subjects = sorted(m["Subject"] for m in s.messages())
    assert subjects == sorted(f"[eph] report: results of run {i} not uploaded (refused)"
                              for i in (rid, second))
    assert moto.objects("refused/") == {}
    # the key fixed, `eph results RUN --upload` sends a refused run's results after all
    (tmp_path / "access-key").write_text(moto.access + "\n")
    p = run_eph(["results", str(rid), "--upload"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    helper_clean(p.stderr)
    assert f"results of run {rid} uploaded to s3://{BUCKET}/refused/report/{rid}/ (3 files)" \
        in p.stderr
    assert sorted(moto.objects(f"refused/report/{rid}/")) == sorted(
        f"refused/report/{rid}/{k}" for k in ("report.csv", "charts/daily chart.png",
                                             "out/model.pkl"))
    assert show_json(tmp_path, rid)["upload"]["state"] == "done"
    p = run_eph(["results", str(rid), "--upload"], cwd=tmp_path)
    assert (p.returncode, p.stderr) == (0, f"eph: results of run {rid} are uploaded already "
                                           f"(eph show {rid})\n")
    assert moto.objects(f"refused/report/{second}/") == {}  # only the one asked for


def test_a_run_recorded_without_its_upload_queued_is_uploaded_at_the_next_start(
        tmp_path, state_dir, moto, daemons):
    """A crash between recording a run and queueing its upload (here: the run recorded under a
    configuration without results_store) leaves a run of the last day with no upload: the
    daemon's start queues it. Runs older than the first upload ever queued are not: making a
    results_store does not upload the history."""
    plain = write_jobs(tmp_path / "plain.yaml", """\
        jobs:
          report:
            schedule: "0 0 1 1 *"
            run: echo old > "$EPH_RESULTS/a.txt"
        """)
    assert run_eph(["-f", plain, "run", "report"], cwd=tmp_path).returncode == 0
    history = last_run(state_dir)["id"]
    jobs = jobs_file(tmp_path, moto.url, "reconcile", moto.access, moto.secret)
    assert run_eph(["run", "report"], cwd=tmp_path).returncode == 0
    with_store = last_run(state_dir)["id"]
    assert upload_row(state_dir, with_store)["state"] == "done"
    assert run_eph(["-f", plain, "run", "report"], cwd=tmp_path).returncode == 0
    missed = last_run(state_dir)["id"]
    assert upload_row(state_dir, missed) is None
    d = daemons(jobs, state_dir)
    wait_for(lambda: (upload_row(state_dir, missed) or {}).get("state") == "done", 15,
             "the missed run's upload")
    assert d.stop() == 0
    helper_clean(d.text())
    assert moto.objects(f"reconcile/report/{missed}/") == {
        f"reconcile/report/{missed}/a.txt": 4}
    assert upload_row(state_dir, history) is None
    assert moto.objects(f"reconcile/report/{history}/") == {}
