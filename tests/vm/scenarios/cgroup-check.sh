#!/bin/sh
# Checks the VM gives a pure cgroup v2 hierarchy with every controller usable,
# and namespaces. Prints "CHECK <name> ok" / "CHECK <name> FAIL <why>" lines and
# "cgroup-check: done, <n> bad"; exits with the number of failed checks.
. /prelude.sh

bad=0
ok() { echo "CHECK $1 ok${2:+ ($2)}"; }
fail() { echo "CHECK $1 FAIL $2"; bad=$((bad + 1)); }
CG=/sys/fs/cgroup

echo "kernel: $(uname -r)"
echo "mounts: $(grep -E ' (cgroup2?|proc|sysfs|devtmpfs) ' /proc/mounts | awk '{print $3":"$2}' | tr '\n' ' ')"
echo "root cgroup.controllers: $(cat $CG/cgroup.controllers)"
echo "PID 1 cgroup: $(cat /proc/1/cgroup)"

# 1. only the v2 hierarchy, and v1 really off
grep -q '^0::/' /proc/self/cgroup && [ "$(wc -l </proc/self/cgroup)" = 1 ] &&
	ok v2-only "$(cat /proc/self/cgroup)" || fail v2-only "$(cat /proc/self/cgroup | tr '\n' ' ')"
mkdir -p /tmp/v1
if mount -t cgroup -o memory none /tmp/v1 2>/dev/null; then
	fail v1-disabled "a v1 memory hierarchy could be mounted"; umount /tmp/v1
else ok v1-disabled; fi

# 2. every controller present
for c in cpuset cpu io memory hugetlb pids rdma misc; do
	grep -qw "$c" $CG/cgroup.controllers && ok "controller-$c" || fail "controller-$c" "not in cgroup.controllers"
done

# 3. enable them all in the root's subtree_control
enabled=$(cg_enable_all $CG)
[ "$enabled" = "$(cat $CG/cgroup.controllers)" ] && ok subtree_control "$enabled" ||
	fail subtree_control "enabled '$enabled' of '$(cat $CG/cgroup.controllers)'"

# 4. child cgroup with interface files of each controller
mkdir $CG/t && ok mkdir-child || fail mkdir-child "mkdir failed"
for f in cpuset.cpus cpu.max cpu.weight io.weight io.stat memory.max memory.events memory.swap.max \
	hugetlb.2MB.max pids.max rdma.max misc.max cgroup.kill cgroup.freeze cpu.pressure memory.pressure io.pressure; do
	[ -e $CG/t/$f ] && ok "file-$f" || fail "file-$f" "missing in child cgroup"
done
echo 16M >$CG/t/memory.max && [ "$(cat $CG/t/memory.max)" = 16777216 ] &&
	ok memory.max "$(cat $CG/t/memory.max)" || fail memory.max "read back '$(cat $CG/t/memory.max)'"
echo 0 >$CG/t/memory.swap.max 2>/dev/null
echo "50000 100000" >$CG/t/cpu.max && ok cpu.max "$(cat $CG/t/cpu.max)" || fail cpu.max "write failed"
echo 0 >$CG/t/cpuset.cpus && ok cpuset.cpus "$(cat $CG/t/cpuset.cpus.effective)" || fail cpuset.cpus "write failed"

# 5. memory.events counts an OOM kill in the child
sh -c 'echo $$ >/sys/fs/cgroup/t/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=64M count=1' 2>/dev/null
oomk=$(awk '$1 == "oom_kill" { print $2 }' $CG/t/memory.events)
[ "${oomk:-0}" -ge 1 ] && ok memory.events-oom_kill "$(tr '\n' ' ' <$CG/t/memory.events)" ||
	fail memory.events-oom_kill "$(tr '\n' ' ' <$CG/t/memory.events)"

# 6. pids.max limits forks
mkdir $CG/p && echo 3 >$CG/p/pids.max
sh -c 'echo $$ >/sys/fs/cgroup/p/cgroup.procs; for i in 1 2 3 4 5 6; do sleep 5 & done 2>/dev/null; kill $(jobs -p) 2>/dev/null; wait' 2>/dev/null
pmax=$(awk '$1 == "max" { print $2 }' $CG/p/pids.events)
[ "${pmax:-0}" -ge 1 ] && ok pids.max "pids.events max $pmax" || fail pids.max "pids.events: $(cat $CG/p/pids.events)"

# 7. cgroup.kill and cgroup.freeze
mkdir $CG/k
sh -c 'echo $$ >/sys/fs/cgroup/k/cgroup.procs; exec sleep 100' &
kpid=$!
sleep 0.3
echo 1 >$CG/k/cgroup.freeze
sleep 0.3
grep -q 'frozen 1' $CG/k/cgroup.events && ok cgroup.freeze || fail cgroup.freeze "$(cat $CG/k/cgroup.events | tr '\n' ' ')"
echo 1 >$CG/k/cgroup.kill
wait $kpid
krc=$?
[ $krc = 137 ] && ok cgroup.kill "child status $krc" || fail cgroup.kill "child status $krc"

# 8. namespaces
echo "namespaces: $(ls /proc/self/ns | tr '\n' ' ')"
[ "$(unshare -U -r id -u 2>/dev/null)" = 0 ] && ok userns "unshare -U -r: uid 0" || fail userns "unshare -U -r failed"
[ "$(unshare -p -f --mount-proc sh -c 'echo $$' 2>/dev/null)" = 1 ] && ok pidns || fail pidns "unshare -p failed"
unshare -m -u -i -n true 2>/dev/null && ok mnt-uts-ipc-net-ns || fail mnt-uts-ipc-net-ns "unshare failed"
# (busybox unshare has no -C; the ns file shows the kernel has cgroup namespaces)
[ -e /proc/self/ns/cgroup ] && ok cgroupns || fail cgroupns "no /proc/self/ns/cgroup"

# clean up the child cgroups
for d in t p k; do
	echo "cgroup $d: procs=[$(cg_procs $CG/$d)] $(grep populated $CG/$d/cgroup.events)"
	echo 1 >$CG/$d/cgroup.kill
done
sleep 0.5
rmdir $CG/t $CG/p $CG/k && ok rmdir || fail rmdir "could not remove child cgroups"

echo "cgroup-check: done, $bad bad"
exit $bad
