"""`eph next`: fire times of expressions and of the jobs of a file, through the real binary.
Expected times are written out by hand (checked against a calendar), not computed."""

import datetime
import json
import textwrap

import pytest


def next_expr(run, expr, *extra):
    p = run(["next", "--expr", expr, *extra])
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    return p.stdout.splitlines()


CASES = [
    # (expression, zone, after, n, expected)
    ("*/15 * * * *", "UTC", "2026-01-01T00:00:00Z", 3,
     ["2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00", "2026-01-01T00:45:00+00:00"]),
    # 5/15 means 5-59/15, as in Vixie cron and cronie
    ("5/15 * * * *", "UTC", "2026-01-01T00:00:00Z", 5,
     ["2026-01-01T00:05:00+00:00", "2026-01-01T00:20:00+00:00", "2026-01-01T00:35:00+00:00",
      "2026-01-01T00:50:00+00:00", "2026-01-01T01:05:00+00:00"]),
    # year rollover
    ("0 0 1 1 *", "UTC", "2026-06-01T00:00:00Z", 2,
     ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
    # Feb 29 waits for the next leap year
    ("0 12 29 2 *", "UTC", "2026-03-01T00:00:00Z", 2,
     ["2028-02-29T12:00:00+00:00", "2032-02-29T12:00:00+00:00"]),
    # the 31st skips the months without one
    ("0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", 3,
     ["2026-03-31T00:00:00+00:00", "2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00"]),
    # day of month and day of week both restricted: either matches (Fridays, and the 13th)
    ("0 0 13 * 5", "UTC", "2026-11-01T00:00:00Z", 8,
     ["2026-11-06T00:00:00+00:00", "2026-11-13T00:00:00+00:00", "2026-11-20T00:00:00+00:00",
      "2026-11-27T00:00:00+00:00", "2026-12-04T00:00:00+00:00", "2026-12-11T00:00:00+00:00",
      "2026-12-13T00:00:00+00:00", "2026-12-18T00:00:00+00:00"]),
    # a day-of-week field that starts with '*' is unrestricted: both must match
    ("0 0 1 * */2", "UTC", "2026-01-01T00:00:00Z", 3,
     ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00", "2026-08-01T00:00:00+00:00"]),
    # names, case-insensitive; 7 is Sunday
    ("0 9 * JAN-feb mon", "UTC", "2026-01-01T00:00:00Z", 2,
     ["2026-01-05T09:00:00+00:00", "2026-01-12T09:00:00+00:00"]),
    ("0 9 * * 7", "UTC", "2026-01-01T00:00:00Z", 1, ["2026-01-04T09:00:00+00:00"]),
    # a day-of-week range that ends in Sunday ends in 7, as in cronie: every weekend
    ("0 9 * * Sat-Sun", "UTC", "2026-01-01T00:00:00Z", 3,
     ["2026-01-03T09:00:00+00:00", "2026-01-04T09:00:00+00:00", "2026-01-10T09:00:00+00:00"]),
    ("0 9 * * Mon-Sun/3", "UTC", "2026-01-01T00:00:00Z", 3,  # Mon, Thu, Sun
     ["2026-01-01T09:00:00+00:00", "2026-01-04T09:00:00+00:00", "2026-01-05T09:00:00+00:00"]),
    # 2100 is not a leap year: eight years to the next Feb 29
    ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", 2,
     ["2104-02-29T00:00:00+00:00", "2108-02-29T00:00:00+00:00"]),
    # Feb 29 that is a Sunday ("*/7" starts with '*': the days are ANDed)
    ("0 0 29 2 */7", "UTC", "2089-01-01T00:00:00Z", 1, ["2128-02-29T00:00:00+00:00"]),
    ("@monthly", "UTC", "2026-01-15T00:00:00Z", 1, ["2026-02-01T00:00:00+00:00"]),
    # @every counts from the epoch, so every daemon agrees on the grid
    ("@every 90m", "UTC", "2026-01-01T00:00:00Z", 2,
     ["2026-01-01T01:30:00+00:00", "2026-01-01T03:00:00+00:00"]),
    # a time in the spring-forward gap fires once, at the first instant after it
    ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 2,
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ("0,30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 2,
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]),
    # a repeated time fires once, at its first occurrence
    ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", 2,
     ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    # a wall-clock job skips the gap...
    ("*/30 * * * *", "America/New_York", "2026-03-08T01:00:00-05:00", 3,
     ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]),
    # ...and runs both passes of the repeated hour
    ("*/30 * * * *", "America/New_York", "2026-11-01T00:45:00-04:00", 5,
     ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00",
      "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"]),
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00", 2,
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("30 2 * * *", "Australia/Sydney", "2026-10-03T12:00:00+10:00", 2,
     ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"]),
    # a local time without offset is read in the zone
    ("0 * * * *", "Asia/Kolkata", "2026-01-01T10:15", 1, ["2026-01-01T11:00:00+05:30"]),
]


@pytest.mark.parametrize("expr,zone,after,n,want", CASES, ids=[f"{c[0]}@{c[1]}" for c in CASES])
def test_expr_fire_times(run, expr, zone, after, n, want):
    assert next_expr(run, expr, "--tz", zone, "--after", after, "-n", str(n)) == want


