"""The test cloud: a fake of the part of DigitalOcean's API v2 that ephemeron uses (sizes list,
droplet create, get, list by tag, delete), faithful to the provider's OpenAPI description
(github.com/digitalocean/openapi: the shapes, status codes, error bodies {"id", "message",
"request_id"}, `links.pages` pagination with `meta.total`, and the `ratelimit-limit`,
`-remaining` and `-reset` headers on every answer).

Each droplet becomes a test host (testhosts.py: a network namespace, a real sshd and a memory
cgroup of its size's memory) after a boot delay, set up from the cloud-init user data it was
created with: `ssh_authorized_keys` let in, `ssh_keys` (rsa/ecdsa/ed25519 _private/_public)
its host keys, so the host key a client pins is the one it gave. Its `networks.v4` holds the
namespace's address (type public) once it is active.

    net = TestNet(tmp_path)                     # testhosts.py: the scheduler's namespace
    cloud = DoCloud(net, boot_delay=1.0)        # listening on 127.0.0.1 in net's namespace
    cloud.url                                   # "http://127.0.0.1:PORT" (no /v2): api_url
    cloud.token_file(tmp_path / "tok")          # the token, written 0600; cloud.token
    cloud.faults(ratelimit=3.0)                 # faults on demand (see faults())
    cloud.droplets()                            # the live droplets (API dicts), by id
    cloud.create(name=..., region=..., ...)     # a droplet made as POST /v2/droplets would
    cloud.api("GET", "/v2/droplets/ID")         # (status, answer), as over HTTP, no socket
    cloud.host(droplet_id)                      # its testhosts.Host once booted, else None
    cloud.requests                              # the request log (Request: t, method, ...)
    cloud.close()                               # every droplet deleted, the server stopped
                                                # (then net.close())

Without a net (DoCloud(None)) the server listens on the test process's own loopback and a
droplet becomes active after its delay with made-up addresses and no host: enough for tests
of `eph-cloud` alone. The same faults can be set over HTTP: POST /_fake/faults with a JSON
object of faults()'s keywords (no token needed); GET /_fake/requests gives the log."""

import ctypes
import itertools
import json
import math
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from testhosts import Host

MiB = 1 << 20
REGIONS = ["ams3", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1",
           "tor1"]


