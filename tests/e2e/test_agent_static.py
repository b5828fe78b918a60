"""eph-agent is one static file that runs on any x86-64 Linux with nothing installed: the
binary that remote executors ship. Checked on the plain build (a sanitizer build's agent stays
dynamic: gcc cannot link ASan statically): no ELF interpreter, no shared library, and a real
run inside a root directory that holds nothing but the agent and the command."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from test_agent import _made, _run_ids, leftover_cgroups

MiB = 1 << 20

# A command as static as the agent: allocates and touches N MiB, says so, exits 0.
HOG_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
	size_t n = (size_t)atoi(argv[1]) << 20;
	char *p = malloc(n);
	if (p == NULL)
		return 3;
	memset(p, 1, n);
	printf("touched %s MiB (%d)\n", argv[1], p[n / 2]); /* p is used: memset stays */
	return 0;
}
"""


def plain_agent():
    """The plain build's eph-agent: $EPH_PLAIN_AGENT (scripts/check sets it), else build/."""
    path = Path(os.environ.get("EPH_PLAIN_AGENT", ROOT / "build" / "eph-agent"))
    if not os.access(path, os.X_OK):
        msg = f"no plain build's eph-agent at {path} (meson setup build && ninja -C build)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def readelf(flag, path):
    p = subprocess.run(["readelf", flag, "-W", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_the_agent_has_no_interpreter_and_no_shared_library():
    agent = plain_agent()
    headers = readelf("-l", agent)
    assert "LOAD" in headers, headers  # the check reads real program headers
    assert "INTERP" not in headers, headers
    assert "NEEDED" not in readelf("-d", agent)
    # and the dynamic eph next to it shows what the check would see otherwise
    assert "INTERP" in readelf("-l", agent.parent / "eph")


def agent_in_empty_root(tmp_path, argv, memory, dev=True):
    """Runs the plain build's agent chrooted in a root that holds only the agent, /proc, /sys
    (the cgroup and the sampler) and, with DEV, /dev, in a private mount namespace gone with
    it. Returns (the agent's exit, the run directory, the run id)."""
    root = tmp_path / "root"
    for d in ("proc", "sys", "dev", "run", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "eph-agent").write_bytes(plain_agent().read_bytes())
    (root / "eph-agent").chmod(0o755)
    rid = next(_run_ids)
    _made.append(rid)
    spec = {"version": 1, "run_id": rid, "job": "t", "attempt": 1,
            "scheduled_at": 1764007200, "argv": argv, "shell": None, "env": {},
            "cwd": "/tmp", "memory": memory, "timeout": 60, "kill_grace": 1,
            "commit": None, "enforce": "auto"}
    (root / "run" / "spec.json").write_text(json.dumps(spec))
    script = (f"mount --bind /proc {root}/proc && mount --rbind /sys {root}/sys && "
              + (f"mount --rbind /dev {root}/dev && " if dev else "")
              + f"exec chroot {root} /eph-agent /run")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60, env={})
    return p, root / "run", rid


def test_the_agent_runs_a_command_in_an_empty_root(tmp_path):
    src = tmp_path / "hog.c"
    src.write_text(HOG_C)
    (tmp_path / "root").mkdir()
    subprocess.run(["cc", "-static", "-O", "-o", str(tmp_path / "root" / "hog"), str(src)],
                   check=True)
    p, run, rid = agent_in_empty_root(tmp_path, ["/hog", "40"], 256 * MiB)
    assert p.returncode == 0, p.stderr
    result = json.loads((run / "result.json").read_text())
    assert result["outcome"] == "succeeded", result
    assert result["enforced"] in ("cgroup1", "cgroup2"), result
    assert 40 * MiB <= result["peak_bytes"] < 60 * MiB, result
    assert "touched 40 MiB" in (run / "output.log").read_text()
    assert leftover_cgroups([rid]) == []


# What a static glibc program must never call: the name service (NSS) loads shared objects
# at run time, which a host of another distribution does not have. libuv's uv_os_get_passwd
# (linked in, with a warning about getpwuid_r) and uv_os_homedir lead there.
NSS = {"getpwnam", "getpwuid", "getpwnam_r", "getpwuid_r", "getgrnam", "getgrgid",
       "getgrnam_r", "getgrgid_r", "getgrouplist", "initgroups", "getaddrinfo",
       "gethostbyname", "getservbyname", "getnameinfo", "uv_os_get_passwd",
       "uv_os_get_passwd2", "uv_os_homedir", "uv_getaddrinfo", "uv_getnameinfo"}


def test_the_agent_never_reaches_the_name_service():
    build = plain_agent().parent
    objs = [build / "src" / f"libeph_{lib}.a" for lib in ("agent", "source", "rundir", "util")]
    objs += list((build / "eph-agent.p").glob("*.o"))
    assert len(objs) == 5 and all(o.exists() for o in objs), objs
    p = subprocess.run(["nm", "-u", "--format=posix", *map(str, objs)], capture_output=True,
                       text=True, check=True)
    used = {f[0] for f in map(str.split, p.stdout.splitlines()) if f[1:2] == ["U"]}
    assert "uv_spawn" in used or "uv_run" in used, "nm read no undefined symbols?"
    assert used & NSS == set()


def test_a_command_that_cannot_start_took_no_time(tmp_path):
    # no /dev: the agent cannot open /dev/null for the command, which never starts; its exec
    # phase is nothing (it once measured the machine's uptime)
    p, run, rid = agent_in_empty_root(tmp_path, ["/hog", "1"], 64 * MiB, dev=False)
    assert p.returncode == 1, p.stderr
    result = json.loads((run / "result.json").read_text())
    assert result["outcome"] == "failed", result
    assert result["reason"].startswith("cannot start the command"), result
    assert 0 <= result["phases"]["exec"] < 1, result
    assert leftover_cgroups([rid]) == []