def test_expr_json(run):
    p = run(["next", "--expr", "@daily", "--tz", "Europe/Berlin", "--after",
             "2026-03-28T12:00:00+01:00", "-n", "2", "--json"])
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {
        "expr": "@daily",
        "timezone": "Europe/Berlin",
        "times": ["2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"],
    }


def test_the_times_up_to_year_9999_then_a_plain_no(run):
    p = run(["next", "--expr", "0 0 29 2 *", "--tz", "UTC", "--after", "9990-01-01T00:00:00Z"])
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["9992-02-29T00:00:00+00:00", "9996-02-29T00:00:00+00:00"]
    assert p.stderr == ('eph next: "0 0 29 2 *" has no fire time after '
                        "9996-02-29T00:00:00+00:00 up to the end of the year 9999\n")


def test_a_time_that_dst_always_skips_never_fires(run):
    # 2:00 and 2:30 on the second Sunday of March: New York skips that hour since 2007
    args = ["next", "--expr", "*/30 2 8-14 3 */7", "--tz", "America/New_York",
            "--after", "2020-01-01"]
    p = run(args)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "has no fire time after 2020-01-01T00:00:00-05:00 up to the end of the year 9999" \
        in p.stderr
    p = run([*args, "--json"])
    assert p.returncode == 1
    assert json.loads(p.stdout) == {
        "expr": "*/30 2 8-14 3 */7", "timezone": "America/New_York", "times": []}
    assert "no fire time" in p.stderr


def test_default_is_five_times_after_now(run):
    lines = next_expr(run, "* * * * *", "--tz", "UTC")
    assert len(lines) == 5
    assert all(line.endswith(":00+00:00") for line in lines)


@pytest.mark.parametrize("expr,where,msg", [
    ("0 0 32 * *", "--expr:1:5:", "32"),
    ("61 * * * *", "--expr:1:1:", "61"),
    ("0 17-9 * * *", "--expr:1:3:", "17-9"),
    ("0 0 30 2 *", "--expr:1:", "never"),
    ("*/0 * * * *", "--expr:1:1:", "0"),
    ("* * * *", "--expr:1:", "5 fields"),
    ("@fortnightly", "--expr:1:1:", "@fortnightly"),
])
def test_bad_expression_is_reported_with_its_column(run, expr, where, msg):
    p = run(["next", "--expr", expr, "--tz", "UTC"])
    assert p.returncode == 2
    assert p.stdout == ""
    first = p.stderr.splitlines()[0]
    assert first.startswith(where), p.stderr
    assert msg in first, p.stderr


def test_every_bad_field_is_reported(run):
    p = run(["next", "--expr", "99 99 * * 9", "--tz", "UTC"])
    assert p.returncode == 2
    cols = [line.split(":")[2] for line in p.stderr.splitlines()]
    assert cols == ["1", "4", "11"], p.stderr


@pytest.mark.parametrize("args,msg", [
    (["--expr", "* * * * *", "--tz", "Mars/Olympus"], "unknown time zone"),
    (["--expr", "* * * * *", "--tz", "../../etc/passwd"], "time zone"),
    (["--expr", "* * * * *", "--after", "yesterday"], "--after"),
    (["--expr", "* * * * *", "-n", "0"], "-n"),
    (["--expr", "* * * * *", "-n", "x"], "-n"),
    (["--expr", "* * * * *", "-n", " 5"], "-n"),
    (["--expr", "* * * * *", "-n", "+5"], "-n"),
    (["--expr", "* * * * *", "-n", "100001"], "-n"),
    (["--bogus"], "unknown option"),
    (["--expr", "* * * * *", "job"], "takes no JOB"),
])
def test_bad_usage_exits_2(run, args, msg):
    p = run(["next", *args])
    assert p.returncode == 2
    assert msg in p.stderr


JOBS = textwrap.dedent("""\
    defaults:
      timezone: UTC
    jobs:
      hourly:
        schedule: "@hourly"
        run: "true"
      berlin:
        schedule: "30 2 * * *"
        timezone: Europe/Berlin
        run: "true"
      quarter:
        schedule: "*/15 * * * *"
        command: ["true"]
    """)


@pytest.fixture
def jobs_file(tmp_path):
    f = tmp_path / "ephemeron.yaml"
    f.write_text(JOBS)
    return f


