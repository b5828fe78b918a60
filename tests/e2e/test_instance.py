"""The scheduler's instance id: none before its first start, made by `eph daemon` (or the
first `eph run`), kept in STATE/instance across restarts, shown by `eph status`."""

import json
import re

from test_daemon import IDLE_JOBS, daemons, write_jobs  # noqa: F401 (a fixture)


def test_status_shows_the_id_the_first_start_made_and_restarts_keep(tmp_path, state_dir,
                                                                    daemons, run):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", IDLE_JOBS)
    p = run(["-f", jobs, "status"])
    assert p.returncode == 0, p.stderr
    assert "\ninstance: none yet\n" in p.stdout
    p = run(["-f", jobs, "status", "--json"])
    assert p.returncode == 0 and json.loads(p.stdout)["instance"] is None
    assert not (state_dir / "instance").exists()

    d = daemons(jobs, state_dir)
    text = (state_dir / "instance").read_text()
    assert re.fullmatch(r"[0-9a-f]{16}\n", text)
    iid = text.strip()
    p = run(["-f", jobs, "status", "--json"])  # through the daemon
    st = json.loads(p.stdout)
    assert st["daemon"]["running"] and st["instance"] == iid
    assert d.stop() == 0

    d = daemons(jobs, state_dir, "daemon2.log")
    assert (state_dir / "instance").read_text() == text
    p = run(["-f", jobs, "status"])
    assert p.returncode == 0 and f"\ninstance: {iid}\n" in p.stdout
    assert d.stop() == 0
    p = run(["-f", jobs, "run", "idle"])  # a run outside the daemon keeps it too
    assert p.returncode == 0, p.stderr
    assert (state_dir / "instance").read_text() == text


def test_a_first_run_makes_the_id_and_a_damaged_one_is_an_error(tmp_path, state_dir, run):
    jobs = write_jobs(tmp_path / "ephemeron.yaml", IDLE_JOBS)
    p = run(["-f", jobs, "run", "idle"])
    assert p.returncode == 0, p.stderr
    iid = (state_dir / "instance").read_text().strip()
    p = run(["-f", jobs, "status", "--json"])
    assert json.loads(p.stdout)["instance"] == iid

    (state_dir / "instance").write_text("garbage\n")
    p = run(["-f", jobs, "status", "--json"])
    assert p.returncode == 1 and json.loads(p.stdout)["instance"] is None
    assert "instance: not an instance id" in p.stderr
    p = run(["-f", jobs, "run", "idle"])
    assert p.returncode != 0 and "not an instance id" in p.stderr
    assert (state_dir / "instance").read_text() == "garbage\n"
