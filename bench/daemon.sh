#!/bin/sh
# bench/daemon.sh: what the scheduler daemon costs while idle and how fast it dispatches.
#
#   bench/daemon.sh [EPH_BINARY]          (default: build/eph)
#
# Prints one table:
#   - resident memory (VmRSS, and the private dirty part of it from smaps_rollup: RSS also
#     counts the pages of shared libraries) of the idle daemon with 15 and with 10,000 jobs
#     (SIZES) of one schedule, and with 10,000 jobs of distinct schedules (DISTINCT: each
#     its own "M H D Mon *", in a month half a year away);
#   - context switches of the idle daemon (15 jobs, none due) over IDLE_SECONDS (default 60),
#     from /proc/PID/status (voluntary + nonvoluntary): wake-ups between fires;
#   - dispatch latency, from the scheduled instant to the command's own start (a job whose
#     command is `date +%s.%N`, argv, run every second), over LATENCY_SAMPLES fires
#     (default 30): median and p99;
#   - BURST_JOBS jobs (default 1000) due at the same instant: the time from that instant until
#     the last command has started.
# Everything happens in a temporary directory, with its own state directory; the daemons it
# starts are stopped by pid. Rerunnable; needs only sh, awk and sort.
set -eu

EPH=${1:-build/eph}
EPH=$(cd "$(dirname "$EPH")" && pwd)/$(basename "$EPH")
IDLE_SECONDS=${IDLE_SECONDS:-60}
LATENCY_SAMPLES=${LATENCY_SAMPLES:-30}
BURST_JOBS=${BURST_JOBS:-1000}
SIZES=${SIZES:-15 10000}
DISTINCT=${DISTINCT:-10000}
WORK=$(mktemp -d /tmp/eph-bench-daemon.XXXXXX)
PID=

cleanup() {
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# jobs FILE N SCHEDULE COMMAND-YAML [MEMORY]: a jobs file of N jobs; a SCHEDULE of
# "distinct" gives job i its own "M H D Mon *" (distinct up to 40,320 jobs), in a month
# half a year away, so that none fires during the bench
jobs() {
	mon=$(( ($(date +%m | sed 's/^0//') + 5) % 12 + 1 ))
	{
		printf 'executors:\n  local:\n    memory_budget: 16GiB\n'
		printf 'retention:\n  runs_per_job: 100000\n'
		printf 'jobs:\n'
		i=0
		while [ "$i" -lt "$2" ]; do
			sched=$3
			if [ "$3" = distinct ]; then
				sched="$((i % 60)) $((i / 60 % 24)) $((i / 1440 % 28 + 1)) $mon *"
			fi
			printf '  job-%05d:\n    schedule: "%s"\n    command: %s\n    memory: %s\n' \
				"$i" "$sched" "$4" "${5:-16MiB}"
			i=$((i + 1))
		done
	} >"$1"
}

# idle_rss KEY FILE: the resident memory of the idle daemon on FILE, as cell KEY
idle_rss() {
	start "$2" "$1"
	sleep 2
	rss=$(status_field "$PID" VmRSS)
	priv=$(awk '$1 == "Private_Dirty:" { print $2 }' "/proc/$PID/smaps_rollup")
	result "$1" "$(awk -v k="$rss" -v p="$priv" 'BEGIN { printf "%.1f MiB (%.1f MiB private)", k / 1024, p / 1024 }')"
}

# start FILE NAME: starts a daemon on FILE with state WORK/NAME, sets PID
start() {
	rm -rf "$WORK/$2"
	mkdir -p "$WORK/$2"
	EPH_STATE="$WORK/$2" "$EPH" daemon "$1" 2>"$WORK/$2.log" &
	PID=$!
	i=0
	until grep -q ' info started' "$WORK/$2.log" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -gt 6000 ] || ! kill -0 "$PID" 2>/dev/null; then
			echo "bench: the daemon did not start:" >&2
			cat "$WORK/$2.log" >&2
			exit 1
		fi
		sleep 0.05
	done
}

stop() {
	kill -TERM "$PID"
	wait "$PID" || true
	PID=
}

status_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

ctxt() {
	echo $(($(status_field "$1" voluntary_ctxt_switches) + $(status_field "$1" nonvoluntary_ctxt_switches)))
}

# A schedule no bench run reaches: January 1st, midnight.
NEVER='0 0 1 1 *'

# result KEY VALUE: one cell of the table (eph's column); cron's cells are cron_KEY
result() { printf '%s\n' "$2" >"$WORK/res.$1"; }
cell() { if [ -f "$WORK/res.$1" ]; then cat "$WORK/res.$1"; else echo "-"; fi; }