def test_jobs_are_merged_in_time_order(run, jobs_file):
    p = run(["-f", jobs_file, "next", "-n", "2", "--after", "2026-10-25T00:00:00Z"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "2026-10-25T00:15:00+00:00 quarter",
        # the same instant as quarter's 00:30 UTC; each job's times are in its own zone
        "2026-10-25T02:30:00+02:00 berlin",
        "2026-10-25T00:30:00+00:00 quarter",
        "2026-10-25T01:00:00+00:00 hourly",
        "2026-10-25T02:00:00+00:00 hourly",
        "2026-10-26T02:30:00+01:00 berlin",
    ]


def test_one_job_and_json(run, jobs_file, tmp_path):
    p = run(["next", "berlin", "-n", "1", "--after", "2026-10-25T00:00:00Z"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "2026-10-25T02:30:00+02:00\n"
    p = run(["-f", jobs_file, "next", "quarter", "-n", "1", "--json",
             "--after", "2026-01-01T00:00:00Z"])
    assert json.loads(p.stdout) == [{
        "job": "quarter", "schedule": "*/15 * * * *", "timezone": "UTC",
        "times": ["2026-01-01T00:15:00+00:00"],
    }]


def test_unknown_job_and_tz_with_jobs(run, jobs_file):
    p = run(["-f", jobs_file, "next", "nope"])
    assert p.returncode == 2 and 'no job "nope"' in p.stderr
    p = run(["-f", jobs_file, "next", "--tz", "UTC"])
    assert p.returncode == 2 and "--tz" in p.stderr


def test_missing_jobs_file(run, tmp_path):
    p = run(["next"], cwd=tmp_path)
    assert p.returncode == 2
    assert "ephemeron.yaml" in p.stderr


def test_a_job_that_runs_out_is_named_and_fails(run, tmp_path):
    f = tmp_path / "ephemeron.yaml"
    f.write_text(JOBS + textwrap.indent(textwrap.dedent("""\
        leap:
          schedule: "0 0 29 2 *"
          run: "true"
        """), "  "))
    p = run(["-f", f, "next", "-n", "2", "--after", "9999-12-31T22:00:00Z"])
    assert p.returncode == 1
    assert p.stdout.splitlines() == [
        "9999-12-31T22:15:00+00:00 quarter",
        "9999-12-31T22:30:00+00:00 quarter",
        "9999-12-31T23:00:00+00:00 hourly",
    ]
    assert sorted(p.stderr.splitlines()) == [
        "eph next: job berlin has no fire time after 9999-12-31T23:00:00+01:00 up to the end "
        "of the year 9999",
        "eph next: job hourly has no fire time after 9999-12-31T23:00:00+00:00 up to the end "
        "of the year 9999",
        "eph next: job leap has no fire time after 9999-12-31T22:00:00+00:00 up to the end of "
        "the year 9999",
    ]
    p = run(["-f", f, "next", "leap", "--json", "--after", "9995-01-01T00:00:00Z"])
    assert p.returncode == 1
    assert json.loads(p.stdout) == [{
        "job": "leap", "schedule": "0 0 29 2 *", "timezone": "UTC",
        "times": ["9996-02-29T00:00:00+00:00"],
    }]
    assert "job leap has no fire time after 9996-02-29T00:00:00+00:00" in p.stderr


def many_jobs(tmp_path, n):
    """N daily jobs jNNNNN in UTC, job i at minute i % 60 of hour i // 60 % 24."""
    f = tmp_path / "many.yaml"
    f.write_text("defaults:\n  timezone: UTC\njobs:\n" + "".join(
        f"  j{i:05d}:\n    schedule: \"{i % 60} {i // 60 % 24} * * *\"\n    run: \"true\"\n"
        for i in range(n)))
    return f


def test_many_times_of_one_job_among_many_jobs(run, tmp_path):
    # 20,000 jobs x 100,000 times once took 48 GB and aborted, for one job's 100,000 lines
    f = many_jobs(tmp_path, 20000)
    p = run(["-f", f, "next", "j01234", "-n", "100000", "--after", "2026-01-01T00:00:00Z"],
            timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert len(lines) == 100000
    # j01234 fires daily at 20:34 (1234 = 20 * 60 + 34); the 100,000th day from 2026-01-01
    # is 2299-10-16 (datetime agrees, below)
    assert lines[0] == "2026-01-01T20:34:00+00:00"
    assert lines[-1] == "2299-10-16T20:34:00+00:00"
    day0 = datetime.datetime(2026, 1, 1, 20, 34, tzinfo=datetime.timezone.utc)
    assert lines == [(day0 + datetime.timedelta(days=k)).isoformat() for k in range(100000)]


def test_many_jobs_are_merged_in_time_then_name_order(run, tmp_path):
    f = many_jobs(tmp_path, 20000)
    p = run(["-f", f, "next", "-n", "3", "--after", "2026-01-01T12:00:00Z"], timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert len(lines) == 60000
    # 20,000 jobs share the 1,440 minutes of the day: the first after 12:00 is 12:01, held
    # by j00721, j02161, j03601, ... (every 1,440th job)
    assert lines[:3] == ["2026-01-01T12:01:00+00:00 j00721", "2026-01-01T12:01:00+00:00 j02161",
                         "2026-01-01T12:01:00+00:00 j03601"]
    want = []
    for i in range(20000):
        m = i % 1440
        first = datetime.datetime(2026, 1, 1, m // 60, m % 60, tzinfo=datetime.timezone.utc)
        if m < 12 * 60 + 1:  # at or before 12:00: tomorrow's is the first
            first += datetime.timedelta(days=1)
        for k in range(3):
            want.append((first + datetime.timedelta(days=k), f"j{i:05d}"))
    want.sort()
    assert lines == [f"{t.isoformat()} {name}" for t, name in want]
