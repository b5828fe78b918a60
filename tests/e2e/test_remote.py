"""The ssh transport (src/remote/) against real sshd test hosts (testhosts.py), through
tests/remote/remote_driver, run in the scheduler's namespace: commands, content-addressed
shipping, fetching by offset, the clock offset, the failures told apart (host key with its
fingerprint, authentication, a cut link), and the multiplexed connection."""
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_EXIT, eph_bin
from testhosts import TestNet


def driver():
    path = os.environ.get("EPH_REMOTE_DRIVER") or str(
        Path(eph_bin()).parent / "tests" / "remote" / "remote_driver")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built (meson -Dtests=true)")
    return path


class Remote:
    """Runs the driver against host H, with the options the executor would use."""

    def __init__(self, net, h):
        self.net, self.h = net, h
        # a short directory: a socket's path must fit 108 bytes (tmp_path is too deep)
        self.ctl = f"/tmp/eph-rt-{os.getpid()}-{h.n}"
        self.opts = ["--known-hosts", net.known_hosts, "--identity", net.identity,
                     "--control-dir", self.ctl, "--connect-timeout", "3"]

    def call(self, *args, opts=None, mux=True, timeout=60):
        o = list(self.opts if opts is None else opts)
        if not mux:
            i = o.index("--control-dir")
            del o[i:i + 2]
        p = self.net.run([driver(), *o, self.h.target(), *args], check=False, timeout=timeout)
        assert p.returncode not in SANITIZER_EXIT, p.stderr
        assert p.returncode in (0, 1), (p.returncode, p.stdout, p.stderr)
        return json.loads(p.stdout)

    def close(self):
        if os.path.isdir(self.ctl):
            self.net.run([driver(), *self.opts, self.h.target(), "ctl", "exit"], check=False)
            shutil.rmtree(self.ctl, ignore_errors=True)


@pytest.fixture
def net(tmp_path):
    n = TestNet(tmp_path)
    yield n
    n.close()


@pytest.fixture
def remote(net):
    h = net.host()
    r = Remote(net, h)
    yield r
    r.close()


def test_a_command_runs_with_its_stdin_and_its_status(remote):
    r = remote.call("run", "cat; printf %s 'it'\\''s'; echo oops >&2", "--stdin", "secret\n")
    assert r["fail"] == "ok" and r["status"] == 0, r
    assert r["out"] == "secret\nit's"
    assert r["err"] == "oops\n"
    r = remote.call("run", "exit 3")
    assert (r["fail"], r["status"]) == ("status", 3), r
    assert r["why"] == f"{remote.h.target()}: the command exited with status 3"


def test_stdout_is_capped_and_the_rest_drained(remote):
    r = remote.call("run", "head -c 3000000 /dev/zero | tr '\\0' x")
    assert r["fail"] == "ok", r
    assert r["out_truncated"] and len(r["out"]) == 1 << 20


def test_ship_sends_a_file_once_by_its_content_hash(remote, tmp_path):
    f = tmp_path / "agent"
    f.write_bytes(os.urandom(300000))
    f.chmod(0o750)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    r = remote.call("ship", f, "~/.eph/bin")
    assert r["fail"] == "ok" and r["shipped"], r
    assert r["remote_path"] == f"~/.eph/bin/{digest}"
    there = remote.h.home / ".eph" / "bin" / digest
    assert there.read_bytes() == f.read_bytes()
    st = there.stat()
    assert st.st_mode & 0o777 == 0o750
    assert [p.name for p in there.parent.iterdir()] == [digest]  # no temporary left
    r = remote.call("ship", f, "~/.eph/bin")
    assert r["fail"] == "ok" and not r["shipped"], r
    st2 = there.stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    # other bytes, another name; the first stays
    f.write_bytes(b"v2")
    r = remote.call("ship", f, "~/.eph/bin")
    assert r["shipped"] and r["remote_path"].endswith(hashlib.sha256(b"v2").hexdigest())
    assert there.stat().st_ino == st.st_ino
    r = remote.call("ship", tmp_path / "none", "~/.eph/bin")
    assert r["fail"] == "local" and "No such file or directory" in r["why"], r