def _size(slug, memory, vcpus, disk, transfer, monthly, description="Basic", regions=None,
          available=True):
    # DigitalOcean's price_hourly is the monthly price over 672 hours (28 days), rounded
    return {"slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": transfer,
            "price_monthly": float(monthly), "price_hourly": round(monthly / 672, 5),
            "regions": list(regions or REGIONS), "available": available,
            "description": description,
            "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}]}


# The catalogue as DigitalOcean listed it in 2025 (slugs, memory in MiB, prices in USD),
# in the API's order. s-1vcpu-512mb-10gb is sold in fewer regions; s-3vcpu-1gb is a legacy
# size no longer available for creates.
SIZES = [
    _size("s-1vcpu-512mb-10gb", 512, 1, 10, 0.5, 4,
          regions=["ams3", "fra1", "nyc1", "sfo3", "sgp1", "syd1"]),
    _size("s-1vcpu-1gb", 1024, 1, 25, 1.0, 6),
    _size("s-1vcpu-2gb", 2048, 1, 50, 2.0, 12),
    _size("s-2vcpu-2gb", 2048, 2, 60, 3.0, 18),
    _size("s-3vcpu-1gb", 1024, 3, 60, 3.0, 15, available=False, regions=[]),
    _size("s-2vcpu-4gb", 4096, 2, 80, 4.0, 24),
    _size("c-2", 4096, 2, 25, 4.0, 42, "CPU-Optimized"),
    _size("s-4vcpu-8gb", 8192, 4, 160, 5.0, 48),
    _size("g-2vcpu-8gb", 8192, 2, 25, 4.0, 63, "General Purpose"),
    _size("m-2vcpu-16gb", 16384, 2, 50, 4.0, 84, "Memory-Optimized"),
    _size("s-8vcpu-16gb", 16384, 8, 320, 6.0, 96),
    _size("g-4vcpu-16gb", 16384, 4, 50, 5.0, 126, "General Purpose"),
    _size("s-8vcpu-32gb", 32768, 8, 640, 7.0, 192),
    _size("m-4vcpu-32gb", 32768, 4, 100, 6.0, 168, "Memory-Optimized"),
]

REGION_NAMES = {"ams3": "Amsterdam 3", "blr1": "Bangalore 1", "fra1": "Frankfurt 1",
                "lon1": "London 1", "nyc1": "New York 1", "nyc3": "New York 3",
                "sfo2": "San Francisco 2", "sfo3": "San Francisco 3", "sgp1": "Singapore 1",
                "syd1": "Sydney 1", "tor1": "Toronto 1"}

NAME_RE = re.compile(r"^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_:\-]+$")
HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")


@dataclass
class Request:
    t: float  # time.time() when it arrived
    method: str
    path: str  # with the query
    body: object = None  # the JSON body, if any
    status: int = 0  # the answer's status (0: none, the connection was dropped)


@dataclass
class Droplet:
    id: int
    name: str
    size: dict
    region: str
    image: str
    tags: list
    user_data: str
    vpc_uuid: str
    created_at: str
    created: float  # time.time()
    status: str = "new"
    host: Host = None
    addr: str = None
    private_addr: str = None
    deleted: bool = False
    timer: threading.Timer = None
    problems: list = field(default_factory=list)  # why a boot did not go as asked
    ssh_delay: float = 0.0  # seconds from active to sshd answering
    ssh_never: bool = False  # active, but sshd never answers
    active_at: float = None  # time.time() it became active
    ssh_at: float = None  # time.time() its sshd answered


class DropletHost(Host):
    """A test host whose keys come from a droplet's cloud-init user data."""

    def __init__(self, net, n, memory, host_keys, authorized, defer_sshd=False):
        super().__init__(net, n, memory)
        self.host_keys, self.authorized = host_keys, authorized
        self.defer_sshd = defer_sshd

    def start_sshd(self):
        if not self.defer_sshd:  # Host.start's; else started by the cloud when it is time
            super().start_sshd()

    def write_config(self):
        # Host.start made a key of its own: cloud-init's ssh_keys replace the host keys
        for p in self.dir.glob("host_key*"):
            p.unlink()
        lines = []
        for kind, (priv, pub) in self.host_keys.items():
            f = self.dir / f"ssh_host_{kind}_key"
            f.write_text(priv if priv.endswith("\n") else priv + "\n")
            f.chmod(0o600)
            (self.dir / f"ssh_host_{kind}_key.pub").write_text(pub.strip() + "\n")
            lines.append(f"HostKey {self.INSIDE}/ssh_host_{kind}_key\n")
        if not lines:  # no ssh_keys: cloud-init makes fresh ones (learned on first use)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(self.dir / "ssh_host_ed25519_key")], check=True)
            lines.append(f"HostKey {self.INSIDE}/ssh_host_ed25519_key\n")
        (self.dir / "authorized_keys").write_text("".join(k.strip() + "\n"
                                                          for k in self.authorized))
        (self.dir / "sshd_config").write_text(
            f"ListenAddress {self.addr}\nPort 22\n" + "".join(lines) +
            f"AuthorizedKeysFile {self.INSIDE}/authorized_keys\n"
            f"PidFile {self.INSIDE}/sshd.pid\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPrintMotd no\n"
            "MaxStartups 100\nMaxSessions 100\n")

    def known_hosts_line(self):
        return "".join(f"{self.addr} {' '.join(pub.split()[:2])}\n"
                       for _, pub in self.host_keys.values())


def parse_user_data(text):
    """(host_keys {kind: (private, public)}, authorized keys) from cloud-init user data;
    ValueError when it is not a #cloud-config document cloud-init would take."""
    if not text:
        return {}, []
    if not text.startswith("#cloud-config"):
        raise ValueError("user data is not #cloud-config")
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError("#cloud-config is not a mapping")
    keys = doc.get("ssh_keys") or {}
    host_keys = {}
    for kind in HOST_KEY_TYPES:
        priv, pub = keys.get(f"{kind}_private"), keys.get(f"{kind}_public")
        if priv and pub:
            host_keys[kind] = (priv, pub)
    auth = doc.get("ssh_authorized_keys") or []
    users = doc.get("users") or []
    for u in users:
        if isinstance(u, dict) and u.get("name") == "root":
            auth += u.get("ssh_authorized_keys") or []
    return host_keys, list(auth)


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def listen_in(ns, port=0):
    """A listening TCP socket on 127.0.0.1:PORT in network namespace NS (None: our own). The
    namespace is entered by a thread of its own (setns moves only the calling thread); a
    socket stays in the namespace it was made in."""
    out = {}

    def make():
        fd = orig = -1
        try:
            if ns is not None:
                orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
                fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            out["sock"] = s
        except Exception as e:  # handed to the caller
            out["err"] = e
        finally:
            if orig >= 0:
                _libc.setns(orig, CLONE_NEWNET)  # the thread ends anyway
                os.close(orig)
            if fd >= 0:
                os.close(fd)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["sock"]


class DoCloud:
    """The fake API and its droplets. Everything is guarded by one lock; boots run on timer
    threads. See the module's docstring for the API."""

    def __init__(self, net, boot_delay=0.5, ssh_delay=0.0, token=None, sizes=None,
                 per_page_max=200, ratelimit_limit=5000):
        self.net = net
        self.boot_delay = boot_delay
        self.ssh_delay = ssh_delay
        self.token = token or "dop_v1_" + uuid.uuid4().hex + uuid.uuid4().hex
        self.sizes = [dict(s) for s in (sizes if sizes is not None else SIZES)]
        self.per_page_max = per_page_max
        self.ratelimit_limit = ratelimit_limit
        self.requests = []
        self.lock = threading.RLock()
        self._droplets = {}  # id -> Droplet (deleted ones stay, marked)
        self._ids = itertools.count(3164444)
        self._fault = dict(ratelimit_until=0, retry_after=False, server_errors=0,
                           server_error_paths=None, unavailable=set(), boot_never=False,
                           drop=0, slow=0.0, links_base=None, reset_offset=0, lose=0)
        self._remaining = ratelimit_limit
        self._hosts_made = 0
        self.firewalls = {}  # a firewall's id -> the droplet ids put behind it (no filtering)
        self.server = None
        self.port = 0
        self._start_server()

    # -- the server

    def _start_server(self):
        sock = listen_in(self.net.ns if self.net else None, self.port)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        srv.socket.close()
        srv.socket = sock
        srv.server_address = sock.getsockname()
        srv.daemon_threads = True
        srv.cloud = self
        self.port = srv.server_address[1]
        self.server = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _stop_server(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join()
            self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def token_file(self, path, mode=0o600):
        """Writes the token (with a trailing newline, as an editor leaves it) to PATH."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(self.token + "\n")
        os.chmod(path, mode)
        return path

    # -- faults

    def faults(self, *, ratelimit=None, retry_after=None, reset_offset=None, server_errors=None,
               server_error_paths=None, unavailable=None, down=None, boot_never=None,
               boot_delay=None, ssh_delay=None, drop=None, slow=None, links_base=None,
               delete=None, lose=None, clear=False):
        """Faults on demand (each keyword optional; clear=True first resets all):
        ratelimit=S     a 429 storm: every API request is refused for S seconds from now with
                        ratelimit-remaining 0 and ratelimit-reset the epoch second it ends
                        (rounded up), body {"id": "too_many_requests", ...}
        retry_after=B   with the storm, also a `retry-after` header (seconds to its end)
        reset_offset=S  the storm's ratelimit-reset says S seconds more than its end (a
                        negative S: a reset already past, as a confused server might)
        server_errors=N the next N API requests get 500 {"id": "server_error", ...}
        server_error_paths=RE  only requests whose path matches RE count (None: all)
        unavailable=[SLUG..]   creates of these sizes get 422 (not available in the region)
        down=True/False the API stops listening (connections refused) / listens again on the
                        same port
        drop=N          the next N requests are read and the connection closed unanswered
        lose=N          the next N API requests are carried out, then the connection closed
                        unanswered (an answer lost on the way: a create that was made)
        slow=S          every API request is answered S seconds late (0: not)
        links_base=URL  pagination links point at URL instead of the API ("": the API's)
        boot_never=True droplets created from now on stay "new" forever (no host made);
                   "ssh": they become active (with their address) but sshd never answers
        boot_delay=S    seconds from create to active for droplets created from now on
        ssh_delay=S     seconds from active to sshd answering, for droplets created from now
                        on (a real droplet is "active" before it has booted)
        delete=ID       droplet ID deleted behind our back (gone from the API, host killed)"""
        with self.lock:
            if clear:
                self._fault.update(ratelimit_until=0, retry_after=False, server_errors=0,
                                   server_error_paths=None, unavailable=set(),
                                   boot_never=False, drop=0, slow=0.0, links_base=None,
                                   reset_offset=0, lose=0)
            if ratelimit is not None:
                self._fault["ratelimit_until"] = math.ceil(time.time() + ratelimit)
            if retry_after is not None:
                self._fault["retry_after"] = bool(retry_after)
            if reset_offset is not None:
                self._fault["reset_offset"] = int(reset_offset)
            if server_errors is not None:
                self._fault["server_errors"] = int(server_errors)
            if server_error_paths is not None:
                self._fault["server_error_paths"] = server_error_paths or None
            if unavailable is not None:
                self._fault["unavailable"] = set(unavailable)
            if boot_never is not None:
                self._fault["boot_never"] = boot_never if boot_never == "ssh" \
                    else bool(boot_never)
            if boot_delay is not None:
                self.boot_delay = float(boot_delay)
            if ssh_delay is not None:
                self.ssh_delay = float(ssh_delay)
            if drop is not None:
                self._fault["drop"] = int(drop)
            if slow is not None:
                self._fault["slow"] = float(slow)
            if lose is not None:
                self._fault["lose"] = int(lose)
            if links_base is not None:
                self._fault["links_base"] = links_base or None
        if delete is not None:
            self.delete_behind(int(delete))
        if down is True:
            self._stop_server()
        elif down is False and self.server is None:
            self._start_server()

    @property
    def ratelimit_reset(self):
        """The epoch second the current 429 storm ends (0: none set)."""
        return self._fault["ratelimit_until"]

    def delete_behind(self, did):
        """Droplet DID is deleted by someone else: gone from the API, its host killed."""
        with self.lock:
            d = self._droplets.get(did)
            if d is None or d.deleted:
                return False
            d.deleted = True
        self._destroy(d)
        return True

    # -- inspection

    def droplets(self):
        """{id: the droplet as GET /v2/droplets/ID would show it} of the live droplets."""
        with self.lock:
            return {d.id: self._json(d) for d in self._droplets.values() if not d.deleted}

    def host(self, did):
        """The testhosts.Host droplet DID became (None before it booted, or without a net)."""
        with self.lock:
            d = self._droplets.get(did)
            return d.host if d else None

    def droplet(self, did):
        """The Droplet record (deleted ones too), for its created/status/problems."""
        with self.lock:
            return self._droplets.get(did)

    def api_requests(self, method=None, prefix="/v2/"):
        """The request log without /_fake requests, optionally of one METHOD."""
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)
                    and (method is None or r.method == method)]

    def create(self, **body):
        """A droplet made directly (as the API's POST /v2/droplets with BODY would, with no
        request logged): (status, answer)."""
        with self.lock:
            return self._create(body)

    def api(self, method, path, body=None, token=None):
        """(status, JSON answer or None) of an API request handled as over HTTP (with the
        cloud's token unless TOKEN, faults applied) but without a socket: for a test whose
        own process cannot reach the namespace the API listens in. Not logged."""
        status, _, out = self.handle(method, path,
                                     {"Authorization": f"Bearer {token or self.token}"}, body)
        return status, out

    def wait_active(self, did, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                d = self._droplets.get(did)
                if d and d.status == "active":
                    return d
                if d and d.problems:
                    raise RuntimeError(f"droplet {did}: {d.problems}")
            time.sleep(0.05)
        raise TimeoutError(f"droplet {did} not active within {timeout} s")

    def close(self):
        """Stops the server, then deletes every droplet (hosts ended; the namespaces and
        cgroups go with net.close())."""
        self._stop_server()
        with self.lock:
            live = [d for d in self._droplets.values() if not d.deleted]
            for d in live:
                d.deleted = True
        for d in live:
            self._destroy(d)
        with self.lock:
            timers = [d.timer for d in self._droplets.values() if d.timer]
        for t in timers:
            t.cancel()
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout=30)

    # -- droplets

    def _json(self, d):
        v4 = []
        if d.status == "active" and d.addr:
            v4.append({"ip_address": d.addr, "netmask": "255.255.255.252",
                       "gateway": d.addr.rsplit(".", 1)[0] + ".1", "type": "public"})
            if d.private_addr:
                v4.append({"ip_address": d.private_addr, "netmask": "255.255.240.0",
                           "gateway": "nil", "type": "private"})
        s = d.size
        return {
            "id": d.id, "name": d.name, "memory": s["memory"], "vcpus": s["vcpus"],
            "disk": s["disk"], "disk_info": s["disk_info"], "locked": False,
            "status": d.status, "kernel": None, "created_at": d.created_at,
            "features": ["droplet_agent", "private_networking"], "backup_ids": [],
            "next_backup_window": None, "snapshot_ids": [],
            "image": {"id": 129211873, "name": "12 x64", "distribution": "Debian",
                      "slug": d.image, "public": True, "regions": REGIONS,
                      "created_at": "2023-03-22T19:06:08Z", "type": "base",
                      "min_disk_size": 7, "size_gigabytes": 0.93, "description": "",
                      "tags": [], "status": "available", "error_message": ""},
            "volume_ids": [], "size": s, "size_slug": s["slug"],
            "networks": {"v4": v4, "v6": []},
            "region": {"name": REGION_NAMES.get(d.region, d.region), "slug": d.region,
                       "features": ["backups", "ipv6", "metadata", "install_agent",
                                    "storage", "image_transfer"],
                       "available": True,
                       "sizes": [x["slug"] for x in self.sizes if d.region in x["regions"]]},
            "tags": list(d.tags), "vpc_uuid": d.vpc_uuid,
        }

    def _create(self, body):
        """(status, body) for POST /v2/droplets."""
        if not isinstance(body, dict):
            return 400, _err("bad_request", "unable to parse request body")
        if "names" in body:
            return 422, _err("unprocessable_entity", "ephemeron's test cloud creates one "
                             "droplet at a time: give name, not names")
        for k in ("name", "region", "size", "image"):
            if not isinstance(body.get(k), (str, int)) or body.get(k) in ("", None):
                return 422, _err("unprocessable_entity", f"{k} is required")
        name = body["name"]
        if not isinstance(name, str) or len(name) > 255 or not NAME_RE.match(name):
            return 422, _err("unprocessable_entity",
                             "Name Only valid hostname characters are allowed. "
                             "(a-z, A-Z, 0-9, . and -)")
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and TAG_RE.match(t)
                                                 and len(t) <= 255 for t in tags):
            return 422, _err("unprocessable_entity", "tags may contain letters, numbers, "
                             "colons, dashes, and underscores")
        size = next((s for s in self.sizes if s["slug"] == body["size"]), None)
        if size is None:
            return 422, _err("unprocessable_entity", "You specified an invalid size for "
                             "Droplet creation.")
        region = body["region"]
        if region not in REGION_NAMES:
            return 422, _err("unprocessable_entity", "You specified an invalid region for "
                             "Droplet creation.")
        if (not size["available"] or region not in size["regions"]
                or size["slug"] in self._fault["unavailable"]):
            return 422, _err("unprocessable_entity", "Size is not available in this region.")
        user_data = body.get("user_data") or ""
        if not isinstance(user_data, str) or len(user_data.encode()) > 64 * 1024:
            return 422, _err("unprocessable_entity", "user_data must be a string of at most "
                             "64 KiB")
        try:
            host_keys, auth = parse_user_data(user_data)
        except (ValueError, yaml.YAMLError) as e:
            host_keys, auth = None, str(e)  # cloud-init ignores it: the droplet boots keyless
        now = time.time()
        d = Droplet(id=next(self._ids), name=name, size=size, region=region,
                    image=str(body["image"]), tags=list(tags), user_data=user_data,
                    vpc_uuid=body.get("vpc_uuid") or "760e09ef-dc84-11e8-981e-3cfdfeaae000",
                    created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                    created=now)
        if host_keys is None:
            d.problems.append(f"user data not applied: {auth}")
            host_keys, auth = {}, []
        d.ssh_delay = self.ssh_delay
        d.ssh_never = self._fault["boot_never"] == "ssh"
        self._droplets[d.id] = d
        if self._fault["boot_never"] is not True:
            d.timer = threading.Timer(self.boot_delay, self._boot, (d, host_keys, auth))
            d.timer.daemon = True
            d.timer.start()
        return 202, {"droplet": self._json(d),
                     "links": {"actions": [{"id": d.id + 7000000, "rel": "create",
                                            "href": f"{self.url}/v2/actions/{d.id + 7000000}"}]}}

    def _boot(self, d, host_keys, auth):
        with self.lock:
            if d.deleted:
                return
            self._hosts_made += 1
            n = self._hosts_made
        if self.net is None:
            addr, h = f"192.0.2.{n % 250 + 2}", None  # TEST-NET-1: reaches nothing
        else:
            with self.lock:
                n = len(self.net.hosts) + 1
                h = DropletHost(self.net, n, d.size["memory"] * MiB, host_keys, auth,
                                defer_sshd=d.ssh_never or d.ssh_delay > 0)
                self.net.hosts.append(h)
            try:
                h.start()
            except Exception as e:  # noqa: BLE001 (recorded; the droplet stays "new")
                with self.lock:
                    d.problems.append(f"host did not start: {e}")
                return
            addr = h.addr
        with self.lock:
            d.host, d.addr, d.private_addr = h, addr, f"10.110.0.{n % 250 + 2}"
            if d.deleted:
                kill = True
            else:
                kill = False
                d.status = "active"
                d.active_at = time.time()
                if h is not None and not h.defer_sshd:
                    d.ssh_at = d.active_at
        if kill:
            self._destroy(d)
            return
        if h is None or not h.defer_sshd or d.ssh_never:
            return
        time.sleep(d.ssh_delay)  # a timer thread of its own
        with self.lock:
            if d.deleted:
                return
            h.defer_sshd = False
        try:
            h.start_sshd()
        except Exception as e:  # noqa: BLE001 (recorded)
            with self.lock:
                d.problems.append(f"sshd did not start: {e}")
            return
        with self.lock:
            d.ssh_at = time.time()
            kill = d.deleted
        if kill:
            self._destroy(d)

    def _destroy(self, d):
        if d.timer is not None:
            d.timer.cancel()
        h = d.host
        if h is None:
            return
        h.close()  # every process on it killed
        subprocess.run(["ip", "netns", "del", h.ns], capture_output=True)
        for _ in range(100):
            try:
                os.rmdir(h.cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)

    # -- requests

    def _page(self, kind, items, query):
        """(status, body) of one page of ITEMS under key KIND."""
        try:
            page = int(query.get("page", ["1"])[0])
            per_page = int(query.get("per_page", ["20"])[0])
        except ValueError:
            return 400, _err("bad_request", "page and per_page must be integers")
        if page < 1:
            page = 1
        per_page = max(1, min(per_page, self.per_page_max))
        total = len(items)
        last = max(1, math.ceil(total / per_page))
        body = {kind: items[(page - 1) * per_page:page * per_page], "links": {},
                "meta": {"total": total}}
        extra = "".join(f"&{k}={v[0]}" for k, v in sorted(query.items())
                        if k not in ("page", "per_page"))

        def link(p):
            base = self._fault["links_base"] or self.url
            return f"{base}/v2/{kind}?page={p}&per_page={per_page}{extra}"

        pages = {}
        if page > 1:
            pages["first"], pages["prev"] = link(1), link(page - 1)
        if page < last:
            pages["last"], pages["next"] = link(last), link(page + 1)
        body["links"]["pages"] = pages
        return 200, body

    def handle(self, method, path, headers, body):
        """(status, extra headers, body or None) for one API request."""
        u = urlsplit(path)
        q = parse_qs(u.query)
        if u.path == "/_fake/faults" and method == "POST":
            self.faults(**(body or {}))
            return 200, {}, {"ok": True}
        if u.path == "/_fake/requests" and method == "GET":
            with self.lock:
                return 200, {}, {"requests": [r.__dict__ for r in self.requests]}
        if u.path == "/_fake/droplets" and method == "GET":
            return 200, {}, {"droplets": list(self.droplets().values())}
        now = time.time()
        with self.lock:
            until = self._fault["ratelimit_until"]
            if now < until:
                self._remaining = 0
                h = {"ratelimit-reset": str(until + self._fault["reset_offset"])}
                if self._fault["retry_after"]:
                    h["retry-after"] = str(math.ceil(until - now))
                return 429, h, _err("too_many_requests", "API rate limit exceeded.")
            if self._remaining == 0:
                self._remaining = self.ratelimit_limit
            auth = headers.get("Authorization", "")
            if auth != f"Bearer {self.token}":
                return 401, {}, _err("unauthorized", "Unable to authenticate you")
            pat = self._fault["server_error_paths"]
            if self._fault["server_errors"] > 0 and (pat is None or re.search(pat, path)):
                self._fault["server_errors"] -= 1
                return 500, {}, _err("server_error", "Server was unable to give you a "
                                     "response.")
            self._remaining -= 1
            m = re.fullmatch(r"/v2/droplets/(\d+)", u.path)
            if u.path == "/v2/sizes" and method == "GET":
                st, b = self._page("sizes", self.sizes, q)
                return st, {}, b
            if u.path == "/v2/droplets" and method == "GET":
                tag = q.get("tag_name", [None])[0]
                name = q.get("name", [None])[0]
                if tag is not None and name is not None:
                    return 400, {}, _err("bad_request", "tag_name can not be combined with "
                                         "name")
                ds = [self._json(d) for d in sorted(self._droplets.values(), key=lambda d: d.id)
                      if not d.deleted and (tag is None or tag in d.tags)
                      and (name is None or name.lower() == d.name.lower())]
                st, b = self._page("droplets", ds, q)
                return st, {}, b
            if u.path == "/v2/droplets" and method == "POST":
                st, b = self._create(body)
                return st, {}, b
            fw = re.fullmatch(r"/v2/firewalls/([^/]+)/droplets", u.path)
            if fw and method == "POST":
                ids = (body or {}).get("droplet_ids") if isinstance(body, dict) else None
                if fw.group(1) not in self.firewalls:
                    return 404, {}, _err("not_found", "The resource you were accessing could "
                                         "not be found.")
                if not isinstance(ids, list) or not ids or not all(
                        isinstance(i, int) and i in self._droplets
                        and not self._droplets[i].deleted for i in ids):
                    return 422, {}, _err("unprocessable_entity",
                                         "droplet_ids must name existing droplets")
                self.firewalls[fw.group(1)].update(ids)
                return 204, {}, None
            if m and method in ("GET", "DELETE"):
                d = self._droplets.get(int(m.group(1)))
                if d is None or d.deleted:
                    return 404, {}, _err("not_found", "The resource you were accessing could "
                                         "not be found.")
                if method == "GET":
                    return 200, {}, {"droplet": self._json(d)}
                d.deleted = True
        if m and method == "DELETE":
            self._destroy(d)
            return 204, {}, None
        return 404, {}, _err("not_found", "The resource you were accessing could not be "
                             "found.")

    def headers(self):
        with self.lock:
            return {"ratelimit-limit": str(self.ratelimit_limit),
                    "ratelimit-remaining": str(max(self._remaining, 0)),
                    "ratelimit-reset": str(int(time.time()) + 60)}


def _err(eid, message):
    return {"id": eid, "message": message, "request_id": str(uuid.uuid4())}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "docloud"

    def log_message(self, fmt, *args):  # the request log is the cloud's own
        pass

    def _serve(self):
        cloud = self.server.cloud
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        req = Request(time.time(), self.command, self.path, body)
        fake = self.path.startswith("/_fake/")
        with cloud.lock:
            cloud.requests.append(req)
            if cloud._fault["drop"] > 0 and not fake:
                cloud._fault["drop"] -= 1
                self.close_connection = True
                return
            slow = 0 if fake else cloud._fault["slow"]
        if slow > 0:
            time.sleep(slow)
        if isinstance(body, str):
            status, extra, out = 400, {}, _err("bad_request", "unable to parse request body")
        else:
            status, extra, out = cloud.handle(self.command, self.path, self.headers, body)
        with cloud.lock:
            lose = cloud._fault["lose"] > 0 and not fake
            if lose:
                cloud._fault["lose"] -= 1
        if lose:
            req.status = status
            self.close_connection = True
            return
        req.status = status
        hdrs = cloud.headers()
        hdrs.update(extra)
        data = b"" if out is None else json.dumps(out).encode()
        self.send_response(status)
        for k, v in hdrs.items():
            self.send_header(k, v)
        if out is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        if status != 204:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", str(uuid.uuid4()))
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = _serve
