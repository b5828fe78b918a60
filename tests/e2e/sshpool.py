"""A scheduler and its pool of test hosts for the ssh executor's end-to-end tests: a git
repository the jobs' code travels from, a jobs file whose executor `pool` names the hosts
(testhosts.py), and `eph` run in the scheduler's namespace, as a command or as the daemon.

    p = Pool(tmp_path)                       # the namespace, the repository, a state dir
    a = p.host(512 * MiB)                    # a host (testhosts.Host)
    p.jobs({"a": "run: sh a.sh"}, files={"a.sh": "echo hi\\n"})  # committed; file written
    d = p.daemon()                           # `eph daemon` in the namespace
    rid = p.run("a"); p.wait_state(rid, "succeeded")
    p.stop()                                 # the daemons stopped: each exits 0 (no leak)
    p.close()                                # every process stopped by its pid, all removed

Everything `eph` does on the hosts goes through the real ssh and sshd."""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_EXIT, eph_bin, store_rows, wait_for
from testhosts import TestNet

MiB = 1 << 20
TERMINAL = {"succeeded", "failed", "oom", "timeout", "killed", "cancelled", "lost", "skipped"}


class Daemon:
    """`eph daemon` in the scheduler's namespace (`ip netns exec` execs it: same pid)."""

    def __init__(self, pool, log_name):
        self.log_path = pool.dir / log_name
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(pool.net.argv([eph_bin(), "daemon", pool.jobs_file]),
                                  stdout=subprocess.DEVNULL, stderr=self.log, env=pool.env())
        wait_for(lambda: "info started" in self.text() or self.p.poll() is not None,
                 what="the daemon to start")
        assert self.p.poll() is None, self.text()

    def text(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if not self.log.closed:
            self.log.close()
        if self.p.returncode in SANITIZER_EXIT:
            pytest.fail(f"{SANITIZER_EXIT[self.p.returncode]} reported a problem in the daemon:\n"
                        + self.text()[-4000:])
        return self.p.returncode


class Pool:
    def __init__(self, tmp_path):
        self.dir = Path(tmp_path)
        self.net = TestNet(self.dir)
        self.state = self.dir / "state"
        self.state.mkdir()
        self.repo = self.dir / "repo"
        self.repo.mkdir()
        self.git("init", "-q", "-b", "main")
        (self.repo / "README").write_text("the jobs' code\n")
        self.git("add", "-A")
        self.git("commit", "-qm", "start")
        self.jobs_file = self.dir / "ephemeron.yaml"
        self.daemons = []
        self.procs = []  # other processes started here (eph logs -f, smtpd)
        self.hosts = []
        self.host_memory = {}  # what the jobs file says each host holds (default: its cgroup)
        self.host_price = {}  # a host's price_monthly in the jobs file (eph cost), if any

    def env(self, **kw):
        return dict(os.environ, EPH_STATE=str(self.state), **kw)

    def git(self, *args):
        subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                       cwd=self.repo, check=True, capture_output=True)

    def host(self, memory, declared=None, price=None):
        h = self.net.host(memory=memory)
        self.hosts.append(h)
        self.host_memory[h] = declared or memory
        if price is not None:
            self.host_price[h] = price
        return h

    def jobs(self, jobs, files=None, executor="", top="", identity=None):
        """Commits FILES to the repository and writes the jobs file: JOBS maps a name to its
        entry's YAML flow mapping's inside (executor pool unless it says otherwise)."""
        for name, text in (files or {}).items():
            (self.repo / name).write_text(textwrap.dedent(text))
        if files:
            self.git("add", "-A")
            self.git("commit", "-qm", "files")
        hosts = "".join(f"      - {{ host: {h.target()}, memory: {self.host_memory[h]}"
                        + (f", price_monthly: {self.host_price[h]}" if h in self.host_price
                           else "") + " }\n"
                        for h in self.hosts)
        text = (f"source: {{ repo: {self.repo}, refresh: 0 }}\n"
                + textwrap.dedent(top)
                + "executors:\n  pool:\n    type: ssh\n    hosts:\n" + hosts
                + f"    identity_file: {identity or self.net.identity}\n"
                + f"    known_hosts: {self.net.known_hosts}\n"
                + "".join(f"    {l}\n" for l in textwrap.dedent(executor).splitlines()
                          if l.strip())
                + "jobs:\n"
                + "".join(f"  {n}: {{ schedule: \"0 0 1 1 *\", executor: pool, {e} }}\n"
                          for n, e in jobs.items()))
        tmp = self.jobs_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.jobs_file)

    def eph(self, *args, check=True, timeout=60):
        p = self.net.run([eph_bin(), "-f", self.jobs_file, *args], check=False,
                         timeout=timeout, env=self.env())
        if p.returncode in SANITIZER_EXIT:
            pytest.fail(f"{SANITIZER_EXIT[p.returncode]} reported a problem in eph {args}:\n"
                        + p.stderr[-4000:])
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr, self.logs())
        return p

    def run(self, job):
        """`eph run JOB` through the daemon: the run's id."""
        before = {r["id"] for r in self.rows()}
        self.eph("run", job)
        wait_for(lambda: {r["id"] for r in self.rows()} - before, what=f"a run of {job}")
        return max({r["id"] for r in self.rows()} - before)

    def show(self, run_id):
        return json.loads(self.eph("show", "--json", str(run_id)).stdout)

    def daemon(self, log_name="daemon.log"):
        d = Daemon(self, log_name)
        self.daemons.append(d)
        return d

    def popen(self, argv, **kw):
        p = subprocess.Popen(self.net.argv(argv), env=self.env(), **kw)
        self.procs.append(p)
        return p

    def rows(self, where="1", args=()):
        return store_rows(self.state, "runs", where, args)

    def row(self, run_id):
        got = self.rows("id = ?", (run_id,))
        return got[0] if got else None

    def phases(self, run_id):
        """The run's phases (the phases table has no id: read here in their order)."""
        con = sqlite3.connect(f"file:{self.state}/eph.db?mode=ro", uri=True)
        try:
            con.row_factory = sqlite3.Row
            return {r["name"]: dict(r) for r in con.execute(
                "SELECT * FROM phases WHERE run_id = ? ORDER BY rowid", (run_id,))}
        finally:
            con.close()

    def host_of(self, run_id):
        """The host a run was placed on, as its handle names it (None before it has one)."""
        r = self.row(run_id)
        return json.loads(r["handle"]).get("host") if r and r["handle"] else None

    def state_of(self, run_id):
        r = self.row(run_id)
        return r["state"] if r else None

    def wait_state(self, run_id, states, timeout=60):
        states = {states} if isinstance(states, str) else set(states)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.state_of(run_id) in states:
                return self.row(run_id)
            time.sleep(0.1)
        pytest.fail(f"run {run_id} is {self.state_of(run_id)!r}, not in {sorted(states)} "
                    f"after {timeout}s: {self.row(run_id)}\n{self.logs()}")

    def wait_end(self, run_id, timeout=60):
        return self.wait_state(run_id, TERMINAL, timeout)

    def output(self, run_id):
        try:
            return (self.state / "runs" / str(run_id) / "output.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def remote_runs(self, h):
        """The run directories on H (DIR/<instance>/runs/<id>), by id."""
        return {int(p.name): p for p in (h.home / ".ephemeron").glob("*/runs/*")
                if p.name.isdigit()}

    def remote_files(self, h):
        return {p.name: p for p in (h.home / ".ephemeron").glob("*/files/*")}

    def logs(self):
        """The daemons' logs, for a failing assertion's message."""
        out = []
        for d in self.daemons:
            out.append(f"--- {d.log_path.name}\n{d.text()[-6000:]}")
        return "\n".join(out)

    def stop(self):
        """Stops the daemons still running with SIGTERM: each must exit 0, and a sanitizer's
        report (a leak is found at exit only) fails the test."""
        for d in self.daemons:
            if d.p.poll() is None:
                assert d.stop() == 0, d.text()[-4000:]

    def close(self):
        try:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            codes = []
            for d in self.daemons:
                codes.append(d.stop(signal.SIGKILL if d.p.poll() is None else signal.SIGTERM))
        finally:
            # the ssh master connections (ControlPersist) live in the scheduler's namespace:
            # found by their control sockets' directory in their argv, ended by pid
            self._end_ssh_masters()
            self.net.close()

    def control_dir(self):
        """Where the executor keeps ssh's master sockets (exec_ssh.c control_dir_for)."""
        p = f"{self.state}/ssh"
        if len(p) <= 49:
            return p
        d = hashlib.sha256(str(self.state).encode()).hexdigest()[:12]
        return f"/tmp/eph-ssh-{os.getuid()}-{d}"

    def _end_ssh_masters(self):
        mark = self.control_dir().encode()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv[0].split(b"/")[-1].startswith(b"ssh") and any(mark in a for a in argv):
                try:
                    os.kill(int(d), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.control_dir(), ignore_errors=True)


@pytest.fixture
def pool(tmp_path):
    p = Pool(tmp_path)
    yield p
    p.close()
