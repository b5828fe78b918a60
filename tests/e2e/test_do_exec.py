"""The `digitalocean` executor end to end (issue 13): the real `eph daemon` in a network
namespace of its own makes a droplet for each run through `eph-cloud` against the test cloud
(docloud.py: a fake of the API whose droplets boot as test hosts with real sshd, from the
cloud-init keys the daemon gave them), runs the job there over ssh, and deletes it. What the
daemon records is checked against what the cloud saw: the size chosen, the droplet deleted
and confirmed gone, a 422, a droplet deleted behind our back, a kill -9 of the daemon, a boot
that never ends."""

import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

from conftest import wait_for
from docloud import DoCloud
from sshpool import MiB, Pool
from test_mail import free_port

SMTPD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smtpd_server.py")

TERMINAL = {"succeeded", "failed", "oom", "timeout", "killed", "cancelled", "lost", "skipped"}


class Cloud:
    """A scheduler (sshpool.Pool: its namespace, repository, state) and the test cloud."""

    def __init__(self, tmp_path, boot_delay=0.3):
        self.p = Pool(tmp_path)
        self.c = DoCloud(self.p.net, boot_delay=boot_delay)
        self.token = self.c.token_file(tmp_path / "do-token")

    def jobs(self, jobs, files=None, executor="", boot_timeout="30s", top=""):
        p = self.p
        for name, text in (files or {}).items():
            (p.repo / name).write_text(textwrap.dedent(text))
        if files:
            p.git("add", "-A")
            p.git("commit", "-qm", "files")
        text = (f"source: {{ repo: {p.repo}, refresh: 0 }}\n" + top +
                "executors:\n  cloud:\n    type: digitalocean\n"
                f"    token_file: {self.token}\n"
                "    region: fra1\n"
                f"    api_url: {self.c.url}\n"
                f"    boot_timeout: {boot_timeout}\n"
                "    reconcile: 2s\n"
                "    lost_after: 5s\n"
                + "".join(f"    {l}\n" for l in textwrap.dedent(executor).splitlines()
                          if l.strip())
                + "jobs:\n"
                + "".join(f"  {n}: {{ schedule: \"0 0 1 1 *\", executor: cloud, {e} }}\n"
                          for n, e in jobs.items()))
        tmp = p.jobs_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, p.jobs_file)

    def handle(self, rid):
        r = self.p.row(rid)
        return json.loads(r["handle"]) if r and r["handle"] else {}

    def wait_no_droplets(self, timeout=30):
        wait_for(lambda: not self.c.droplets(), timeout=timeout,
                 what=f"every droplet deleted: {list(self.c.droplets())}\n{self.p.logs()}")

    def close(self):
        try:
            for d in self.p.daemons:
                if d.p.poll() is None:
                    d.stop(signal.SIGKILL)
            self.c.close()
        finally:
            self.p.close()


@pytest.fixture
def cloud(tmp_path):
    c = Cloud(tmp_path)
    yield c
    c.close()


