# prelude.sh: sourced by VM scenarios (`. /prelude.sh`) to set up the system
# that the init under test (minit, PID 1) does not set up itself.
#
# Mounts: /proc, /sys, /dev (devtmpfs) + /dev/pts + /dev/shm, /tmp and /run
# (tmpfs), and the unified cgroup v2 hierarchy on /sys/fs/cgroup. The kernel is
# booted with cgroup_no_v1=all, so every controller is on the v2 hierarchy.
# It enables no controller and moves no process: see cg_enable_all below.
#
# Prints one line, "prelude: ok controllers=<list>", or "prelude: FAILED: ..."
# lines for each mount that failed (it never exits the calling script).
# Set PRELUDE_QUIET=1 to silence the "ok" line.
# Environment knobs: PRELUDE_CGROUP_OPTS (mount -o options for cgroup2, e.g.
# "nsdelegate,memory_recursiveprot"; empty by default).

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

prelude_failed=0

_prelude_mount() { # TYPE SOURCE TARGET [OPTS]
	mountpoint -q "$3" 2>/dev/null && return 0
	mkdir -p "$3" 2>/dev/null
	if [ -n "${4:-}" ]; then
		mount -t "$1" -o "$4" "$2" "$3"
	else
		mount -t "$1" "$2" "$3"
	fi || {
		echo "prelude: FAILED: mount -t $1 $2 $3 ${4:-}"
		prelude_failed=1
	}
}

_prelude_mount proc proc /proc
_prelude_mount sysfs sysfs /sys
_prelude_mount devtmpfs devtmpfs /dev mode=0755
_prelude_mount devpts devpts /dev/pts gid=5,mode=620,ptmxmode=666
_prelude_mount tmpfs tmpfs /dev/shm mode=1777
_prelude_mount tmpfs tmpfs /tmp mode=1777
_prelude_mount tmpfs tmpfs /run mode=0755
_prelude_mount cgroup2 cgroup2 /sys/fs/cgroup "${PRELUDE_CGROUP_OPTS:-}"
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd 2>/dev/null

# cg_enable_all [DIR]: enable every controller available in DIR (default: the
# root cgroup) in DIR/cgroup.subtree_control. Prints the resulting list.
# (Only the root cgroup may have member processes while doing this: for any
# other DIR move the processes to a leaf first - the no-internal-process rule.)
cg_enable_all() {
	_d=${1:-/sys/fs/cgroup}
	for _c in $(cat "$_d/cgroup.controllers"); do
		echo "+$_c" >"$_d/cgroup.subtree_control" ||
			echo "prelude: cannot enable $_c in $_d"
	done
	cat "$_d/cgroup.subtree_control"
}

# cg_procs DIR: the PIDs in DIR/cgroup.procs on one line.
cg_procs() { echo $(cat "$1/cgroup.procs"); }

# poweroff_now: end the VM at once without PID 1 exiting (console shows
# "reboot: Power down"; run-vm.sh reports status "poweroff").
poweroff_now() { sync; poweroff -f; }

if [ "$prelude_failed" = 0 ] && [ "${PRELUDE_QUIET:-0}" != 1 ]; then
	echo "prelude: ok controllers=$(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ,)"
fi
