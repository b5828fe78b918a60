"""A remote run's results come back (issue 17, "Results"): the files its command wrote into
$EPH_RESULTS on a test host (testhosts.py) are streamed back by `eph-agent --follow` after
result.json, written under this machine's run directory, and the host's run directory is
gone afterwards."""

import json

import pytest

from conftest import wait_for
from sshpool import MiB, pool  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timing

WRITER = """\
import os
res = os.environ["EPH_RESULTS"]
os.makedirs(os.path.join(res, "out", "deep"), exist_ok=True)
with open(os.path.join(res, "out", "report.csv"), "w") as f:
    f.write("a,b\\n1,2\\n")
open(os.path.join(res, "out", "deep", "empty"), "w").close()
with open(os.path.join(res, "big.bin"), "wb") as f:
    for i in range(5):
        f.write(bytes([i]) * (300 << 10))
raise SystemExit(3)
"""


def test_a_remote_runs_results_come_back_and_its_host_dir_goes(pool):
    h = pool.host(512 * MiB)
    pool.jobs({"writes": "run: python3 writer.py, memory: 128MiB"},
              files={"writer.py": WRITER})
    pool.daemon()
    rid = pool.run("writes")
    row = pool.wait_end(rid)
    # a failed run's results come back too
    assert row["state"] == "failed", (row, pool.logs())
    res = pool.state / "runs" / str(rid) / "results"
    assert (res / "out" / "report.csv").read_text() == "a,b\n1,2\n"
    assert (res / "out" / "deep" / "empty").read_bytes() == b""
    # 1.5 MB: more than one frame of the follower (256 KiB)
    assert (res / "big.bin").read_bytes() == b"".join(bytes([i]) * (300 << 10)
                                                      for i in range(5))
    o = json.loads(pool.eph("results", str(rid), "--json").stdout)
    assert [f["path"] for f in o["files"]] == ["big.bin", "out/deep/empty", "out/report.csv"]
    wait_for(lambda: not pool.remote_runs(h), 10, "the remote run directory to go")
    pool.stop()