for n in $SIZES; do
	jobs "$WORK/idle-$n.yaml" "$n" "$NEVER" '["true"]'
	idle_rss "rss$n" "$WORK/idle-$n.yaml"
	if [ "$n" = 15 ]; then
		c0=$(ctxt "$PID")
		sleep "$IDLE_SECONDS"
		c1=$(ctxt "$PID")
		result ctxt "$((c1 - c0))"
	fi
	stop
done

for n in $DISTINCT; do
	jobs "$WORK/distinct-$n.yaml" "$n" distinct '["true"]'
	idle_rss "drss$n" "$WORK/distinct-$n.yaml"
	stop
done

# Dispatch latency: one job every second; the command prints its own start time.
jobs "$WORK/lat.yaml" 1 '@every 1s' '["date", "+%s.%N"]'
start "$WORK/lat.yaml" lat
sleep $((LATENCY_SAMPLES + 1))
stop
for d in "$WORK"/lat/runs/*/; do
	sched=$(cat "$d/spec.json" | tr ',' '\n' | awk -F: '/"scheduled_at"/ { gsub(/[^0-9]/, "", $2); print $2 }')
	start_t=$(awk '$2 == "out" { print $3; exit }' "$d/output.log")
	[ -n "$sched" ] && [ -n "$start_t" ] && awk -v a="$start_t" -v s="$sched" 'BEGIN { printf "%.3f\n", (a - s) * 1000 }'
done | sort -n >"$WORK/lat.txt"
n=$(wc -l <"$WORK/lat.txt")
if [ "$n" -gt 0 ]; then
	med=$(awk -v n="$n" 'NR == int((n + 1) / 2) { print }' "$WORK/lat.txt")
	p99=$(awk -v n="$n" 'BEGIN { k = int(n * 0.99 + 0.999) } NR == k { print }' "$WORK/lat.txt")
	result lat "median ${med} ms, p99 ${p99} ms (n=$n)"
fi

# A burst: BURST_JOBS jobs due at the same instant, once: the first whole minute at least
# BURST_LEAD seconds (default 90) away, on the machine's clock, so that the daemon is up
# before it even when its start is slow (it records each job's state, a transaction each).
BURST_LEAD=${BURST_LEAD:-90}
now=$(date +%s)
at=$(((now + BURST_LEAD + 59) / 60 * 60))
jobs "$WORK/burst.yaml" "$BURST_JOBS" "$(date -d "@$at" '+%-M %-H %-d %-m *')" '["date", "+%s.%N"]'
start "$WORK/burst.yaml" burst
if [ "$(date +%s)" -ge "$at" ]; then
	echo "bench: the daemon took more than ${BURST_LEAD}s to start; raise BURST_LEAD" >&2
fi
while [ "$(date +%s)" -lt "$at" ]; do sleep 0.2; done
# wait until every job of the burst has a run that printed its start
i=0
while [ "$(cat "$WORK"/burst/runs/*/output.log 2>/dev/null | awk '$2 == "out"' | wc -l)" -lt "$BURST_JOBS" ]; do
	i=$((i + 1))
	[ "$i" -gt 1200 ] && break
	sleep 0.1
done
stop
last=$(for d in "$WORK"/burst/runs/*/; do
	sched=$(tr ',' '\n' <"$d/spec.json" | awk -F: '/"scheduled_at"/ { gsub(/[^0-9]/, "", $2); print $2 }')
	[ "$sched" = "$at" ] && awk '$2 == "out" { print $3; exit }' "$d/output.log"
done | sort -n | tail -1)
started=$(for d in "$WORK"/burst/runs/*/; do
	tr ',' '\n' <"$d/spec.json" | awk -F: '/"scheduled_at"/ { gsub(/[^0-9]/, "", $2); print $2 }'
done | grep -c "^$at\$" || true)
if [ -n "$last" ]; then
	result burst "$(awk -v a="$last" -v s="$at" 'BEGIN { printf "%.2f s", a - s }') ($started runs)"
fi

