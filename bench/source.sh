#!/bin/sh
# bench/source.sh: time from run creation to the command's execve through the source layer
# (source_resolve + source_checkout + spawn), on a cold commit of a 10,000-file repository and
# then warm (commit already checked out, mirror fresh within source.refresh).
# Usage: bench/source.sh [BUILD_DIR]   (default build-source; needs its static libraries)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-source}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
T=$(mktemp -d /tmp/eph-bench-source-XXXXXX)
trap 'chmod -R u+w "$T"; rm -rf "$T"' EXIT

cc -std=c11 -O2 -D_GNU_SOURCE -I"$ROOT/src" -o "$T/source_bench" "$ROOT/bench/source_bench.c" \
	"$BUILD/src/libeph_source.a" "$BUILD/src/libeph_util.a" \
	$(pkg-config --libs jansson libcrypto)

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
git init -q -b main "$T/work"
(
	cd "$T/work"
	i=0
	while [ $i -lt 100 ]; do
		mkdir -p "d$i"
		j=0
		while [ $j -lt 100 ]; do
			echo "file $i $j" > "d$i/f$j.py"
			j=$((j + 1))
		done
		i=$((i + 1))
	done
	git add -A && git commit -qm "10,000 files"
)
git clone -q --bare "$T/work" "$T/origin.git"
echo "repository: $(git -C "$T/work" ls-files | wc -l) files"

echo "-- first run: clone the mirror + cold checkout"
"$T/source_bench" "$T/state" "file://$T/origin.git" 1
echo "-- warm: 5 runs of the same commit (mirror fetched within refresh)"
"$T/source_bench" "$T/state" "file://$T/origin.git" 5
echo "-- cold commit, mirror already there: a push, then a run (refresh 3600s, so the"
echo "   bench removes the fetch stamp to force the fetch a new push would get)"
(cd "$T/work" && echo change >> d0/f0.py && git commit -qam change && git push -q "$T/origin.git" main)
rm -f "$T"/state/mirrors/*.git/eph-state.json
"$T/source_bench" "$T/state" "file://$T/origin.git" 1
