"""The test hosts that the remote executors are tested against (testhosts.py) behave as the
hosts they stand for: reached only from the scheduler's namespace, through a real sshd whose
host key is pinned, with a home, a /tmp and a memory limit of their own."""
import os
import subprocess

import pytest

from testhosts import TestNet

MiB = 1 << 20


@pytest.fixture
def net(tmp_path):
    n = TestNet(tmp_path)
    yield n
    n.close()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True,
                          text=True).stdout.count(f"eph-s{os.getpid()}") == 0


def test_a_host_is_reached_with_its_pinned_key_and_keeps_its_own_files(net):
    h = net.host(memory=256 * MiB)
    p = net.run(["ssh", *net.ssh_args(h), "echo hi >~/said; echo t >/tmp/t; cat /proc/self/cgroup"])
    assert (h.home / "said").read_text() == "hi\n"
    assert not os.path.exists("/tmp/t") or open("/tmp/t").read() != "t\n"
    assert f"eph-test-{os.getpid()}/host1" in p.stdout
    assert (h.cgroup / ("memory.limit_in_bytes" if h.cgv == 1 else "memory.max")).read_text() \
        .strip() == str(256 * MiB)


def test_a_host_whose_key_is_not_pinned_is_refused(net, tmp_path):
    h = net.host()
    other = tmp_path / "other_known_hosts"
    other.write_text(h.known_hosts_line().replace(h.addr, "10.253.99.2"))
    p = net.run(["ssh", *net.ssh_args(h, known_hosts=other), "true"], check=False)
    assert p.returncode == 255
    assert "Host key verification failed" in p.stderr, p.stderr


def test_two_hosts_and_a_cut_link(net):
    a, b = net.host(), net.host()
    assert net.run(["ssh", *net.ssh_args(b), "true"]).returncode == 0
    a.cut()
    p = net.run(["ssh", *net.ssh_args(a), "-o", "ConnectTimeout=1", "true"], check=False)
    assert p.returncode == 255 and "timed out" in p.stderr, p.stderr
    a.mend()
    assert net.run(["ssh", *net.ssh_args(a), "true"]).returncode == 0
