"""Where the memory goes (docs/profile.md): a profiled Python run names the line and the
function holding its memory, also when the memory limit killed it; profile: off gives no
profile; a command that is not Python says it went unprofiled, and why."""

import json
import re
import textwrap

from conftest import store_rows, wait_for
from test_daemon import daemons  # noqa: F401 (a fixture)
from test_mail import smtpd  # noqa: F401 (a fixture)

PY = "/usr/bin/python3"
MiB = 1 << 20
# 300 MiB held at line 6, in load_all; then, with an argument, grows until killed
HOLD = """\
import sys
import time


def load_all():
    data = [bytearray(1 << 20) for _ in range(300)]
    return data


def main():
    d = load_all()
    for b in d:
        b[::4096] = b"x" * len(b[::4096])
    time.sleep(1)
    more = []
    while len(sys.argv) > 1:
        more.append(bytearray(8 << 20))
        time.sleep(0.01)
    print("held", len(d))


main()
"""


def jobs_at(tmp_path, body):
    (tmp_path / "hold.py").write_text(HOLD)
    f = tmp_path / "ephemeron.yaml"
    f.write_text(textwrap.dedent(body))
    return f


def events(state_dir, job, kind):
    r = store_rows(state_dir, "runs", "job = ?", (job,))
    out = []
    for line in open(f"{r[-1]['run_dir']}/events.jsonl"):
        e = json.loads(line)
        if e.get("ev") == kind or e.get("event") == kind:
            out.append(e)
    return r, out


def test_a_profiled_run_names_the_line_and_function(run, tmp_path, state_dir):
    jobs = jobs_at(tmp_path, f"""\
        jobs:
          hold:
            schedule: "@hourly"
            command: [{PY}, hold.py]
            memory: 1GiB
            profile: memory
        """)
    p = run(["-f", jobs, "run", "hold"])
    assert p.returncode == 0, p.stderr
    r, ev = events(state_dir, "hold", "profile")
    assert len(ev) == 1, ev
    top = ev[0]["sites"][0]
    assert (top["file"], top["line"], top["function"]) == ("hold.py", 6, "load_all")
    # within the step between snapshots (5%) of the 300 MiB
    assert 280 * MiB <= top["bytes"] < 310 * MiB
    assert "profiled: +256 MiB for the profiler (profile: memory)" in r[-1]["memory_reason"]
    assert r[-1]["memory_limit"] == 1 << 30
    show = run(["-f", jobs, "show", str(r[-1]["id"])]).stdout
    m = re.search(r"hold\.py:6 in load_all: (\d+) MiB of the \d+ MiB peak", show)
    assert m and 280 <= int(m.group(1)) < 310, show
    # a profiled run is kept out of the job's sizing history
    out = json.loads(run(["-f", jobs, "sizes", "--json"]).stdout)["jobs"][0]
    assert out["runs"] == 0, out


def test_an_oom_killed_run_keeps_its_last_snapshot(run, tmp_path, state_dir):
    jobs = jobs_at(tmp_path, f"""\
        jobs:
          hold:
            schedule: "@hourly"
            command: [{PY}, hold.py, grow]
            memory: 400MiB
            profile: memory
        """)
    p = run(["-f", jobs, "run", "hold"])
    assert p.returncode != 0
    r, ev = events(state_dir, "hold", "profile")
    assert r[-1]["state"] == "oom", r[-1]
    sites = {(s["file"], s["line"], s["function"]): s["bytes"] for s in ev[0]["sites"]}
    assert 280 * MiB <= sites[("hold.py", 6, "load_all")] < 310 * MiB, sites
    assert ("hold.py", 17, "main") in sites, sites


def test_the_run_after_an_oom_is_profiled_by_default(run, tmp_path, state_dir):
    jobs = jobs_at(tmp_path, f"""\
        jobs:
          hold:
            schedule: "@hourly"
            command: [{PY}, hold.py]
            memory: 200MiB
        """)
    assert run(["-f", jobs, "run", "hold"]).returncode != 0
    r, ev = events(state_dir, "hold", "profile")
    assert r[-1]["state"] == "oom" and ev == []
    assert "profiled" not in r[-1]["memory_reason"]
    run(["-f", jobs, "run", "hold"])
    r, ev = events(state_dir, "hold", "profile")
    assert "(after an oom)" in r[-1]["memory_reason"]
    assert len(ev) == 1


