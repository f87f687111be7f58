#!/usr/bin/env bash
# run-vm.sh: boot a Linux kernel under qemu (TCG) with an initramfs whose PID 1
# is a given static binary (minit), run a scenario script, print the serial
# console. See tests/vm/README.md.
set -u -o pipefail

PROG=run-vm.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	cat <<'EOF'
usage: run-vm.sh --init BINARY [--scenario SCRIPT] [options] [-- INIT_ARGS...]

Boots the newest /boot/vmlinuz-* under qemu-system-x86_64 (-M microvm, TCG)
with an initramfs holding busybox, BINARY as /minit, SCRIPT as /scenario.sh
and /prelude.sh, and makes the kernel run /minit INIT_ARGS... as PID 1.
When PID 1 exits the kernel panics and qemu exits; the serial console
(with CRs removed) is printed on stdout as it comes.

options:
  --init BINARY        the init to test, copied to /minit (required)
  --scenario SCRIPT    copied to /scenario.sh (mode 0755)
  --timeout SECONDS    kill qemu after this long (default 120, env MINIT_VM_TIMEOUT)
  --append "ARGS"      extra kernel command line arguments
  --file SRC[:DEST]    also put file SRC at DEST (default /SRC's basename); repeatable
  --kernel PATH        kernel image (default: newest /boot/vmlinuz-*, env MINIT_VM_KERNEL)
  --mem SIZE           guest memory (default 512M)
  --smp N              guest CPUs (default 1)
  --log FILE           also write the console (CRs removed) to FILE
  --status-file FILE   write how the VM ended: "exit N", "signal N", "poweroff",
                       "reboot", "halt", "panic", "timeout" or "unknown"
  --argv-mode MODE     how INIT_ARGS reach PID 1: "cmdline" (kernel command line
                       after "--"), "shim" (a tiny static exec shim, needs cc), or
                       "auto" (default: cmdline when it can carry them exactly)
  --kernel-verbose     do not boot with "quiet" (show the whole kernel log)
  --no-pvh             boot the compressed bzImage instead of the cached,
                       decompressed vmlinux via PVH (slower by ~3 s)
  --raw                keep the console's CR characters
  --keep DIR           keep the initramfs tree and console log in DIR
  -h, --help           this help

exit status: 0 when qemu exited by itself (PID 1 exited, poweroff, reboot),
124 on timeout, 125 on harness/qemu errors, 2 on usage errors.
Also prints "run-vm.sh: PID 1 exited with status N" (or "... was killed by
signal N", ...) on stderr.
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 125; }
usage_error() { echo "$PROG: $*" >&2; echo "try '$PROG --help'" >&2; exit 2; }
note() { echo "$PROG: $*" >&2; }

# ---------------------------------------------------------------- options ---
init_bin= scenario= timeout=${MINIT_VM_TIMEOUT:-120} append= kernel=${MINIT_VM_KERNEL:-}
mem=512M smp=1 log_file= status_file= argv_mode=auto quiet=1 pvh=1 raw=0 keep_dir=
extra_files=() init_args=()

need_arg() { [[ $# -ge 2 ]] || usage_error "option $1 needs an argument"; }
while [[ $# -gt 0 ]]; do
	case $1 in
	--init) need_arg "$@"; init_bin=$2; shift 2 ;;
	--scenario) need_arg "$@"; scenario=$2; shift 2 ;;
	--timeout) need_arg "$@"; timeout=$2; shift 2 ;;
	--append) need_arg "$@"; append+=" $2"; shift 2 ;;
	--file) need_arg "$@"; extra_files+=("$2"); shift 2 ;;
	--kernel) need_arg "$@"; kernel=$2; shift 2 ;;
	--mem) need_arg "$@"; mem=$2; shift 2 ;;
	--smp) need_arg "$@"; smp=$2; shift 2 ;;
	--log) need_arg "$@"; log_file=$2; shift 2 ;;
	--status-file) need_arg "$@"; status_file=$2; shift 2 ;;
	--argv-mode) need_arg "$@"; argv_mode=$2; shift 2 ;;
	--kernel-verbose) quiet=0; shift ;;
	--no-pvh) pvh=0; shift ;;
	--raw) raw=1; shift ;;
	--keep) need_arg "$@"; keep_dir=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; init_args=("$@"); break ;;
	*) usage_error "unknown argument '$1'" ;;
	esac
