# scripts/deps.sh: sourced by scripts/try and scripts/check. Installs the Debian packages that
# are missing (apt-get as root, else sudo), or prints the exact command and stops.

# What building and running eph needs.
EPH_RUN_PKGS="build-essential pkg-config meson ninja-build libuv1-dev libcurl4-openssl-dev nettle-dev
libsqlite3-dev libjansson-dev libfyaml-dev git python3 python3-venv tzdata ca-certificates
openssh-client"
# What the test suite needs on top.
EPH_TEST_PKGS="libcmocka-dev python3-pytest python3-pytest-xdist python3-aiosmtpd clang libclang-rt-14-dev
clang-format valgrind procps iproute2 openssh-server python3-pip python3-setuptools
python3-wheel openssl stress-ng qemu-system-x86 busybox-static python3-yaml curl time
slurmctld slurmd slurm-client munge"

eph_deps() {
	local missing="" p
	for p in "$@"; do
		if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
			missing="$missing $p"
		fi
	done
	[ -z "$missing" ] && return 0
	local cmd="apt-get install -y --no-install-recommends$missing"
	echo "eph: installing:$missing" >&2
	if [ "$(id -u)" = 0 ]; then
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $cmd; } >&2 || return 1
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		{ sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive $cmd; } >&2 || return 1
	else
		echo "eph: these Debian packages are missing; as root, run:" >&2
		echo "  apt-get update && $cmd" >&2
		return 1
	fi
}

# The S3-compatible server the results_store tests run against (tests/e2e/test_results_store.py):
# moto's moto_server, which is not a Debian package. On a machine that reaches a Python package
# index it is installed into a virtualenv of its own, $EPH_TEST_VENV (by default
# ~/.cache/ephemeron/test-venv); the test looks there, then on PATH, and fails saying so when
# neither has it.
EPH_TEST_VENV="${EPH_TEST_VENV:-$HOME/.cache/ephemeron/test-venv}"
eph_test_venv() {
	[ -x "$EPH_TEST_VENV/bin/moto_server" ] && return 0
	command -v moto_server >/dev/null 2>&1 && return 0
	echo "eph: installing moto (moto_server) into $EPH_TEST_VENV" >&2
	if ! { /usr/bin/python3 -m venv "$EPH_TEST_VENV" &&
		"$EPH_TEST_VENV/bin/pip" install -q 'moto[server]>=5'; } >&2; then
		echo "eph: could not install moto from the package index: the results_store tests will fail" >&2
	fi
	return 0
}
