"""The verdict of scripts/check's load pass, in the full run's summary: scripts/check first
runs the tests marked `timing` with both cores busy (stress-ng --cpu 2), with EPH_LOAD_PASS=1
and EPH_LOAD_REPORT naming a file where conftest.py records each test's outcome; then the full
run, whose summary line is the suite's verdict, runs this test on that file. Without
EPH_LOAD_REPORT (pytest run by hand) there was no load pass: skipped."""

import os

import pytest


def test_the_timing_tests_passed_with_both_cores_busy():
    path = os.environ.get("EPH_LOAD_REPORT")
    if not path or os.environ.get("EPH_LOAD_PASS") == "1":
        pytest.skip("no load pass before this run (scripts/check makes one)")
    with open(path) as f:
        lines = f.read().splitlines()
    outcomes = [ln.split(" ", 1) for ln in lines]
    ends = [int(v) for k, v in outcomes if k == "exit"]
    failed = [v for k, v in outcomes if k == "failed"]
    passed = [v for k, v in outcomes if k == "passed"]
    assert ends, f"the load pass did not finish: {lines[-5:]}"
    assert not failed, "failed with both cores busy:\n" + "\n".join(failed)
    assert ends == [0] and passed, f"the load pass ran no test or failed: {lines}"
