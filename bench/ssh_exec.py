#!/usr/bin/python3
"""bench/ssh_exec.py: the ssh executor on a warm host, through the real `eph daemon`.

Between two network namespaces of this machine (tests/e2e/testhosts.py: the scheduler's, where
the daemon and every eph command run, and a host with a real sshd), after warm-up runs (the
agent and the commit's archive are on the host, the multiplexed connection is up):

  scheduled  a job "@every 5s" (the schedule's only form with seconds: cron fields have
             minute resolution), its command `date +%s.%N` by argv: the scheduled instant →
             the command's own clock reading; its exit → the run recorded;
  manual     `eph run JOB` through the daemon's control socket: the run's created_at → the
             command's clock reading; its exit → the run recorded;
  log lag    a command printing its own clock every 100 ms for 20 s, followed by
             `eph logs -f RUN`: each line's arrival - the time it carries.

"Recorded" is the time of the daemon's log line that tells the outcome (`--log-json`,
millisecond precision), written right after the store's transaction. `date` prints as its
first act and exits at once, so its reading stands for both its execve and its exit (within
about a millisecond). Both namespaces share the machine's clock: every difference is exact
but for the clock offset the executor estimates (stated in the output).

With --trace, `ssh` is a wrapper on the daemon's PATH logging when each ssh starts and ends
and what it runs, and one sample of each path is printed as a timeline (the wrapper costs a
few ms a call: the table of a traced run is not the number to quote).

Needs root (namespaces) and the plain build (its eph-agent is static).
usage: /usr/bin/python3 bench/ssh_exec.py [--quick] [--trace] [BUILD_DIR]   (default build)
"""
import datetime
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "e2e"))
from testhosts import TestNet  # noqa: E402

QUICK = "--quick" in sys.argv
TRACE = "--trace" in sys.argv
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BUILD = Path(os.path.abspath(ARGS[0] if ARGS else "build"))
EPH = BUILD / "eph"
N_MANUAL = 5 if QUICK else 30
N_SCHED = 6 if QUICK else 30
EVERY = 5  # seconds between the scheduled fires
LOG_SECONDS = 8 if QUICK else 20
NEVER = "0 0 1 1 *"

# The log-lag command: waits until `eph logs -f` is surely following, then prints its own
# clock every 100 ms (on the 100 ms marks).
LOGGER = f"""
import time
time.sleep(2)
t0 = time.time()
for i in range({LOG_SECONDS * 10}):
    time.sleep(max(0, t0 + i * 0.1 - time.time()))
    print("%.6f" % time.time(), flush=True)
"""

