# scripts/deps.sh: sourced by scripts/try and scripts/check. Installs the Debian packages that
# are missing (apt-get as root, else sudo), or prints the exact command and stops.

# What building and running eph needs.
EPH_RUN_PKGS="build-essential pkg-config meson ninja-build libuv1-dev libcurl4-openssl-dev nettle-dev
libsqlite3-dev libjansson-dev libfyaml-dev git python3 python3-venv tzdata ca-certificates
openssh-client"
# What the test suite needs on top.
EPH_TEST_PKGS="libcmocka-dev python3-pytest python3-aiosmtpd clang libclang-rt-14-dev
clang-format valgrind procps iproute2 openssh-server python3-pip python3-setuptools
python3-wheel openssl stress-ng qemu-system-x86 busybox-static python3-yaml curl time"

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
