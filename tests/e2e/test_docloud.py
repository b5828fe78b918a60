"""The test cloud (docloud.py) answers as DigitalOcean's API v2 is documented to, and its
droplets are test hosts reached with the keys given in their user data."""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from docloud import SIZES, DoCloud
from testhosts import TestNet

MiB = 1 << 20


def call(cloud, method, path, body=None, token=None):
    """(status, headers, JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(cloud.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token or cloud.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, r.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, e.headers, json.loads(raw) if raw else None


@pytest.fixture
def cloud():
    c = DoCloud(None, boot_delay=0.2)
    yield c
    c.close()


def create_body(**kw):
    b = {"name": "eph-a-1", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64",
         "tags": ["ephemeron", "eph-run:1"], "user_data": "#cloud-config\n"}
    b.update(kw)
    return b


def test_sizes_are_paged_with_links_meta_and_ratelimit_headers(cloud):
    st, h, b = call(cloud, "GET", "/v2/sizes?per_page=5")
    assert st == 200
    assert b["meta"]["total"] == len(SIZES)
    assert [s["slug"] for s in b["sizes"]] == [s["slug"] for s in SIZES[:5]]
    assert b["links"]["pages"]["next"] == f"{cloud.url}/v2/sizes?page=2&per_page=5"
    assert "prev" not in b["links"]["pages"]
    assert int(h["ratelimit-limit"]) == 5000 and int(h["ratelimit-remaining"]) < 5000
    assert int(h["ratelimit-reset"]) > time.time()
    seen, url = [], "/v2/sizes?per_page=5"
    while url:
        st, _, b = call(cloud, "GET", url.replace(cloud.url, ""))
        seen += b["sizes"]
        url = b["links"]["pages"].get("next")
    assert seen == SIZES
    s = seen[1]
    assert {"slug", "memory", "vcpus", "disk", "transfer", "price_monthly", "price_hourly",
            "regions", "available", "description"} <= set(s)


def test_droplets_create_get_list_by_tag_and_delete(cloud):
    st, _, b = call(cloud, "POST", "/v2/droplets", create_body())
    assert st == 202 and b["droplet"]["status"] == "new" and b["droplet"]["networks"]["v4"] == []
    did = b["droplet"]["id"]
    cloud.wait_active(did)
    st, _, b = call(cloud, "GET", f"/v2/droplets/{did}")
    d = b["droplet"]
    assert d["status"] == "active" and d["size_slug"] == "s-1vcpu-1gb"
    assert d["region"]["slug"] == "fra1" and d["tags"] == ["ephemeron", "eph-run:1"]
    assert {n["type"] for n in d["networks"]["v4"]} == {"public", "private"}
    for i in range(4):
        assert call(cloud, "POST", "/v2/droplets",
                    create_body(name=f"other-{i}", tags=["other"]))[0] == 202
    st, _, b = call(cloud, "GET", "/v2/droplets?tag_name=ephemeron&per_page=1")
    assert b["meta"]["total"] == 1 and b["droplets"][0]["id"] == did
    st, _, b = call(cloud, "GET", "/v2/droplets?tag_name=other&per_page=3")
    assert b["meta"]["total"] == 4 and len(b["droplets"]) == 3
    assert b["links"]["pages"]["next"].endswith("page=2&per_page=3&tag_name=other")
    assert call(cloud, "DELETE", f"/v2/droplets/{did}")[:1] == (204,)
    st, _, b = call(cloud, "DELETE", f"/v2/droplets/{did}")
    assert st == 404 and b["id"] == "not_found" and b["message"] and b["request_id"]
    assert did not in cloud.droplets()


def test_errors_have_the_documented_bodies(cloud):
    st, _, b = call(cloud, "GET", "/v2/sizes", token="dop_v1_wrong")
    assert (st, b["id"]) == (401, "unauthorized")
    st, _, b = call(cloud, "POST", "/v2/droplets", create_body(name="a_b"))
    assert (st, b["id"]) == (422, "unprocessable_entity") and "hostname" in b["message"]
    st, _, b = call(cloud, "POST", "/v2/droplets", create_body(size="s-3vcpu-1gb"))
    assert st == 422 and b["message"] == "Size is not available in this region."
    cloud.faults(unavailable=["s-1vcpu-1gb"])
    assert call(cloud, "POST", "/v2/droplets", create_body())[0] == 422
    assert call(cloud, "POST", "/v2/droplets", create_body(size="s-1vcpu-2gb"))[0] == 202


def test_faults_storm_500s_down_vanish_and_boot_never(cloud):
    cloud.faults(ratelimit=1.2, retry_after=True)
    st, h, b = call(cloud, "GET", "/v2/sizes")
    assert (st, b["id"]) == (429, "too_many_requests")
    assert int(h["ratelimit-reset"]) == cloud.ratelimit_reset and h["ratelimit-remaining"] == "0"
    assert 0 < int(h["retry-after"]) <= 3  # the storm ends on a whole second
    time.sleep(max(0, cloud.ratelimit_reset - time.time()))
    cloud.faults(server_errors=2, boot_never=True)
    assert [call(cloud, "GET", "/v2/sizes")[0] for _ in range(3)] == [500, 500, 200]
    st, _, b = call(cloud, "POST", "/v2/droplets", create_body())
    did = b["droplet"]["id"]
    time.sleep(0.5)
    assert cloud.droplets()[did]["status"] == "new"
    cloud.faults(delete=did)
    assert call(cloud, "GET", f"/v2/droplets/{did}")[0] == 404
    port = cloud.port
    cloud.faults(down=True)
    with pytest.raises(urllib.error.URLError):
        call(cloud, "GET", "/v2/sizes")
    cloud.faults(down=False)
    assert cloud.port == port and call(cloud, "GET", "/v2/sizes")[0] == 200
    log = cloud.api_requests()
    assert [r.status for r in log[:1]] == [429] and log[-1].status == 200
    # the faults endpoint does the same over HTTP
    req = urllib.request.Request(cloud.url + "/_fake/faults", method="POST",
                                 data=json.dumps({"server_errors": 1}).encode())
    urllib.request.urlopen(req, timeout=5).read()
    assert call(cloud, "GET", "/v2/sizes")[0] == 500


def keygen(path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(path)],
                   check=True)
    return path.read_text(), (path.parent / (path.name + ".pub")).read_text().strip()


def test_a_droplet_boots_as_a_host_with_its_user_datas_keys(tmp_path):
    net = TestNet(tmp_path)
    cloud = DoCloud(net, boot_delay=0.3)
    try:
        _, login_pub = keygen(tmp_path / "login")
        host_priv, host_pub = keygen(tmp_path / "hostkey")
        ud = ("#cloud-config\nssh_authorized_keys:\n  - " + login_pub + "\nssh_keys:\n"
              "  ed25519_private: |\n" +
              "".join("    " + line + "\n" for line in host_priv.splitlines()) +
              "  ed25519_public: " + host_pub + "\n")
        # the API is reached from the scheduler's namespace (where eph runs), not from ours
        p = net.run(["curl", "-sS", "-X", "POST", "-H", f"Authorization: Bearer {cloud.token}",
                     "-H", "Content-Type: application/json", "--data-binary",
                     json.dumps(create_body(size="s-1vcpu-2gb", user_data=ud)),
                     cloud.url + "/v2/droplets"])
        did = json.loads(p.stdout)["droplet"]["id"]
        t0 = time.monotonic()
        d = cloud.wait_active(did)
        assert time.monotonic() - t0 < 15
        addr = next(n["ip_address"] for n in cloud.droplets()[did]["networks"]["v4"]
                    if n["type"] == "public")
        kh = tmp_path / "known_hosts"
        kh.write_text(f"{addr} {host_pub}\n")
        h = cloud.host(did)
        ssh = ["ssh", *net.ssh_args(h, known_hosts=kh, identity=tmp_path / "login")]
        out = net.run([*ssh, "cat /proc/self/cgroup"]).stdout
        assert f"host{h.n}" in out
        limit = h.cgroup / ("memory.limit_in_bytes" if h.cgv == 1 else "memory.max")
        assert int(limit.read_text()) == 2048 * MiB == d.size["memory"] * MiB
        # the test net's own key is not let in; another host key is refused
        assert net.run(["ssh", *net.ssh_args(h, known_hosts=kh), "true"],
                       check=False).returncode == 255
        _, other_pub = keygen(tmp_path / "other")
        kh.write_text(f"{addr} {other_pub}\n")
        p = net.run([*ssh, "true"], check=False)
        assert p.returncode == 255 and "Host key verification failed" in p.stderr
        # deleted: its namespace goes with it
        st = net.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE",
                      "-H", f"Authorization: Bearer {cloud.token}",
                      f"{cloud.url}/v2/droplets/{did}"]).stdout
        assert st == "204"
        assert h.ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout
    finally:
        cloud.close()
        net.close()
    assert f"eph-h{os.getpid()}-" not in subprocess.run(["ip", "netns", "list"],
                                                        capture_output=True, text=True).stdout


def test_a_droplet_is_active_before_ssh_answers_and_may_never_answer(tmp_path):
    net = TestNet(tmp_path)
    cloud = DoCloud(net, boot_delay=0.1, ssh_delay=1.5)
    try:
        did = cloud.create(**create_body())[1]["droplet"]["id"]
        d = cloud.wait_active(did)
        st, b = cloud.api("GET", f"/v2/droplets/{did}")
        assert st == 200 and b["droplet"]["networks"]["v4"][0]["ip_address"] == d.addr
        probe = ["bash", "-c", f"exec 3<>/dev/tcp/{d.addr}/22"]
        assert net.run(probe, check=False, timeout=10).returncode != 0  # booting still
        deadline = time.monotonic() + 15
        while d.ssh_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert d.ssh_at is not None and d.ssh_at - d.active_at >= 1.5
        assert net.run(probe, check=False, timeout=10).returncode == 0
        cloud.faults(boot_never="ssh", ssh_delay=0)
        did = cloud.create(**create_body(name="never"))[1]["droplet"]["id"]
        d = cloud.wait_active(did)
        time.sleep(0.5)
        assert d.ssh_at is None
        assert net.run(probe[:2] + [f"exec 3<>/dev/tcp/{d.addr}/22"], check=False,
                       timeout=10).returncode != 0
    finally:
        cloud.close()
        net.close()