def test_profile_off_gives_no_profile(run, tmp_path, state_dir):
    jobs = jobs_at(tmp_path, f"""\
        jobs:
          hold:
            schedule: "@hourly"
            command: [{PY}, hold.py]
            memory: 200MiB
            profile: off
        """)
    run(["-f", jobs, "run", "hold"])
    run(["-f", jobs, "run", "hold"])
    r, ev = events(state_dir, "hold", "profile")
    assert len(r) == 2 and ev == []
    assert not any("profiled" in x["memory_reason"] for x in r)
    assert not (tmp_path / "state" / "runs" / str(r[-1]["id"]) / "profile.json").exists()


def test_a_command_that_is_not_python_goes_unprofiled(run, tmp_path, state_dir):
    jobs = jobs_at(tmp_path, """\
        jobs:
          shell:
            schedule: "@hourly"
            run: echo hi
            memory: 200MiB
            profile: memory
        """)
    p = run(["-f", jobs, "run", "shell"])
    assert p.returncode == 0, p.stderr
    r, ev = events(state_dir, "shell", "unprofiled")
    assert len(ev) == 1 and "not Python" in ev[0]["reason"], ev
    show = run(["-f", jobs, "show", str(r[-1]["id"])]).stdout
    assert "unprofiled: no Python" in show, show


def test_the_grow_retry_after_an_oom_is_profiled(run, tmp_path, state_dir):
    jobs = jobs_at(tmp_path, f"""\
        jobs:
          hold:
            schedule: "@hourly"
            command: [{PY}, hold.py]
            memory: {{auto: true, min: 128MiB, max: 1GiB}}
            retry_on_oom: grow
        """)
    p = run(["-f", jobs, "run", "hold"])
    assert p.returncode == 0, p.stderr
    r, ev = events(state_dir, "hold", "profile")
    assert r[0]["state"] == "oom" and "profiled" not in r[0]["memory_reason"]
    assert len(r) >= 2 and r[-1]["state"] == "succeeded"
    for x in r[1:]:
        assert x["trigger"] == "retry"
        assert x["memory_reason"].endswith("for the profiler (after an oom)"), x
    top = ev[0]["sites"][0]
    assert (top["file"], top["line"], top["function"]) == ("hold.py", 6, "load_all")
    # the room is not the limit the run was given; the profiled runs are not its history
    assert r[-1]["memory_limit"] in (256 * MiB, 512 * MiB)
    out = json.loads(run(["-f", jobs, "sizes", "--json"]).stdout)["jobs"][0]
    assert out["runs"] == 1, out


def test_the_sitecustomize_the_hook_shadows_still_runs(run, tmp_path, state_dir):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text('print("the job\'s sitecustomize")\n')
    jobs = jobs_at(tmp_path, f"""\
        jobs:
          hold:
            schedule: "@hourly"
            command: [{PY}, hold.py]
            memory: 1GiB
            profile: memory
            env: {{PYTHONPATH: {tmp_path / "site"}}}
        """)
    p = run(["-f", jobs, "run", "hold"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "the job's sitecustomize\nheld 300\n"
    r, ev = events(state_dir, "hold", "profile")
    assert ev[0]["sites"][0]["function"] == "load_all"


def test_the_mail_of_an_oom_run_lists_the_sites(tmp_path, smtpd, daemons, state_dir):  # noqa: F811
    from test_daemon_mail import jobs_yaml
    from test_daemon import write_jobs

    (tmp_path / "hold.py").write_text(HOLD)
    s = smtpd().start()
    jobs = write_jobs(tmp_path / "jobs.yaml", jobs_yaml(s.port, f"""\
          hold:
            schedule: "@every 2s"
            command: [{PY}, hold.py, grow]
            memory: 400MiB
            profile: memory
            notify: {{ on: [oom] }}
        """))
    d = daemons(jobs, state_dir)
    wait_for(lambda: len(s.messages()) >= 1, 30, "a message")
    assert d.stop() == 0
    body = s.messages()[0].get_content()
    assert "Where the memory went (tracemalloc, highest snapshot):" in body, body
    assert "  hold.py:6 in load_all: " in body, body