# Debian's cron (Vixie cron), side by side, when it is installed and we are root: run in the
# foreground (`cron -f`) in a private mount namespace where /etc/crontab, /etc/cron.d, the
# crontab spool and /run are the benchmark's own.
CRONPID=
cron_start() { # cron_start CRONTAB-FILE
	mkdir -p "$WORK/cron/cron.d" "$WORK/cron/spool" "$WORK/cron/run"
	cp "$1" "$WORK/cron/crontab"
	unshare --mount --propagation private sh -c '
		mount --bind "$1/crontab" /etc/crontab &&
		mount --bind "$1/cron.d" /etc/cron.d &&
		mount --bind "$1/spool" /var/spool/cron/crontabs &&
		mount --bind "$1/run" /run &&
		exec cron -f -L 0' sh "$WORK/cron" 2>"$WORK/cron.log" &
	CRONPID=$!
	sleep 2
}
cron_stop() {
	kill -TERM "$CRONPID" 2>/dev/null || true
	wait "$CRONPID" 2>/dev/null || true
	CRONPID=
}
if [ "$(id -u)" = 0 ] && command -v cron >/dev/null && command -v unshare >/dev/null &&
	[ "${WITH_CRON:-1}" = 1 ]; then
	CRON_MINUTES=${CRON_MINUTES:-2}
	for n in $SIZES; do
		: >"$WORK/crontab"
		i=0
		while [ "$i" -lt "$n" ]; do
			echo "0 0 1 1 * root true" >>"$WORK/crontab"
			i=$((i + 1))
		done
		cron_start "$WORK/crontab"
		priv=$(awk '$1 == "Private_Dirty:" { print $2 }' "/proc/$CRONPID/smaps_rollup")
		result "cron_rss$n" "$(awk -v k="$(status_field "$CRONPID" VmRSS)" -v p="$priv" 'BEGIN { printf "%.1f MiB (%.1f MiB private)", k / 1024, p / 1024 }')"
		if [ "$n" = 15 ]; then
			c0=$(ctxt "$CRONPID")
			sleep "$IDLE_SECONDS"
			c1=$(ctxt "$CRONPID")
			result cron_ctxt "$((c1 - c0))"
		fi
		cron_stop
	done
	for n in $DISTINCT; do
		jobs "$WORK/distinct-cron.yaml" "$n" distinct '["true"]'
		awk '/schedule:/ { gsub(/"/, ""); sub(/^ *schedule: */, ""); print $0 " root true" }' \
			"$WORK/distinct-cron.yaml" >"$WORK/crontab"
		cron_start "$WORK/crontab"
		priv=$(awk '$1 == "Private_Dirty:" { print $2 }' "/proc/$CRONPID/smaps_rollup")
		result "cron_drss$n" "$(awk -v k="$(status_field "$CRONPID" VmRSS)" -v p="$priv" 'BEGIN { printf "%.1f MiB (%.1f MiB private)", k / 1024, p / 1024 }')"
		cron_stop
	done
	# latency: 10 entries every minute, each writes its start time; the instant is the minute
	mkdir -p "$WORK/cronlat"
	: >"$WORK/crontab"
	for i in 0 1 2 3 4 5 6 7 8 9; do
		echo "* * * * * root date +\\%s.\\%N >>$WORK/cronlat/$i" >>"$WORK/crontab"
	done
	cron_start "$WORK/crontab"
	sleep $((CRON_MINUTES * 60 + 5))
	cron_stop
	cat "$WORK"/cronlat/* 2>/dev/null | awk '{ s = int($1 / 60) * 60; printf "%.3f\n", ($1 - s) * 1000 }' |
		sort -n >"$WORK/cronlat.txt"
	n=$(wc -l <"$WORK/cronlat.txt")
	if [ "$n" -gt 0 ]; then
		med=$(awk -v n="$n" 'NR == int((n + 1) / 2) { print }' "$WORK/cronlat.txt")
		p99=$(awk -v n="$n" 'BEGIN { k = int(n * 0.99 + 0.999) } NR == k { print }' "$WORK/cronlat.txt")
		result cron_lat "median ${med} ms, p99 ${p99} ms (n=$n)"
	fi
fi

printf '%-52s | %-40s | %s\n' "measure ($(uname -sr), $(nproc) cores)" "eph daemon ($("$EPH" --version))" "Debian cron"
printf '%-52s | %-40s | %s\n' "---" "---" "---"
for n in $SIZES; do
	printf '%-52s | %-40s | %s\n' "idle RSS, $n jobs" "$(cell "rss$n")" "$(cell "cron_rss$n")"
done
for n in $DISTINCT; do
	printf '%-52s | %-40s | %s\n' "idle RSS, $n jobs of distinct schedules" "$(cell "drss$n")" "$(cell "cron_drss$n")"
done
printf '%-52s | %-40s | %s\n' "context switches while idle for ${IDLE_SECONDS}s" "$(cell ctxt)" "$(cell cron_ctxt)"
printf '%-52s | %-40s | %s\n' "dispatch latency (scheduled instant -> command)" "$(cell lat)" "$(cell cron_lat)"
printf '%-52s | %-40s | %s\n' "$BURST_JOBS jobs due at once: last started after" "$(cell burst)" "-"
