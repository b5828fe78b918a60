#!/bin/busybox sh
# tests/e2e/cgroup2vm/init.sh: /init of the cgroup v2 VM test's initramfs (test_cgroup2_vm.py).
# Mounts cgroup2 (its root has the memory controller), runs /eph-agent on each run
# directory that /cases names, where /cases says, then prints what each run left on the
# serial console (base64 between markers: the guest has no other way out) and powers off.
# A line of /cases is "NAME WHERE"; WHERE is
#   root       the agent runs in the root cgroup, as init does (the top-level place)
#   session    the agent runs in a cgroup that holds another process, as an ssh session's
#              scope holds sshd and the shell (refused: the top-level place is the fallback)
#   delegated  the agent runs alone in a cgroup of its own (the own place, after a leaf)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# the kernel's OOM reports go to dmesg (printed at the end), not amid the framed output
echo 1 >/proc/sys/kernel/printk
CG=/sys/fs/cgroup
# +memory is not enabled at the root: the first run's agent enables it (as on a host without
# systemd), the later ones find it enabled (as under systemd)

emit() { # NAME FILE: the file, framed
	echo "EPH-VM-BEGIN $1 $(basename "$2")"
	base64 "$2"
	echo "EPH-VM-END $1 $(basename "$2")"
}

echo "EPH-VM-KERNEL $(uname -r)"
echo "EPH-VM-CONTROLLERS-BEFORE $(cat $CG/cgroup.controllers) /$(cat $CG/cgroup.subtree_control)"
while read -r name where; do
	d=/runs/$name
	other=
	case $where in
	root)
		/eph-agent "$d" 2>"$d/agent.err"
		echo $? >"$d/agent.exit"
		;;
	session)
		mkdir "$CG/session"
		sleep 1000 &
		other=$!
		echo "$other" >"$CG/session/cgroup.procs"
		sh -c "echo \$\$ >$CG/session/cgroup.procs && exec /eph-agent $d" 2>"$d/agent.err"
		echo $? >"$d/agent.exit"
		;;
	delegated)
		mkdir "$CG/svc"
		sh -c "echo \$\$ >$CG/svc/cgroup.procs && exec /eph-agent $d" 2>"$d/agent.err"
		echo $? >"$d/agent.exit"
		;;
	esac
	# every process the command started: gone, or (never expected) still there
	: >"$d/alive"
	if [ -f "$d/pids" ]; then
		for p in $(cat "$d/pids"); do
			if [ -e "/proc/$p/stat" ]; then
				echo "$p $(cat /proc/$p/stat)" >>"$d/alive"
			fi
		done
	fi
	# the session's other process: still there, still in its cgroup
	if [ -n "$other" ]; then
		echo "$other $(cat /proc/$other/cgroup)" >"$d/other"
		kill "$other"
		wait "$other"
	fi
	find $CG -type d >"$d/cgroups"
	for f in "$d"/*; do
		emit "$name" "$f"
	done
	echo "EPH-VM-DONE $name"
done </cases
echo "EPH-VM-CONTROLLERS-AFTER $(cat $CG/cgroup.controllers) /$(cat $CG/cgroup.subtree_control)"
dmesg >/tmp/dmesg
emit vm /tmp/dmesg
echo "EPH-VM-POWEROFF"
poweroff -f
