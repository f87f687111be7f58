#!/usr/bin/env bash
# install-deps.sh: install what tests/vm/run-vm.sh needs, with apt-get.
# Idempotent (installs only what is missing), quiet, non-interactive.
#   qemu-system-x86  qemu-system-x86_64 (TCG; no KVM needed)
#   linux-image-amd64  a kernel in /boot/vmlinuz-* (CONFIG_PVH, cgroup v2, namespaces)
#   busybox-static   the guest's userland
#   cpio xz-utils binutils  building the initramfs, extracting the PVH vmlinux
#   gcc libc6-dev    building the static init shim and the self-test's probe init
#   tini             /usr/bin/tini-static, the stand-in init of selftest.sh
set -euo pipefail

want=(qemu-system-x86 linux-image-amd64 busybox-static cpio xz-utils binutils gcc libc6-dev tini)

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
# A kernel image must really be there (linux-image-amd64 could be held back).
if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
	[[ " ${missing[*]} " == *" linux-image-amd64 "* ]] || missing+=(linux-image-amd64)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-deps.sh: all present"
	exit 0
fi

SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
echo "install-deps.sh: installing ${missing[*]}"
$SUDO apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" >/dev/null
echo "install-deps.sh: done"
