"""eph-cloud, the process that speaks to the cloud's API for the digitalocean executor, against
the test cloud (docloud.py): one JSON request on stdin, one JSON answer on stdout; 429s waited
out to the reset and never sooner, 5xx and network errors backed off, pages followed, the token
read from a private file or a variable and never shown."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_EXIT, eph_bin
from docloud import SIZES, DoCloud, _size


def cloud_bin():
    return str(Path(eph_bin()).parent / "eph-cloud")


@pytest.fixture
def cloud():
    c = DoCloud(None, boot_delay=0.1)
    yield c
    c.close()


@pytest.fixture
def tok(cloud, tmp_path):
    return cloud.token_file(tmp_path / "do-token")


def run(cloud, tok, op, env=None, raw=None, **kw):
    """(exit status, the JSON answer, stderr)."""
    req = {"provider": "digitalocean", "api_url": cloud.url, "token_file": str(tok), **kw}
    p = subprocess.run([cloud_bin(), op], input=raw if raw is not None else json.dumps(req),
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **(env or {})))
    assert p.returncode not in SANITIZER_EXIT, p.stderr
    assert cloud.token not in p.stdout and cloud.token not in p.stderr
    assert len(p.stdout.splitlines()) == 1, p.stdout
    return p.returncode, json.loads(p.stdout), p.stderr


def create(cloud, tok, **kw):
    req = {"name": "eph-train-7", "region": "fra1", "size": "s-1vcpu-1gb",
           "image": "debian-12-x64", "tags": ["ephemeron", "eph-i:abc", "eph-run:7"],
           "user_data": "#cloud-config\n", "ssh_keys": []}
    req.update(kw)
    return run(cloud, tok, "create", **req)


def test_sizes_follow_every_page_in_the_contracts_shape(tmp_path):
    many = SIZES + [_size(f"x-{i}vcpu-{i}gb", 1024 * i, i, 25, 1.0, 6 * i) for i in range(1, 430)]
    c = DoCloud(None, sizes=many)
    try:
        tok = c.token_file(tmp_path / "t")
        st, out, err = run(c, tok, "sizes")
        assert st == 0, out
        assert [s["slug"] for s in out["sizes"]] == [s["slug"] for s in many]
        s = out["sizes"][1]
        assert s == {"slug": "s-1vcpu-1gb", "memory_mib": 1024, "vcpus": 1, "disk_gb": 25,
                     "price_hourly": 0.00893, "price_monthly": 6.0, "regions": SIZES[1]["regions"],
                     "available": True}
        assert out["sizes"][4]["available"] is False
        gets = c.api_requests("GET")
        assert [r.path.split("?")[1] for r in gets] == [
            "per_page=200", "page=2&per_page=200", "page=3&per_page=200"]
    finally:
        c.close()


def test_create_get_list_by_tag_and_delete(cloud, tok):
    st, out, _ = create(cloud, tok, image="12345678")
    assert st == 0 and out["status"] == "new", out
    did = out["id"]
    assert cloud.api_requests("POST")[-1].body["image"] == 12345678  # a snapshot's id
    cloud.wait_active(did)
    st, d, _ = run(cloud, tok, "get", id=did)
    assert st == 0
    assert d == {"id": did, "status": "active", "name": "eph-train-7", "size": "s-1vcpu-1gb",
                 "region": "fra1", "tags": ["ephemeron", "eph-i:abc", "eph-run:7"],
                 "created_at": d["created_at"], "ipv4_public": d["ipv4_public"],
                 "ipv4_private": d["ipv4_private"]}
    assert d["ipv4_public"].startswith("192.0.2.") and d["created_at"].endswith("Z")
    for i in range(205):  # 206 tagged: two pages of 200
        assert cloud.create(name=f"eph-x-{i}", region="ams3", size="s-1vcpu-2gb",
                            image="debian-12-x64", tags=["eph-i:abc"])[0] == 202
    create(cloud, tok, name="other", tags=["someone-else"])
    st, out, _ = run(cloud, tok, "list", tag="eph-i:abc")
    assert st == 0 and len(out["droplets"]) == 206
    assert len({d["id"] for d in out["droplets"]}) == 206
    assert cloud.api_requests("GET")[-1].path.startswith("/v2/droplets?page=2&per_page=200")
    assert run(cloud, tok, "delete", id=did)[:2] == (0, {"deleted": True})
    assert did not in cloud.droplets()
    assert run(cloud, tok, "delete", id=did)[:2] == (0, {"gone": True})
    assert run(cloud, tok, "get", id=did)[:2] == (0, {"gone": True})


def test_a_next_page_elsewhere_is_not_followed(tmp_path):
    c = DoCloud(None, sizes=[_size(f"x-{i}", 1024, 1, 25, 1.0, 6) for i in range(250)])
    try:
        c.faults(links_base=c.url + ".evil.example")
        st, out, _ = run(c, c.token_file(tmp_path / "t"), "sizes")
        assert (st, out["kind"]) == (1, "server") and "leaves the API" in out["error"]
        assert len(c.api_requests()) == 1
    finally:
        c.close()


def test_a_429_storm_is_waited_out_to_the_reset_never_sooner(cloud, tok):
    cloud.faults(ratelimit=2.0)
    reset = cloud.ratelimit_reset
    t0 = time.time()
    st, out, err = run(cloud, tok, "sizes")
    assert st == 0 and len(out["sizes"]) == len(SIZES)
    assert "eph-cloud: 429, waiting" in err and "for ratelimit-reset" in err
    log = cloud.api_requests()
    assert [r.status for r in log] == [429, 200]
    assert log[0].t < reset <= log[1].t
    assert time.time() - t0 < reset - t0 + 2
    # a reset past the deadline: told at once, one request only
    cloud.faults(ratelimit=30.0)
    t0 = time.time()
    st, out, err = run(cloud, tok, "sizes", deadline=5)
    assert (st, out["kind"], out["status"]) == (1, "ratelimit", 429)
    assert "API rate limit exceeded. (too_many_requests)" in out["error"]
    assert time.time() - t0 < 2 and len(cloud.api_requests()) == 3


def test_retry_after_alone_is_obeyed(cloud, tok):
    # the storm's answers carry both headers; the later of the two is the one waited for
    cloud.faults(ratelimit=1.5, retry_after=True)
    reset = cloud.ratelimit_reset
    st, _, err = run(cloud, tok, "list", tag="x")
    assert st == 0 and "429, waiting" in err
    assert all(r.t >= reset for r in cloud.api_requests()[1:])


def test_a_429_whose_reset_is_past_is_backed_off_not_looped(cloud, tok):
    cloud.faults(ratelimit=1.5, reset_offset=-100)
    st, _, err = run(cloud, tok, "sizes")
    assert st == 0 and "429 without a reset to come, waiting" in err
    log = cloud.api_requests()
    assert 2 <= len(log) <= 5 and log[-1].status == 200
    assert all(b.t - a.t >= 0.25 for a, b in zip(log, log[1:]))


def test_422_is_unavailable_with_the_providers_words(cloud, tok):
    cloud.faults(unavailable=["s-2vcpu-4gb"])
    st, out, _ = create(cloud, tok, size="s-2vcpu-4gb")
    assert (st, out["kind"], out["status"]) == (1, "unavailable", 422)
    assert "Size is not available in this region. (unprocessable_entity)" in out["error"]
    assert len(cloud.api_requests("POST")) == 1  # not tried again
    assert create(cloud, tok, size="s-4vcpu-8gb")[0] == 0


def test_a_droplet_is_put_behind_a_firewall_and_an_unknown_one_is_refused(cloud, tok):
    st, out, _ = create(cloud, tok)
    assert st == 0, out
    cloud.firewalls["fw-1"] = set()
    assert run(cloud, tok, "firewall", id=out["id"], firewall="fw-1")[:2] == (
        0, {"applied": True})
    assert cloud.firewalls["fw-1"] == {out["id"]}
    post = cloud.api_requests("POST")[-1]
    assert post.path == "/v2/firewalls/fw-1/droplets" and post.body == {
        "droplet_ids": [out["id"]]}
    st, err, _ = run(cloud, tok, "firewall", id=out["id"], firewall="fw-nope")
    assert (st, err["kind"], err["status"]) == (1, "bad_request", 404), err
    assert run(cloud, tok, "firewall", id=out["id"])[1]["kind"] == "usage"


def test_5xx_and_dropped_connections_are_backed_off_then_succeed(cloud, tok):
    cloud.faults(server_errors=2, drop=1)
    t0 = time.monotonic()
    st, out, err = run(cloud, tok, "sizes")
    assert st == 0, out
    assert err.count("retrying in") == 3, err
    assert "500 Server was unable to give you a response. (server_error)" in err
    assert [r.status for r in cloud.api_requests()] == [0, 500, 500, 200]
    gaps = [b.t - a.t for a, b in zip(cloud.api_requests(), cloud.api_requests()[1:])]
    assert gaps[0] >= 0.25 and gaps[1] >= 0.5 and gaps[2] >= 1.0  # half of 0.5, 1, 2 s at least
    assert time.monotonic() - t0 < 8
    # past the deadline: the last status said
    cloud.faults(server_errors=1000)
    st, out, _ = run(cloud, tok, "get", id=1, deadline=2)
    assert (st, out["kind"], out["status"]) == (1, "server", 500)


def test_a_create_whose_answer_is_lost_makes_one_droplet_not_two(cloud, tok):
    # the droplet is made, its answer lost: the retry finds it by name and tags
    cloud.faults(lose=1)
    st, out, err = create(cloud, tok)
    assert st == 0, out
    live = list(cloud.droplets().values())
    assert [d["id"] for d in live] == [out["id"]] and live[0]["name"] == "eph-train-7"
    assert len(cloud.api_requests("POST")) == 1, cloud.api_requests()
    assert cloud.api_requests("GET")[-1].path.startswith("/v2/droplets?name=eph-train-7&")
    assert "looking for the droplet" in err
    # a 500 made nothing: nothing found, the create is tried again; another scheduler's
    # droplet of the same name (not its tags) is not taken for ours
    cloud.create(name="eph-train-8", region="fra1", size="s-1vcpu-1gb", image="debian-12-x64",
                 tags=["ephemeron", "eph-i:other"])
    cloud.faults(server_errors=1, server_error_paths="^/v2/droplets$")
    st, out, err = create(cloud, tok, name="eph-train-8", tags=["ephemeron", "eph-i:abc"])
    assert st == 0, out
    assert len(cloud.api_requests("POST")) == 3
    assert sorted(d["name"] for d in cloud.droplets().values()) == \
        ["eph-train-7", "eph-train-8", "eph-train-8"]
    assert "eph-i:abc" in cloud.droplets()[out["id"]]["tags"]
    # a listing that fails says so: nothing is created twice on a guess
    cloud.faults(lose=1, server_errors=1000, server_error_paths="^/v2/droplets\\?")
    st, out, err = create(cloud, tok, name="eph-train-9", deadline=3)
    assert (st, out["kind"]) == (1, "server"), out
    assert [d["name"] for d in cloud.droplets().values()].count("eph-train-9") == 1


def test_the_api_down_is_a_network_error_at_the_deadline(cloud, tok):
    cloud.faults(down=True)
    t0 = time.monotonic()
    st, out, err = run(cloud, tok, "sizes", deadline=2)
    assert (st, out["kind"], out["status"]) == (1, "network", 0)
    # two waits at least (0.25-0.5 s, then 0.5-1 s, which always fit in 2 s), and it gives up
    # once the next wait would pass the deadline, not much later than it
    assert err.count("retrying in") >= 2 and 0.7 < time.monotonic() - t0 < 4
    # back: the next call works
    cloud.faults(down=False)
    assert run(cloud, tok, "sizes")[0] == 0


def test_a_server_that_never_answers_costs_no_more_than_the_deadline(cloud, tok):
    cloud.faults(slow=10)
    t0 = time.monotonic()
    st, out, _ = run(cloud, tok, "sizes", deadline=1.5)
    assert (st, out["kind"]) == (1, "network") and "timed out" in out["error"].lower(), out
    assert time.monotonic() - t0 < 3


def test_the_token_file_must_be_private_and_the_token_is_never_shown(cloud, tok, tmp_path):
    os.chmod(tok, 0o640)
    st, out, _ = run(cloud, tok, "sizes")
    assert (st, out["kind"]) == (1, "usage")
    assert "can be read by group or others (mode 0640)" in out["error"]
    assert cloud.api_requests() == []  # refused before any request
    os.chmod(tok, 0o600)
    assert run(cloud, tok, "sizes")[0] == 0
    # from a variable, named in the request (the value is in no argv)
    st, out, _ = run(cloud, tok, "sizes", raw=json.dumps(
        {"api_url": cloud.url, "token_env": "DO_TOKEN_T"}), env={"DO_TOKEN_T": cloud.token})
    assert st == 0
    bad = tmp_path / "bad"
    bad.write_text("dop_v1_wrong\n")
    bad.chmod(0o600)
    st, out, _ = run(cloud, bad, "sizes")
    assert (st, out["kind"], out["status"]) == (1, "auth", 401)
    assert "Unable to authenticate you (unauthorized)" in out["error"]
    r = cloud.api_requests()[-1]
    assert r.status == 401


@pytest.mark.parametrize("raw,op,what", [
    ("{", "sizes", "not JSON"),
    ("[]", "sizes", "not a JSON object"),
    ('{"token_env": "A", "token_file": "/x"}', "sizes", "one of"),
    ('{"token_env": "NOPE_NOT_SET"}', "sizes", "NOPE_NOT_SET is not set"),
    ('{"token_env": "HOME", "provider": "hetzner"}', "sizes", "unknown provider"),
    ('{"token_env": "HOME", "deadline": 0}', "sizes", "deadline"),
    ('{"token_env": "HOME", "api_url": "ftp://x"}', "sizes", "api_url"),
    ('{"token_env": "HOME"}', "reboot", "unknown operation"),
    ('{"token_env": "HOME", "id": "7"}', "get", "\"id\" must be a positive integer"),
    ('{"token_env": "HOME", "name": "a"}', "create", "\"region\" must be"),
    ('{"token_env": "HOME"}', "list", "\"tag\" must be"),
])
def test_bad_requests_are_usage_errors(cloud, tok, raw, op, what):
    st, out, _ = run(cloud, tok, op, raw=raw)
    assert (st, out["kind"], out["status"]) == (1, "usage", 0)
    assert what in out["error"], out
    assert cloud.api_requests() == []