def test_a_run_end_to_end_on_a_droplet_made_for_it_then_deleted(cloud):
    cloud.c.firewalls["fw-1"] = set()
    cloud.jobs({"hello_job": "run: sh a.sh, memory: 300MiB"},
               files={"a.sh": "echo hi from $(hostname) ; echo attempt $EPH_ATTEMPT\n"},
               executor="firewall: fw-1")
    cloud.p.daemon()
    rid = cloud.p.run("hello_job")
    row = cloud.p.wait_end(rid)
    assert row["state"] == "succeeded", (row, cloud.p.logs())
    assert "hi from" in cloud.p.output(rid)
    h = cloud.handle(rid)
    assert h["type"] == "digitalocean"
    assert h["size"] == "s-1vcpu-1gb"  # 300 MiB + the 256 MiB reserve: 1 GiB is the cheapest
    did = h["droplet"]
    assert cloud.c.firewalls["fw-1"] == {did}  # put behind the executor's firewall
    # the droplet was named after the job (its "_" made "-") and tagged with the instance
    d = cloud.c.droplet(did)
    assert d.name == f"eph-hello-job-{rid}"
    instance = (cloud.p.state / "instance").read_text().strip()
    assert set(d.tags) >= {"ephemeron", f"eph-instance:{instance}", f"eph-run:{rid}"}
    # the host key it booted with is the one pinned: never learned on first use
    assert "ssh_keys" in d.user_data and "ed25519_private" in d.user_data
    keys = cloud.p.state / "runs" / str(rid) / "cloud"
    assert keys.stat().st_mode & 0o777 == 0o700
    pub = (keys / "host_ed25519.pub").read_text().split()[1]
    assert pub in d.user_data and pub in (keys / "known_hosts").read_text()
    assert not (keys / "host_ed25519").exists()  # its private half went to the machine only
    assert (keys / "login").stat().st_mode & 0o077 == 0
    cloud.wait_no_droplets()
    wait_for(lambda: "machine" in cloud.p.phases(rid), what="the machine phase")
    ph = cloud.p.phases(rid)
    assert {"size", "create", "boot", "ship", "delete", "machine"} <= set(ph), ph
    assert ph["machine"]["seconds"] >= ph["boot"]["seconds"]
    # its cost: the size's price for the seconds billed, at least 60 s or $0.01
    m = cloud.p.show(rid)["machine"]
    assert m["size"] == "s-1vcpu-1gb" and m["price_hourly"] == pytest.approx(6 / 672, 1e-3)
    assert m["billed_seconds"] == pytest.approx(ph["machine"]["seconds"])
    assert m["cost"] == pytest.approx(max(0.01, m["price_hourly"] * max(60, m["billed_seconds"])
                                          / 3600))
    text = cloud.p.eph("show", str(rid)).stdout
    assert "machine     s-1vcpu-1gb at $0.00893 an hour" in text and "billed: $0.0100" in text
    # eph cost prices it on the executor's ladder (the cached catalogue): the 1 GB size
    cost = json.loads(cloud.p.eph("cost", "--json").stdout)
    job = [j for j in cost["jobs"] if j["job"] == "hello_job"][0]
    assert job["runs"] == 1 and job["unpriced_runs"] == 0 and job["cost"] >= 0.01, job
    # always on: the smallest size its peak fits in, counted for its memory less the reserve
    assert job["always_on"] == {"size": "s-1vcpu-512mb-10gb", "memory": 256 * MiB,
                                "price_monthly": 4.0}, job
    # the token is in no log, no record, no argv
    assert cloud.c.token not in cloud.p.logs()
    assert cloud.c.token not in json.dumps(cloud.p.rows(), default=str)
    cloud.p.stop()