def test_fetch_follows_a_growing_file_by_offset(remote):
    log = remote.h.home / "output.log"
    r = remote.call("fetch", "~/output.log", "0")
    assert r["fail"] == "ok" and r["missing"] and r["offset"] == 0, r
    log.write_text("line 1\nline")
    r = remote.call("fetch", "~/output.log", "0")
    assert (r["out"], r["offset"]) == ("line 1\nline", 11), r
    with open(log, "a") as f:
        f.write(" 2\nline 3\n")
    got, off = "", 0
    for _ in range(3):  # in pieces of at most 4 bytes: nothing lost, nothing twice
        r = remote.call("fetch", "~/output.log", str(off), "4")
        got, off = got + r["out"], r["offset"]
    assert got == "line 1\nline 2"[:12] and off == 12
    r = remote.call("fetch", "~/output.log", str(off))
    assert got + r["out"] == log.read_text() and r["offset"] == len(log.read_text())
    r = remote.call("fetch", "~/output.log", str(r["offset"]))
    assert (r["out"], r["missing"]) == ("", False)


@pytest.mark.timing  # kills fetches at whatever point they reached
def test_fetches_killed_midway_lose_nothing_and_double_nothing(remote):
    """Each fetch is killed by a short timeout, wherever it got to (nothing yet, part of
    its bytes, or done): what the caller gets, followed by offset, is the file exactly."""
    import base64
    data = base64.b64encode(os.urandom(3 << 20)).decode()  # 4 MiB of text
    (remote.h.home / "events.jsonl").write_text(data)
    got, off, killed, timeout_ms = [], 0, 0, 5
    assert remote.call("run", "true")["fail"] == "ok"  # the master is up
    while off < len(data):
        r = remote.call("fetch", "~/events.jsonl", str(off), str(1 << 20),
                        "--timeout-ms", str(timeout_ms))
        if r["fail"] == "timeout":
            assert (r["out"], r["offset"]) == ("", off), r
            killed += 1
            timeout_ms *= 2
            continue
        assert r["fail"] == "ok", r
        assert r["offset"] == off + len(r["out"])
        got.append(r["out"])
        off = r["offset"]
    assert "".join(got) == data
    assert killed >= 1


def test_the_clock_offset_of_a_host_on_this_machine_is_nothing_within_its_bound(remote):
    for _ in range(3):
        r = remote.call("clock")
        assert r["fail"] == "ok", r
        assert 0 < r["clock_bound"] < 5
        # the same clock: the true offset is 0, and the bound must hold it
        assert abs(r["clock_offset"]) <= r["clock_bound"] + 0.002, r


def fingerprint(pub):
    return subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def test_a_changed_host_key_fails_with_the_key_it_offered(remote, tmp_path):
    h = remote.h
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "other"],
                   check=True)
    kh = tmp_path / "kh"
    key = (tmp_path / "other.pub").read_text().split()
    kh.write_text(f"{h.addr} {key[0]} {key[1]}\n")
    opts = ["--known-hosts", kh, "--identity", remote.net.identity]
    r = remote.call("run", "touch ~/ran", opts=opts)
    assert r["fail"] == "host key", r
    assert r["fingerprint"] == fingerprint(h.dir / "host_key.pub")
    assert r["fingerprint"] in r["why"] and "nothing ran there" in r["why"]
    assert not (h.home / "ran").exists()
    # unknown (no entry at all): a host key failure too; validate says so offline
    kh.write_text("")
    r = remote.call("run", "true", opts=["--known-hosts", kh, "--identity", remote.net.identity])
    assert r["fail"] == "host key", r
    p = remote.net.run([driver(), "--known-hosts", kh, h.target(), "known"], check=False)
    k = json.loads(p.stdout)
    assert p.returncode == 1 and not k["known"]
    assert k["message"].startswith(f"host {h.target()} has no entry in known_hosts {kh}")
    p = remote.net.run([driver(), "--known-hosts", remote.net.known_hosts, h.target(), "known"])
    assert json.loads(p.stdout) == {"known": True, "message": ""}


def test_a_key_the_host_does_not_know_fails_authentication(remote, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "stranger"],
                   check=True)
    r = remote.call("run", "true",
                    opts=["--known-hosts", remote.net.known_hosts, "--identity",
                          tmp_path / "stranger"])
    assert r["fail"] == "auth", r
    assert "Permission denied" in r["why"]
    # an identity file others can read is refused before any connection
    (tmp_path / "stranger").chmod(0o644)
    p = remote.net.run([driver(), "--known-hosts", remote.net.known_hosts, "--identity",
                        tmp_path / "stranger", remote.h.target(), "run", "true"], check=False)
    assert p.returncode == 2 and "can be read or written by others (mode 0644)" in p.stderr