# The ssh wrapper of --trace: one line a call, "START END STATUS REMOTE-COMMAND".
SSH_WRAP = """#!/bin/sh
t0=$(date +%s.%N)
/usr/bin/ssh "$@"
rc=$?
for last; do :; done
printf '%s %s %s %s\\n' "$t0" "$(date +%s.%N)" "$rc" "$(printf '%s' "$last" | tr '\\n' ' ' \
  | cut -c1-300)" >>"$EPH_BENCH_SSH_LOG"
exit $rc
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def iso(t):
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def git(repo, *a):
    subprocess.run(["git", "-c", "user.email=b@example.invalid", "-c", "user.name=b", *a],
                   cwd=repo, check=True, capture_output=True)


class Bench:
    def __init__(self, tmp, net, host):
        self.tmp, self.net, self.h = tmp, net, host
        self.state = tmp / "state"
        self.jobs = tmp / "jobs.yaml"
        self.dlog = tmp / "daemon.log"
        self.env = dict(os.environ, EPH_STATE=str(self.state))
        self.sshlog = tmp / "ssh.log"
        if TRACE:
            wrap = tmp / "wrap"
            wrap.mkdir()
            (wrap / "ssh").write_text(SSH_WRAP)
            (wrap / "ssh").chmod(0o755)
            self.env["PATH"] = f"{wrap}:{self.env['PATH']}"
            self.env["EPH_BENCH_SSH_LOG"] = str(self.sshlog)
        self.daemon = None
        self.repo = tmp / "repo"
        self.repo.mkdir()
        git(self.repo, "init", "-q", "-b", "main")
        (self.repo / "README").write_text("the code of the bench's runs\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "one")

    def write_jobs(self, scheduled):
        h, net = self.h, self.net

        def job(name, sched, argv):
            return (f"  {name}:\n    schedule: \"{sched}\"\n    command: {json.dumps(argv)}\n"
                    "    memory: 64MiB\n    executor: pool\n")

        text = (f"source: {{ repo: \"file://{self.repo}\", branch: main, refresh: 1h }}\n"
                "executors:\n  pool:\n    type: ssh\n"
                f"    hosts:\n      - {{ host: {h.target()}, memory: 1GiB }}\n"
                f"    identity_file: {net.identity}\n    known_hosts: {net.known_hosts}\n"
                "jobs:\n" + job("manual", NEVER, ["date", "+%s.%N"]) +
                job("logs", NEVER, ["/usr/bin/python3", "-c", LOGGER]))
        if scheduled:
            text += job("tick", f"@every {EVERY}s", ["date", "+%s.%N"])
        self.jobs.write_text(text)

    def eph(self, *args, check=True, timeout=60):
        p = self.net.run([EPH, "-f", self.jobs, *args], check=False, timeout=timeout,
                         env=self.env)
        if check and p.returncode != 0:
            raise RuntimeError(f"eph {' '.join(map(str, args))}: {p.stderr}{p.stdout}")
        return p

    def start_daemon(self):
        log = open(self.dlog, "ab")
        self.daemon = subprocess.Popen(self.net.argv([EPH, "daemon", self.jobs, "--log-json"]),
                                       stdout=log, stderr=log, env=self.env)
        log.close()
        deadline = time.monotonic() + 30
        while not any(e["msg"].startswith("started") and e.get("run") is None
                      for e in self.log()):
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start: " + self.dlog.read_text())
            time.sleep(0.05)

    def stop_daemon(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def reload(self, scheduled):
        n = sum(1 for e in self.log() if "reload" in e["msg"])
        self.write_jobs(scheduled)
        self.daemon.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while sum(1 for e in self.log() if "reload" in e["msg"]) == n:
            if time.monotonic() > deadline:
                raise RuntimeError("no reload: " + self.dlog.read_text()[-2000:])
            time.sleep(0.05)

    def log(self):
        out = []
        for line in self.dlog.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def recorded_at(self, rid):
        """The time of the daemon's line telling run RID's outcome, or None."""
        for e in self.log():
            if e.get("run") == rid and " after " in e["msg"]:
                return iso(e["t"])
        return None

    def wait_recorded(self, rid, timeout=60):
        deadline = time.monotonic() + timeout
        while (t := self.recorded_at(rid)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {rid} not recorded: " + self.dlog.read_text()[-3000:])
            time.sleep(0.05)
        return t

    def show(self, rid):
        return json.loads(self.eph("show", str(rid), "--json").stdout)

    def printed(self, rid):
        """The clock reading the run's command printed (its first line)."""
        out = self.eph("logs", str(rid), "--raw").stdout.split()
        return float(out[0]) if out else None

    def manual(self):
        p = self.eph("run", "manual")
        return int(p.stdout.split()[1])  # "run ID of JOB started by the daemon ..."

    def sample(self, rid, instant):
        rec = self.wait_recorded(rid)
        row = self.show(rid)
        if row["state"] != "succeeded":
            raise RuntimeError(f"run {rid}: {row['state']}: {row.get('reason')}")
        t = self.printed(rid)
        return {"id": rid, "instant": instant, "cmd": t, "recorded": rec, "row": row,
                "start_ms": (t - instant) * 1000, "record_ms": (rec - t) * 1000}

    def clock_offsets(self, ids):
        """The clock offsets the executor measured for runs IDS (their handles, in the store)."""
        con = sqlite3.connect(f"file:{self.state}/eph.db?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT id, handle FROM runs WHERE handle IS NOT NULL").fetchall()
        finally:
            con.close()
        return [json.loads(h).get("clock_offset", 0) for i, h in rows if i in set(ids)]

    def loglag(self):
        rid = int(self.eph("run", "logs").stdout.split()[1])
        p = subprocess.Popen(self.net.argv([EPH, "-f", self.jobs, "logs", str(rid), "-f"]),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=self.env)
        t_follow = time.time()
        lags = []

        def reader():
            for line in p.stdout:
                now = time.time()
                parts = line.split(None, 2)  # "T out TEXT"
                try:
                    lags.append((now - float(parts[2])) * 1000)
                except (IndexError, ValueError):
                    pass

        th = threading.Thread(target=reader)
        th.start()
        try:
            p.wait(timeout=LOG_SECONDS + 60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            th.join()
        self.wait_recorded(rid)
        return rid, t_follow, lags

    def ssh_calls(self):
        """The ssh calls of --trace: (start, end, status, remote command)."""
        out = []
        if self.sshlog.exists():
            for line in self.sshlog.read_text().splitlines():
                a, b, rc, what = (line.split(" ", 3) + [""])[:4]
                out.append((float(a), float(b), rc, what))
        return out

    def started_at(self, rid):
        """When the daemon started run RID (its log line)."""
        for e in self.log():
            if e.get("run") == rid and e["msg"].startswith(("started (", "starting on")):
                return iso(e["t"])
        return None

    def steps(self, s):
        """Where the time of sample S went, from the ssh trace: (name, ms) in order."""
        calls = self.ssh_calls()
        st = self.started_at(s["id"])
        # the provision's ssh: the ship's (`test -f`, an upload) and the start's
        prov = [c for c in calls if st - 0.001 <= c[0] <= s["cmd"] and
                (c[3].startswith("test -f") or c[3].startswith("umask 077 && mkdir") or
                 c[3].startswith("set -e; umask 077; r="))]
        after = [c for c in calls if s["cmd"] <= c[0] <= s["recorded"] and
                 "--follow" not in c[3]]
        out = [("daemon: instant -> agent's provision starts", (st - s["instant"]) * 1000)]
        if len(prov) >= 3:
            ship = prov[:-1]
            ssh_ms = sum(c[1] - c[0] for c in ship) * 1000
            out += [("eph pack (child), until the first ssh", (prov[0][0] - st) * 1000),
                    (f"ship: {len(ship)} ssh `test -f HASH` (their own time)", ssh_ms),
                    ("between the ssh: hashing the files, the spec, the handle",
                     (prov[-1][0] - prov[0][0]) * 1000 - ssh_ms),
                    ("start: 1 ssh (spec, eph-agent --detach)",
                     (prov[-1][1] - prov[-1][0]) * 1000),
                    ("that ssh's end -> the command prints (agent on the host)",
                     (s["cmd"] - prov[-1][1]) * 1000)]
        stream = [c for c in calls if c[0] <= s["recorded"] and s["cmd"] <= c[1] and
                  "--follow" in c[3]]
        if stream:
            # one ssh follows the run (eph-agent --follow) and ends with it
            out += [("the command's exit -> the follower's ssh ends",
                     (stream[0][1] - s["cmd"]) * 1000),
                    ("that ssh's end -> the run recorded", (s["recorded"] - stream[0][1]) * 1000)]
        elif after:
            # followed by polls: a status ssh at each tick, the last pull after it
            ssh_ms = sum(c[1] - c[0] for c in after) * 1000
            out += [("the command's exit -> the next tick's status ssh",
                     (after[0][0] - s["cmd"]) * 1000),
                    (f"then {len(after)} ssh: status, output.log, events, result", ssh_ms),
                    ("then between those ssh, and the record",
                     (s["recorded"] - after[0][0]) * 1000 - ssh_ms)]
        return out

    def trace(self, zero, t0, t1, marks):
        """The timeline between T0 and T1, relative to ZERO in ms: MARKS (time, what), the
        daemon's lines of runs, and every ssh call."""
        ev = list(marks)
        for a, b, rc, what in self.ssh_calls():
            if t0 - 0.001 <= a <= t1:
                ev.append((a, f"ssh ({(b - a) * 1000:.0f} ms, status {rc}): {what[:70]}"))
        for e in self.log():
            t = iso(e["t"])
            if t0 - 0.001 <= t <= t1 and e.get("run") is not None:
                ev.append((t, f"daemon: run {e['run']} {e['msg'][:70]}"))
        for t, what in sorted(ev):
            print(f"  {(t - zero) * 1000:+8.1f} ms  {what}")


def table(title, rows):
    print(f"{title:58} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, xs in rows:
        if xs:
            print(f"{name:58} {len(xs):3} {pct(xs, 50):8.1f} {pct(xs, 95):8.1f} "
                  f"{max(xs):8.1f}")


def main():
    if not (BUILD / "eph-agent").exists():
        raise SystemExit(f"no {BUILD}/eph-agent: meson setup build && ninja -C build")
    kind = subprocess.run(["file", "-b", str(BUILD / "eph-agent")], capture_output=True,
                          text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="eph-bench-ssh-"))
    net = TestNet(tmp)
    b = None
    try:
        h = net.host(memory=1 << 30)
        b = Bench(tmp, net, h)
        b.write_jobs(scheduled=False)
        b.start_daemon()
        # warm-up: contact, the agent and the archive shipped, the master connection up
        for _ in range(2):
            b.wait_recorded(b.manual())

        man = []
        for _ in range(N_MANUAL):
            rid = b.manual()
            man.append(b.sample(rid, b.show(rid)["created_at"]))

        lag_id, _, lags = b.loglag()

        b.reload(scheduled=True)
        sched, t_reload = [], time.time()
        while len(sched) < N_SCHED + 1 and time.time() < t_reload + (N_SCHED + 4) * EVERY:
            time.sleep(0.5)
            runs = json.loads(b.eph("runs", "tick", "--limit", "0", "--json").stdout)
            done = [r for r in runs if r["terminal"]]
            sched = sorted(done, key=lambda r: r["id"])
        b.reload(scheduled=False)
        ahead = {e["run"] for e in b.log() if "ahead:" in e["msg"]}
        # the first fire after the reload is left out: it may have been prepared late
        sch = [b.sample(r["id"], r["scheduled_at"]) for r in sched[1:N_SCHED + 1]]

        print(f"build: {BUILD} (eph-agent: {kind.split(',')[0]}; "
              f"{'static' if 'statically' in kind else 'dynamic'})")
        print(f"host: {h.target()} (namespace {h.ns}); {'traced: ssh wrapped' if TRACE else ''}")
        offs = b.clock_offsets([s["id"] for s in man + sch])
        if offs:
            print(f"clock offset the executor measured (both ends share one clock, so this is "
                  f"its error, and a start ahead waits that much longer): "
                  f"{min(offs) * 1000:+.1f} .. {max(offs) * 1000:+.1f} ms")
        print(f"scheduled runs started ahead: {sum(1 for s in sch if s['id'] in ahead)} "
              f"of {len(sch)}")
        print()
        table("warm host, between two namespaces", [
            (f"scheduled instant -> command runs (@every {EVERY}s)",
             [s["start_ms"] for s in sch]),
            ("scheduled: command exit -> run recorded", [s["record_ms"] for s in sch]),
            ("manual (eph run): created_at -> command runs", [s["start_ms"] for s in man]),
            ("manual: command exit -> run recorded", [s["record_ms"] for s in man]),
            (f"log lag, eph logs -f (a line each 100 ms, {LOG_SECONDS} s)", lags),
        ])
        if lags:
            print(f"{'log lag p99':58} {pct(lags, 99):8.1f} ms")
        if TRACE:
            for name, samples in (("manual", man), ("scheduled", sch)):
                per = {}
                for smp in samples:
                    for step, ms in b.steps(smp):
                        per.setdefault(step, []).append(ms)
                print()
                table(f"{name}: where the time goes (traced)", list(per.items()))
            s = man[len(man) // 2]
            print(f"\ntimeline of manual run {s['id']} (0 = its created_at):")
            b.trace(s["instant"], s["instant"], s["recorded"] + 0.01,
                    [(s["cmd"], "the command prints its clock (date)")])
            s = sch[len(sch) // 2]
            print(f"\ntimeline of scheduled run {s['id']} (0 = its instant):")
            b.trace(s["instant"], s["instant"] - 1, s["recorded"] + 0.01,
                    [(s["cmd"], "the command prints its clock (date)")])
    finally:
        if b is not None:
            b.stop_daemon()
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