def test_the_size_follows_the_memory_and_a_job_larger_than_its_limit_ends_oom(cloud):
    hog = ("import time\nb = bytearray(500 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
           "time.sleep(1)\n")
    cloud.jobs({"small": "run: 'true', memory: 300MiB",
                "mid": "run: 'true', memory: 3GiB",
                "big": "run: 'true', memory: 12GiB",
                "hog": "run: python3 hog.py, memory: 300MiB"},
               files={"hog.py": hog})
    cloud.p.daemon()
    ids = {j: cloud.p.run(j) for j in ("small", "mid", "big", "hog")}
    rows = {j: cloud.p.wait_end(i) for j, i in ids.items()}
    assert rows["small"]["state"] == "succeeded", rows["small"]
    assert rows["mid"]["state"] == "succeeded", rows["mid"]
    assert rows["big"]["state"] == "succeeded", rows["big"]
    assert rows["hog"]["state"] == "oom", (rows["hog"], cloud.p.output(ids["hog"]))
    assert cloud.handle(ids["small"])["size"] == "s-1vcpu-1gb"
    assert cloud.handle(ids["mid"])["size"] == "s-2vcpu-4gb"  # 3 GiB + 256 MiB: 4 GiB
    assert cloud.handle(ids["big"])["size"] == "m-2vcpu-16gb"  # the cheapest of 16 GiB
    cloud.wait_no_droplets()
    cloud.p.stop()
    # with the catalogue cached by those runs, eph validate says offline that no size holds
    # a job of 64 GiB (the largest here is 32 GB)
    cloud.jobs({"small": "run: 'true', memory: 300MiB", "huge": "run: 'true', memory: 64GiB"})
    p = cloud.p.eph("validate", check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert ('job huge needs 64 GiB but no size of executor cloud in fra1 holds it with the '
            '256 MiB reserve') in p.stderr, p.stderr
    assert "small" not in p.stderr


def test_a_size_refused_with_422_gives_way_to_the_next(cloud):
    cloud.jobs({"a": "run: 'true', memory: 300MiB"})
    cloud.c.faults(unavailable=["s-1vcpu-1gb"])
    d = cloud.p.daemon()
    rid = cloud.p.run("a")
    row = cloud.p.wait_end(rid)
    assert row["state"] == "succeeded", (row, cloud.p.logs())
    assert cloud.handle(rid)["size"] == "s-1vcpu-2gb"
    assert "size s-1vcpu-1gb refused in fra1" in d.text()
    cloud.wait_no_droplets()
    cloud.p.stop()


def test_a_droplet_deleted_behind_our_back_makes_its_run_lost_and_retried(cloud):
    cloud.jobs({"a": "run: sh a.sh, memory: 300MiB, retries: 1, retry_backoff: 1s"},
               files={"a.sh": 'if [ "$EPH_ATTEMPT" = 1 ]; then sleep 60; fi; echo done\n'})
    cloud.p.daemon()
    rid = cloud.p.run("a")
    cloud.p.wait_state(rid, "running")
    did = cloud.handle(rid)["droplet"]
    assert cloud.c.delete_behind(did)
    row = cloud.p.wait_end(rid, timeout=30)
    assert row["state"] == "lost", row
    assert f"droplet {did} is gone" in row["reason"]
    # the retry: a run of its own, on a droplet of its own
    wait_for(lambda: [r for r in cloud.p.rows() if r["attempt"] == 2
                      and r["state"] == "succeeded"], timeout=40,
             what=f"the retry to succeed\n{cloud.p.logs()}")
    cloud.wait_no_droplets()
    cloud.p.stop()


def test_a_daemon_killed_during_the_run_leaves_no_droplet_after_its_restart(cloud):
    cloud.jobs({"a": "run: sh a.sh, memory: 300MiB"},
               files={"a.sh": "sleep 3; echo done\n"})
    d = cloud.p.daemon()
    rid = cloud.p.run("a")
    cloud.p.wait_state(rid, "running")
    d.stop(signal.SIGKILL)
    assert len(cloud.c.droplets()) == 1
    did = cloud.handle(rid)["droplet"]
    # eph machines: the droplet, its run, size, age and cost so far
    out = json.loads(cloud.p.eph("machines", "--json").stdout)["machines"]
    assert [(m["id"], m["run"], m["size"], m["status"]) for m in out] == [
        (did, rid, "s-1vcpu-1gb", "active")], out
    assert out[0]["age_seconds"] >= 0 and out[0]["cost"] >= 0.01, out
    assert f"eph-a-{rid}" in cloud.p.eph("machines").stdout
    # an orphan: a droplet of this instance whose run the store never had
    instance = (cloud.p.state / "instance").read_text().strip()
    status, made = cloud.c.create(name="orphan", region="fra1", size="s-1vcpu-1gb",
                                  image="debian-12-x64",
                                  tags=["ephemeron", f"eph-instance:{instance}", "eph-run:999"])
    assert status == 202, made
    cloud.p.daemon("daemon2.log")
    row = cloud.p.wait_end(rid, timeout=40)
    assert row["state"] == "succeeded", (row, cloud.p.logs())
    assert "done" in cloud.p.output(rid)
    cloud.wait_no_droplets()
    assert len([r for r in cloud.p.rows() if r["state"] in TERMINAL]) == 1
    cloud.p.stop()


def test_a_droplet_that_never_boots_is_deleted_and_the_run_fails_provision(cloud):
    cloud.jobs({"a": "run: 'true', memory: 300MiB"}, boot_timeout="3s")
    cloud.c.faults(boot_never=True)
    cloud.p.daemon()
    rid = cloud.p.run("a")
    row = cloud.p.wait_end(rid, timeout=30)
    assert row["state"] == "failed", row
    assert "provision" in row["reason"] and "boot_timeout" in row["reason"], row
    cloud.wait_no_droplets()
    cloud.p.stop()
    # a firewall the provider does not know: the run fails, its droplet deleted at once (by
    # `eph run` in the foreground, before it returns)
    cloud.c.faults(boot_never=False)
    cloud.jobs({"a": "run: 'true', memory: 300MiB"}, executor="firewall: fw-nope")
    p = cloud.p.eph("run", "a", check=False)
    assert p.returncode != 0, p.stdout + p.stderr
    row = max(cloud.p.rows(), key=lambda r: r["id"])
    assert row["state"] == "failed", row
    assert "firewall fw-nope" in row["reason"] and "not be found" in row["reason"], row
    assert not cloud.c.droplets() and len(cloud.c.api_requests("DELETE")) == 2


def test_max_machines_makes_runs_wait_in_fire_order(cloud):
    cloud.jobs({"a": "run: 'true', memory: 300MiB", "b": "run: 'true', memory: 300MiB"},
               executor="max_machines: 1")
    cloud.p.daemon()
    most = []
    ra, rb = cloud.p.run("a"), cloud.p.run("b")
    end = time.monotonic() + 40
    while time.monotonic() < end and not all(
            cloud.p.state_of(i) in TERMINAL for i in (ra, rb)):
        most.append(len(cloud.c.droplets()))
        time.sleep(0.05)
    assert cloud.p.state_of(ra) == "succeeded" and cloud.p.state_of(rb) == "succeeded"
    assert max(most) == 1  # never two at once
    assert cloud.handle(ra)["droplet"] != cloud.handle(rb)["droplet"]
    cloud.wait_no_droplets()
    cloud.p.stop()


def test_max_spend_fails_runs_with_reason_budget_and_mails_the_admin_once_then_once_more(cloud):
    port = free_port()
    maildir = cloud.p.dir / "maildir"
    ready = cloud.p.dir / "smtpd-ready"
    cloud.p.popen(["/usr/bin/python3", SMTPD, "--port", port, "--maildir", maildir,
                   "--ready", ready], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(ready.exists, 15, "the SMTP server")
    cloud.jobs({"a": "run: 'true', memory: 300MiB",
                "dear": "run: 'true', memory: 12GiB, timeout: 100h"},
               executor="max_spend: {usd: 5, per: month}",
               top=f"mail:\n  smtp: smtp://127.0.0.1:{port}\n  from: eph@example.com\n"
                   "  starttls: false\n  admin: [root@example.com]\n")

    def mails():
        return sorted((maildir / "new").glob("*")) if (maildir / "new").exists() else []

    d = cloud.p.daemon()
    # 100 hours of m-2vcpu-16gb ($0.125 an hour) would pass $5: no droplet is made
    for _ in range(2):  # two runs past the budget: one mail
        row = cloud.p.wait_end(cloud.p.run("dear"))
        assert row["state"] == "failed" and row["reason"].startswith("budget: "), row
        assert "max_spend ($5.00 a month)" in row["reason"], row
    assert "executor cloud: a m-2vcpu-16gb droplet" in d.text()
    wait_for(lambda: len(mails()) == 1, 30, "the mail that the budget is reached")
    time.sleep(1.0)
    assert len(mails()) == 1
    down = mails()[0].read_text()
    assert "root@example.com" in down and "budget reached: executor cloud" in down, down
    assert "max_spend ($5.00 a month)" in down and "m-2vcpu-16gb" in down, down
    assert cloud.token.read_text().strip() not in down
    assert not cloud.c.api_requests("POST")  # no machine was made for them
    # a machine that fits: the budget has room again, said once
    assert cloud.p.wait_end(cloud.p.run("a"))["state"] == "succeeded"
    wait_for(lambda: len(mails()) == 2, 30, "the mail that the budget has room again")
    up = next(m for m in mails() if m.read_text() != down).read_text()
    assert "budget room again: executor cloud" in up, up
    cloud.wait_no_droplets()
    cloud.p.stop()


def test_eph_run_in_the_foreground_deletes_its_droplet_before_it_returns(cloud):
    cloud.jobs({"a": "run: echo here, memory: 300MiB"})
    p = cloud.p.eph("run", "a")
    assert "here" in p.stdout, p.stdout + p.stderr
    assert not cloud.c.droplets()  # gone, and confirmed, before eph run returned
    # each step of the machine said as it comes
    said = [l for l in p.stderr.splitlines() if l.startswith("eph run: executor cloud: ")]
    assert [l.split(": ", 2)[2].split()[0] for l in said] == [
        "creating", "droplet", "droplet", "droplet"], p.stderr
    assert "answers ssh" in said[2] and "confirmed gone" in said[3], said
    rid = max(r["id"] for r in cloud.p.rows())
    assert cloud.p.state_of(rid) == "succeeded"
    assert "machine" in cloud.p.phases(rid)


def test_a_daemon_killed_during_create_or_delete_leaves_no_droplet_after_its_restart(cloud):
    cloud.jobs({"a": "run: 'true', memory: 300MiB", "b": "run: 'true', memory: 300MiB"})
    # killed while the create is in flight: the droplet is made after the daemon died
    cloud.c.faults(slow=1.5)
    d = cloud.p.daemon()
    ra = cloud.p.run("a")
    wait_for(lambda: cloud.c.api_requests("POST"), what="the create sent")
    d.stop(signal.SIGKILL)
    wait_for(lambda: cloud.c.droplets(), what="the droplet made all the same")
    cloud.c.faults(slow=0)
    d = cloud.p.daemon("daemon2.log")
    row = cloud.p.wait_end(ra, timeout=30)
    assert row["state"] in ("lost", "failed"), row
    cloud.wait_no_droplets()
    # killed while the delete is in flight: the run is recorded, its droplet not yet gone
    deletes = len(cloud.c.api_requests("DELETE"))
    rb = cloud.p.run("b")
    cloud.p.wait_state(rb, "running")
    cloud.c.faults(slow=1.5)
    wait_for(lambda: len(cloud.c.api_requests("DELETE")) > deletes, what="the delete sent")
    d.stop(signal.SIGKILL)
    cloud.c.faults(slow=0)
    assert cloud.p.state_of(rb) == "succeeded"
    cloud.p.daemon("daemon3.log")
    cloud.wait_no_droplets()
    assert [r["state"] for r in cloud.p.rows()].count("succeeded") == 1
    assert all(r["state"] in TERMINAL for r in cloud.p.rows())
    cloud.p.stop()


def test_a_run_cancelled_while_its_create_is_in_flight_has_its_droplet_deleted(cloud):
    # the create answers after the run is gone: the droplet it made is deleted at once, by
    # this daemon (not left to a restart's reconcile, which this one's skips: it is known)
    cloud.jobs({"a": "run: 'true', memory: 300MiB"})
    cloud.c.faults(slow=1.5)
    cloud.p.daemon()
    ra = cloud.p.run("a")
    wait_for(lambda: cloud.c.api_requests("POST"), what="the create sent")
    cloud.p.eph("cancel", str(ra))
    assert cloud.p.wait_end(ra, timeout=10)["state"] == "cancelled"
    cloud.c.faults(slow=0)
    wait_for(lambda: cloud.c.droplets() or cloud.c.api_requests("DELETE"),
             what="the droplet made all the same")
    cloud.wait_no_droplets(timeout=10)
    assert len(cloud.c.api_requests("DELETE")) == 1
    cloud.p.stop()


def test_memory_auto_and_grow_climb_the_cloud_ladder(cloud):
    hog = ("import time\nb = bytearray(1200 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
           "print('held')\n")
    cloud.jobs({"g": "run: python3 hog.py, memory: {auto: true, min: 300MiB, max: 4GiB}, "
                     "retry_on_oom: grow"}, files={"hog.py": hog})
    cloud.p.daemon()
    first = cloud.p.run("g")
    row = cloud.p.wait_end(first)
    # min 300 MiB: the 1 GB size, whose 768 MiB (less the reserve) the run gets whole
    assert row["state"] == "oom", row
    assert cloud.handle(first)["size"] == "s-1vcpu-1gb"
    assert row["memory_limit"] == 768 * MiB, row
    # grown: twice that (1.5 GiB), profiled after the oom (+384 MiB for the profiler), so on
    # the smallest size that holds 1.875 GiB with the reserve: 4 GB, rounded up to all of it
    wait_for(lambda: [r for r in cloud.p.rows() if r["id"] > first
                      and r["state"] in TERMINAL], timeout=40,
             what=f"the grow retry\n{cloud.p.logs()}")
    second = [r for r in cloud.p.rows() if r["id"] > first][0]
    assert second["state"] == "succeeded", second
    assert cloud.handle(second["id"])["size"] == "s-2vcpu-4gb"
    assert second["memory_limit"] == (4096 - 256 - 384) * MiB, second
    cloud.wait_no_droplets()
    cloud.p.stop()


def test_a_scheduled_run_gets_its_machine_ahead_by_the_boot_time_measured_before_a_restart(cloud):
    # measured by one daemon, used by the next from its start: its first scheduled run's
    # droplet is made that lead (p90 + 2 s) ahead, not boot_estimate's 1 s, and its command
    # starts at its instant
    cloud.jobs({"a": "run: 'true', memory: 300MiB"}, executor="boot_estimate: 1s")
    cloud.p.daemon()
    assert cloud.p.wait_end(cloud.p.run("a"))["state"] == "succeeded"
    cloud.wait_no_droplets()
    cloud.p.stop()
    kept = json.loads((cloud.p.state / "cloud" / "cloud-ready.json").read_text())["seconds"]
    assert len(kept) == 1 and 0 < kept[0] < 10, kept
    cloud.p.jobs_file.write_text(cloud.p.jobs_file.read_text() + (
        '  tick: { schedule: "@every 10s", executor: cloud, run: "date +%s.%N",'
        ' memory: 300MiB }\n'))
    # started just after a tick's instant (@every is aligned to the epoch): the next one is
    # far enough for the lead
    time.sleep(10.2 - time.time() % 10)
    d = cloud.p.daemon("daemon2.log")
    wait_for(lambda: [r for r in cloud.p.rows() if r["job"] == "tick"], timeout=15,
             what=f"a scheduled run\n{d.text()}")
    row = cloud.p.wait_end(min(r["id"] for r in cloud.p.rows() if r["job"] == "tick"))
    assert row["state"] == "succeeded", row
    ph = cloud.p.phases(row["id"])
    assert min(kept[0] + 2, 5) - 1 < ph["ahead"]["seconds"] < kept[0] + 2.5, (ph, kept)
    # the seconds billed before the instant: create to the instant; the command at the instant
    assert ph["ahead"]["ended_at"] == pytest.approx(row["scheduled_at"], abs=0.01), ph
    said = float(cloud.p.output(row["id"]).split()[-1])
    assert 0 <= said - row["scheduled_at"] < 1.0, (said, row)
    cloud.p.stop()


def test_a_429_storm_is_waited_out_not_hammered(cloud):
    cloud.jobs({"a": "run: 'true', memory: 300MiB"})
    cloud.c.faults(ratelimit=3.0)
    reset = cloud.c.ratelimit_reset
    cloud.p.daemon()
    rid = cloud.p.run("a")
    row = cloud.p.wait_end(rid, timeout=40)
    assert row["state"] == "succeeded", (row, cloud.p.logs())
    refused = [r for r in cloud.c.api_requests() if r.status == 429]
    assert refused, "the storm was not met"
    # each eph-cloud met the storm once and waited for the reset: none tried again before it
    # (the first sizes and list; no process sends twice within the storm)
    assert len(refused) <= 3, [(r.method, r.path) for r in refused]
    assert all(r.t < reset for r in refused)
    cloud.wait_no_droplets()
    cloud.p.stop()


def test_a_run_whose_executor_left_the_file_is_followed_and_its_droplet_deleted(cloud):
    cloud.jobs({"a": "run: sh a.sh, memory: 300MiB"}, files={"a.sh": "sleep 3; echo done\n"})
    d = cloud.p.daemon()
    rid = cloud.p.run("a")
    cloud.p.wait_state(rid, "running")
    d.stop(signal.SIGKILL)
    # the file loses the executor; the run's handle says where its droplet and API are
    cloud.p.jobs_file.write_text(
        f"source: {{ repo: {cloud.p.repo}, refresh: 0 }}\n"
        'jobs:\n  a: { schedule: "0 0 1 1 *", run: "true" }\n')
    cloud.p.daemon("daemon2.log")
    row = cloud.p.wait_end(rid, timeout=30)
    assert row["state"] == "succeeded", (row, cloud.p.logs())
    cloud.wait_no_droplets()
    wait_for(lambda: "machine" in cloud.p.phases(rid), what="the machine phase")
    assert "confirmed gone" in cloud.p.daemons[-1].text()
    cloud.p.stop()