@pytest.mark.timing  # bounded by ConnectTimeout
def test_a_cut_link_times_out_within_connect_timeout_and_mends(remote):
    h = remote.h
    h.cut()
    t = time.monotonic()
    r = remote.call("run", "true", mux=False)
    took = time.monotonic() - t
    assert r["fail"] == "timeout", r
    assert took < 3 + 5, took  # ConnectTimeout=3, plus a loaded machine's slack
    h.mend()
    r = remote.call("run", "echo back", mux=False)
    assert (r["fail"], r["out"]) == ("ok", "back\n"), r


@pytest.mark.timing  # bounded by ServerAlive
def test_a_cut_link_under_a_master_connection_fails_and_mends(remote):
    h = remote.h
    assert remote.call("run", "true")["fail"] == "ok"
    h.cut()
    opts = remote.opts + ["--alive", "1"]  # ServerAliveInterval=1, CountMax=2
    t = time.monotonic()
    r = remote.call("run", "true", opts=opts, timeout=60)
    took = time.monotonic() - t
    assert r["fail"] in ("timeout", "unreachable", "ssh"), r
    assert took < 30, took
    h.mend()
    r = remote.call("run", "echo back")
    assert (r["fail"], r["out"]) == ("ok", "back\n"), r


@pytest.mark.timing  # a timeout and a cancel race the command
def test_the_op_timeout_and_cancel_end_ssh(remote):
    r = remote.call("run", "sleep 30", "--timeout-ms", "1500")
    assert r["fail"] == "timeout" and r["elapsed_ms"] < 15000, r
    r = remote.call("run", "sleep 30", "--cancel-ms", "1000")
    assert r["fail"] == "canceled" and r["elapsed_ms"] < 15000, r
    assert r["pid"] > 0 and not os.path.exists(f"/proc/{r['pid']}")  # that ssh, by its pid


def test_a_port_nobody_listens_on_is_unreachable(remote):
    h = remote.h
    r = remote.call("run", "true")  # it answers on its own port
    assert r["fail"] == "ok", r
    p = remote.net.run([driver(), *remote.opts, f"{h.target()}:2222", "run", "true"],
                       check=False)
    r = json.loads(p.stdout)
    assert (p.returncode, r["fail"]) == (1, "unreachable"), r
    assert r["why"].startswith(f"{h.target()}:2222 is unreachable: ") and "refused" in r["why"]


def test_first_commands_at_once_all_run_and_one_master_remains(remote):
    procs = [subprocess.Popen(remote.net.argv([driver(), *remote.opts, remote.h.target(), "run",
                                               f"echo {i}"]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        r = json.loads(out)
        # those that lost the race to be the master connect on their own, quietly
        assert (p.returncode, r["fail"], r["out"], r["err"]) == (0, "ok", f"{i}\n", ""), (r, err)
    assert len(os.listdir(remote.ctl)) == 1
    assert remote.call("ctl", "check")["fail"] == "ok"


@pytest.mark.timing  # compares durations
def test_commands_share_one_multiplexed_connection_per_host(remote, capsys):
    assert not os.path.exists(remote.ctl)
    r = remote.call("ctl", "check")
    assert r["fail"] != "ok"  # no master yet
    first = remote.call("run", "true")["elapsed_ms"]
    socks = os.listdir(remote.ctl)
    assert len(socks) == 1 and len(socks[0]) == 40, socks  # ControlPath=<dir>/%C
    assert remote.call("ctl", "check")["fail"] == "ok"
    mux = [remote.call("run", "true")["elapsed_ms"] for _ in range(7)]
    fresh = [remote.call("run", "true", mux=False)["elapsed_ms"] for _ in range(7)]
    assert os.listdir(remote.ctl) == socks
    with capsys.disabled():
        print(f"\nssh true: first (makes the master) {first:.0f} ms; multiplexed median "
              f"{statistics.median(mux):.0f} ms; fresh median {statistics.median(fresh):.0f} ms")
    assert statistics.median(mux) < statistics.median(fresh)
    assert remote.call("ctl", "exit")["fail"] == "ok"
    assert remote.call("ctl", "check")["fail"] != "ok"