done

[[ -n $init_bin ]] || usage_error "--init BINARY is required"
[[ -f $init_bin && -r $init_bin ]] || die "init binary '$init_bin' not found or not readable"
[[ -x $init_bin ]] || die "init binary '$init_bin' is not executable"
if [[ -n $scenario ]]; then
	[[ -f $scenario && -r $scenario ]] || die "scenario '$scenario' not found or not readable"
fi
[[ $timeout =~ ^[0-9]+$ && $timeout -gt 0 ]] || usage_error "--timeout wants a positive number of seconds, not '$timeout'"
[[ $smp =~ ^[0-9]+$ && $smp -gt 0 ]] || usage_error "--smp wants a positive number, not '$smp'"
case $argv_mode in auto | cmdline | shim) ;; *) usage_error "--argv-mode is auto, cmdline or shim, not '$argv_mode'" ;; esac

# ------------------------------------------------------------ dependencies ---
QEMU=${MINIT_VM_QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null 2>&1 ||
	die "$QEMU not found: install it with tests/vm/install-deps.sh (apt-get install qemu-system-x86)"

if [[ -z $kernel ]]; then
	kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
	[[ -n $kernel ]] ||
		die "no kernel found at /boot/vmlinuz-*: install one with tests/vm/install-deps.sh (apt-get install linux-image-amd64) or pass --kernel"
fi
[[ -f $kernel ]] || die "kernel '$kernel' not found"
[[ -r $kernel ]] || die "kernel '$kernel' is not readable (try as root)"

is_static() { # FILE: true if FILE needs no dynamic loader
	local out
	if command -v readelf >/dev/null 2>&1; then
		! readelf -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter'
	else
		out=$(LC_ALL=C ldd "$1" 2>&1)
		[[ $out == *"not a dynamic executable"* || $out == *"statically linked"* ]]
	fi
}

BUSYBOX=${MINIT_VM_BUSYBOX:-}
if [[ -z $BUSYBOX ]]; then
	for b in /bin/busybox /usr/bin/busybox /usr/lib/busybox-static/busybox; do
		if [[ -x $b ]] && is_static "$b"; then BUSYBOX=$b; break; fi
	done
fi
[[ -n $BUSYBOX && -x $BUSYBOX ]] ||
	die "no static busybox found: install it with tests/vm/install-deps.sh (apt-get install busybox-static)"

if command -v cpio >/dev/null 2>&1; then CPIO=(cpio -o -H newc -R 0:0 --quiet)
else CPIO=("$BUSYBOX" cpio -o -H newc); fi
command -v gzip >/dev/null 2>&1 || die "gzip not found"

CACHE=${MINIT_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/minit-vm}

# ----------------------------------------------------------------- tmp dir ---
tmp=$(mktemp -d "${TMPDIR:-/tmp}/run-vm.XXXXXX") || die "mktemp failed"
qpid= tpid=
cleanup() {
	[[ -n $tpid ]] && kill "$tpid" 2>/dev/null
	if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null; sleep 0.5; kill -KILL "$qpid" 2>/dev/null
	fi
	if [[ -n $keep_dir ]]; then
		mkdir -p "$keep_dir" && cp -a "$tmp/." "$keep_dir/" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM HUP
# Cache for the decompressed kernel and the init shim; per run if not writable.
if ! { mkdir -p "$CACHE" && [[ -w $CACHE ]]; } 2>/dev/null; then CACHE=$tmp/cache; mkdir -p "$CACHE"; fi

# -------------------------------------------------- kernel: PVH vmlinux -----
# The Debian bzImage is xz-compressed; decompressing it under TCG costs ~3 s per
# boot. A CONFIG_PVH kernel's vmlinux boots directly (qemu's PVH entry), so we
# extract it once and cache it.
boot_kernel=$kernel
if [[ $pvh = 1 ]] && command -v xz >/dev/null 2>&1 && command -v readelf >/dev/null 2>&1; then
	key=$(stat -Lc '%s-%Y' "$kernel")
	vmlinux="$CACHE/vmlinux-$(basename "$kernel")-$key"
	if [[ ! -s $vmlinux ]]; then
		part="$vmlinux.part.$$"
		for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$kernel" 2>/dev/null | cut -d: -f1 | head -n 3); do
			tail -c +$((off + 1)) "$kernel" | xz -dqc --single-stream >"$part" 2>/dev/null
			if readelf -nW "$part" 2>/dev/null | grep -qiE '^[[:space:]]*Xen[[:space:]].*(\(0x0*12\)|PHYS32)'; then
				mv -f "$part" "$vmlinux" && break
			fi
		done
		rm -f "$part"
	fi
	if [[ -s $vmlinux ]]; then boot_kernel=$vmlinux
	else note "note: could not extract a PVH vmlinux from $kernel; booting the bzImage (slower)"; fi
fi

# ------------------------------------------------------------- initramfs ----
root=$tmp/root
mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,run,root,mnt,var/tmp} || die "mkdir failed"
chmod 1777 "$root/tmp" "$root/var/tmp"
ln -s bin "$root/sbin"
mkdir -p "$root/usr" && ln -s ../bin "$root/usr/bin" && ln -s ../bin "$root/usr/sbin"
# busybox and its ~270 applet links go in a separate, cached cpio archive (the
# kernel unpacks a concatenation of archives); making the links costs ~0.6 s.
bb_cpio="$CACHE/busybox-$(stat -Lc '%s-%Y' "$BUSYBOX").cpio.gz"
if [[ ! -s $bb_cpio ]]; then
	bbroot=$tmp/busybox-root
	mkdir -p "$bbroot/bin" && cp "$BUSYBOX" "$bbroot/bin/busybox" || die "cannot copy $BUSYBOX"
	for applet in $("$BUSYBOX" --list); do
		[[ $applet == busybox || -e $bbroot/bin/$applet ]] || ln -s busybox "$bbroot/bin/$applet"
	done
	(cd "$bbroot" && find . -mindepth 1 | LC_ALL=C sort | "${CPIO[@]}") 2>"$tmp/cpio.err" | gzip -1 >"$bb_cpio.$$" &&
		mv -f "$bb_cpio.$$" "$bb_cpio" || { rm -f "$bb_cpio.$$"; cat "$tmp/cpio.err" >&2; die "building the busybox archive failed"; }
	rm -rf "$bbroot"
fi
# The kernel's built-in initramfs already has /dev/console; add it too in case
# this kernel's does not (needs root; harmless to skip otherwise).
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$root/etc/group"

cp "$init_bin" "$root/minit" && chmod 0755 "$root/minit" || die "cannot copy $init_bin"
copy_libs() { # BINARY: copy its shared libraries (and loader) into the tree
	local lib
	for lib in $(ldd "$1" 2>/dev/null | grep -oE '/[^ ]+' | sort -u); do
		[[ -e $lib ]] || continue
		mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
	done
}
if ! is_static "$init_bin"; then
	note "note: $init_bin is dynamically linked; copying its libraries into the initramfs"
	copy_libs "$init_bin"
fi
cp "$HERE/prelude.sh" "$root/prelude.sh" || die "cannot copy prelude.sh"
if [[ -n $scenario ]]; then
	cp "$scenario" "$root/scenario.sh" && chmod 0755 "$root/scenario.sh" || die "cannot copy $scenario"
fi
for spec in "${extra_files[@]}"; do
	src=${spec%%:*} dest=${spec#*:}
	[[ $spec == *:* ]] || dest=/$(basename "$src")
	[[ -e $src ]] || die "--file: '$src' not found"
	mkdir -p "$root$(dirname "$dest")" && cp -a "$src" "$root$dest" || die "cannot copy $src to $dest"
	if [[ -f $src && -x $src ]] && ! is_static "$src"; then copy_libs "$src"; fi
done

# How INIT_ARGS reach PID 1. The kernel gives init every word after the first
# "--" of its command line, but stops at a second "--", cannot express empty
# words or words with quotes/whitespace, and allows at most 31 arguments.
cmdline_ok=1
[[ ${#init_args[@]} -le 30 ]] || cmdline_ok=0
for a in "${init_args[@]}"; do
	if [[ -z $a || $a == "--" || $a =~ [[:space:]\"] ]]; then cmdline_ok=0; fi
done
if [[ $argv_mode == auto ]]; then
	if [[ $cmdline_ok == 1 ]]; then argv_mode=cmdline; else argv_mode=shim; fi
fi
[[ $argv_mode == shim || $cmdline_ok == 1 ]] ||
	die "INIT_ARGS cannot be passed on the kernel command line (a '--', an empty word, quotes, whitespace or >30 args): use --argv-mode shim or auto"

rdinit=/minit
if [[ $argv_mode == shim ]]; then
	src=$HERE/init-shim.c
	[[ -r $src ]] || die "missing $src"
	shim="$CACHE/init-shim-$(cksum <"$src" | cut -d' ' -f1)"
	if [[ ! -x $shim ]]; then
		built=
		for cc in "${CC:-cc}" gcc musl-gcc; do
			command -v "$cc" >/dev/null 2>&1 || continue
			if "$cc" -static -O2 -o "$shim.$$" "$src" 2>"$tmp/cc.err" && is_static "$shim.$$"; then
				mv -f "$shim.$$" "$shim" && built=1 && break
			fi
		done
		rm -f "$shim.$$"
		[[ -n $built ]] || { cat "$tmp/cc.err" >&2 2>/dev/null
			die "cannot build the static init shim (needs cc and libc6-dev or musl-tools: tests/vm/install-deps.sh)"; }
	fi
	cp "$shim" "$root/.init-shim" && chmod 0755 "$root/.init-shim" || die "cannot copy shim"
	: >"$root/.init-argv"
	for a in /minit "${init_args[@]}"; do printf '%s\0' "$a" >>"$root/.init-argv"; done
	rdinit=/.init-shim
fi

{ cat "$bb_cpio" && (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "${CPIO[@]}" | gzip -1); } \
	2>"$tmp/cpio.err" >"$tmp/initramfs.cpio.gz" || { cat "$tmp/cpio.err" >&2; die "building the initramfs failed"; }

# ---------------------------------------------------------- kernel cmdline ---
# panic=-1: reboot at once on panic (PID 1 exiting panics the kernel);
# reboot=t: reboot by triple fault, which qemu -no-reboot turns into an exit.
#   (The default ACPI->kbd->BIOS chain sometimes soft-reboots via the BIOS
#   vector behind qemu's back on microvm, booting the kernel again.)
# tsc_early_khz: under TCG the guest TSC runs at the host TSC's rate; PIT
#   calibration is unreliable on a loaded host and the kernel hangs without a
#   TSC frequency (microvm has no HPET/PM timer to fall back on).
tsc_khz() {
	local mhz=
	if [[ -n ${MINIT_VM_TSC_KHZ:-} ]]; then echo "$MINIT_VM_TSC_KHZ"; return; fi
	mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
	[[ -n $mhz ]] || mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
	[[ -n $mhz ]] || mhz=$(awk -F: '/^cpu MHz/ { gsub(/[ \t]/, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null)
	[[ -n $mhz ]] && awk -v m="$mhz" 'BEGIN { if (m > 0) printf "%d\n", m * 1000 }'
}
cmdline="console=ttyS0 panic=-1 reboot=t cgroup_no_v1=all"
khz=$(tsc_khz)
[[ -n $khz ]] && cmdline+=" tsc_early_khz=$khz"
[[ $quiet == 1 ]] && cmdline+=" quiet"
cmdline+="$append rdinit=$rdinit"
if [[ $argv_mode == cmdline && ${#init_args[@]} -gt 0 ]]; then
	cmdline+=" -- ${init_args[*]}"
fi

# ------------------------------------------------------------------- boot ---
console=$tmp/console.log
: >"$console"
qemu_cmd=("$QEMU" -M microvm -accel tcg -nodefaults -no-user-config -display none
	-no-reboot -m "$mem" -smp "$smp"
	-chardev "file,id=con0,path=$console" -serial chardev:con0
	-kernel "$boot_kernel" -initrd "$tmp/initramfs.cpio.gz" -append "$cmdline")
note "booting $(basename "$kernel") (PID 1: /minit${init_args[*]:+ ${init_args[*]}}; argv via $argv_mode; timeout ${timeout}s)"
[[ -n ${MINIT_VM_DEBUG:-} ]] && note "qemu command: ${qemu_cmd[*]}"

start=$(date +%s.%N)
# `timeout` is only a backstop in case this script is SIGKILLed: the loop
# below enforces --timeout itself.
timeout -k 5 $((timeout + 30)) "${qemu_cmd[@]}" </dev/null >"$tmp/qemu.out" 2>&1 &
qpid=$!

if [[ $raw == 1 ]]; then filter=(cat); else filter=(sed -u 's/\r//g'); fi
if [[ -n $log_file ]]; then
	: >"$log_file" || die "cannot write $log_file"
	tail -n +1 -s 0.1 -f --pid="$qpid" "$console" | "${filter[@]}" | tee -a "$log_file" &
else
	tail -n +1 -s 0.1 -f --pid="$qpid" "$console" | "${filter[@]}" &
fi
tpid=$!

# Watch: the timeout, and a VM that should have ended but did not (halted
# after "reboot: System halted", or somehow booting a second time).
end_seen=0 why=
while kill -0 "$qpid" 2>/dev/null; do
	now=$(date +%s.%N)
	if awk -v a="$start" -v b="$now" -v t="$timeout" 'BEGIN { exit !(b - a >= t) }'; then
		why=timeout
		break
	fi
	if [[ $(grep -c 'Linux version [0-9]' "$console" 2>/dev/null) -gt 1 ]]; then
		why=rebooted
		break
	fi
	if [[ $end_seen == 0 ]] && grep -qE 'Kernel panic - not syncing|reboot: (System halted|Power down|Restarting system)' "$console" 2>/dev/null; then
		end_seen=$now
	fi
	if [[ $end_seen != 0 ]] && awk -v a="$end_seen" -v b="$now" 'BEGIN { exit !(b - a >= 10) }'; then
		why=stuck
		break
	fi
	sleep 0.2
done
if [[ -n $why ]]; then
	kill -TERM "$qpid" 2>/dev/null
	for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.2; done
	kill -KILL "$qpid" 2>/dev/null
fi
wait "$qpid"
qrc=$?
qpid=
wait "$tpid" 2>/dev/null
tpid=
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# -------------------------------------------------------------- summary -----
signame() { kill -l "$1" 2>/dev/null | sed 's/^/SIG/'; }
status=unknown
code=$(tr -d '\r' <"$console" | sed -n 's/.*Attempted to kill init! exitcode=\(0x[0-9a-fA-F]*\).*/\1/p' | head -n 1)
if [[ -n $code ]]; then
	code=$((code))
	if ((code & 0x7f)); then
		status="signal $((code & 0x7f))"
		msg="PID 1 was killed by signal $((code & 0x7f)) ($(signame $((code & 0x7f))))$( ((code & 0x80)) && echo ', core dumped')"
	else
		status="exit $(((code >> 8) & 0xff))"
		msg="PID 1 exited with status $(((code >> 8) & 0xff))"
	fi
elif grep -q 'reboot: Power down' "$console"; then status=poweroff msg="the VM powered off"
elif grep -q 'reboot: Restarting system' "$console"; then status=reboot msg="the VM rebooted (qemu exited)"
elif grep -q 'reboot: System halted' "$console"; then status=halt msg="the VM halted"
elif grep -q 'Kernel panic' "$console"; then status=panic msg="the kernel panicked: $(grep -m1 -o 'Kernel panic.*' "$console" | tr -d '\r')"
else msg="no PID 1 exit seen on the console"
fi
[[ $why == timeout ]] && status=timeout

if [[ -s $tmp/qemu.out ]]; then sed "s/^/$PROG: qemu: /" "$tmp/qemu.out" >&2; fi
[[ -n $status_file ]] && echo "$status" >"$status_file"

case $why in
timeout)
	note "TIMEOUT: the VM was still running after ${timeout}s; killed qemu ($msg)"
	exit 124 ;;
rebooted)
	note "ERROR: the guest booted a second time instead of qemu exiting; killed qemu ($msg)"
	exit 125 ;;
stuck)
	note "$msg, but qemu did not exit within 10s; killed it (${elapsed}s)"
	exit 0 ;;
esac
if [[ $qrc != 0 ]]; then
	note "ERROR: qemu exited with status $qrc after ${elapsed}s ($msg)"
	exit 125
fi
note "$msg; qemu exited after ${elapsed}s"
exit 0
