#!/usr/bin/env bash
# tests/container/podman.sh - run a static init in a real OCI container
# (podman + runc, rootful, FROM scratch images, no registry, no network).
#
# Usage:
#   podman.sh build-image TAG BINARY   build FROM scratch image TAG with BINARY
#                                      at /minit and busybox applets in /bin
#   podman.sh run ARGS...              podman <global flags> run <defaults> ARGS...
#   podman.sh podman ARGS...           podman <global flags> ARGS...
#   podman.sh cleanup                  remove minit-test* containers/pods/images
#   podman.sh reset                    cleanup + delete the whole state dir
#   podman.sh check                    exit 0 if usable, 77 (with a message) if not
#   podman.sh env                      print the settings in use
#
# Exit status: that of the podman command (for `run`: the container's exit
# status, or 125/126/127 for podman/runtime errors), 77 if podman, runc or
# busybox-static are missing (automake/ctest "skip" convention), 2 on usage
# errors.
#
# Environment:
#   MINIT_PODMAN_STATE     state dir (default /var/tmp/minit-podman): holds
#                          --root, --runroot, --tmpdir of a podman that is
#                          separate from the host's default one.
#   MINIT_PODMAN_STDIN=1   let `run`/`podman` read the caller's stdin
#                          (default: stdin is /dev/null).
#   MINIT_BUSYBOX          busybox binary to put in images (default
#                          /bin/busybox, then /usr/bin/busybox).
#   MINIT_FORCE_REBUILD=1  rebuild even if an identical image exists.
#   MINIT_PODMAN_DEBUG=1   echo every podman command line to stderr.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${MINIT_PODMAN_STATE:-/var/tmp/minit-podman}
# Bump when the image layout below changes, so cached images are rebuilt.
RECIPE_VERSION=1
LABEL=minit-test

die() { echo "podman.sh: $*" >&2; exit 1; }
skip() { echo "podman.sh: SKIP: $*" >&2; exit 77; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 2; }

# --------------------------------------------------------------------------
# Preconditions

find_runc() {
  local p
  for p in "$(command -v runc 2>/dev/null || true)" /usr/sbin/runc /usr/bin/runc /usr/local/sbin/runc /usr/local/bin/runc; do
    [[ -n $p && -x $p ]] && { echo "$p"; return 0; }
  done
  return 1
}

require_tools() {
  local p
  p=$(command -v podman 2>/dev/null) && [[ -x $p ]] \
    || skip "podman not found (run tests/container/install-deps.sh as root)"
  RUNC=$(find_runc) \
    || skip "runc not found (run tests/container/install-deps.sh as root)"
  [[ -x /usr/bin/conmon || -x /usr/libexec/podman/conmon || -x /usr/local/bin/conmon ]] \
    || skip "conmon not found (run tests/container/install-deps.sh as root)"
  [[ $(id -u) -eq 0 ]] \
    || skip "must run as root (the harness uses rootful podman: no subuid/slirp4netns/fuse setup)"
}

find_busybox() {
  local p
  for p in "${MINIT_BUSYBOX:-}" /bin/busybox /usr/bin/busybox; do
    [[ -n $p && -x $p ]] || continue
    # Must be static: FROM scratch has no libc.
    if LC_ALL=C file -L "$p" 2>/dev/null | grep -q 'statically linked' \
       || ! LC_ALL=C ldd "$p" >/dev/null 2>&1; then
      echo "$p"; return 0
    fi
  done
  return 1
}

# --------------------------------------------------------------------------
# State / flags

setup_state() {
  mkdir -p "$STATE/root" "$STATE/run" "$STATE/tmp" "$STATE/networks"
  # runroot and tmpdir must not survive a reboot (podman keeps "is this
  # container running" state there). /run is not a tmpfs on every machine,
  # so wipe them ourselves when the boot id changes.
  local boot=unknown
  [[ -r /proc/sys/kernel/random/boot_id ]] && boot=$(cat /proc/sys/kernel/random/boot_id)
  if [[ ! -f $STATE/boot_id || $(cat "$STATE/boot_id") != "$boot" ]]; then
    (
      flock 9
      if [[ ! -f $STATE/boot_id || $(cat "$STATE/boot_id") != "$boot" ]]; then
        rm -rf "$STATE/run" "$STATE/tmp"
        mkdir -p "$STATE/run" "$STATE/tmp"
        echo "$boot" >"$STATE/boot_id"
      fi
    ) 9>"$STATE/boot.lock"
  fi
  # Hermetic config: ignore /etc/containers/{containers,registries}.conf.
  export CONTAINERS_CONF="$HERE/containers.conf"
  export CONTAINERS_REGISTRIES_CONF="$HERE/registries.conf"
  # Where podman build writes temporary files (default /var/tmp).
  export TMPDIR="$STATE/tmp"
  GLOBAL=(
    --runtime "$RUNC"
    --storage-driver vfs
    --cgroup-manager cgroupfs
    --events-backend file
    --root "$STATE/root"
    --runroot "$STATE/run"
    --tmpdir "$STATE/tmp/libpod"
    --network-config-dir "$STATE/networks"
  )
  RUN_DEFAULTS=(
    --ulimit nofile=1024:1024
    --ulimit nproc=1024:1024
    --pull=never
    --label "$LABEL=1"
  )
}

# Run podman with the global flags; stdin from /dev/null unless asked.
pm() {
  [[ ${MINIT_PODMAN_DEBUG:-} == 1 ]] && echo "+ podman ${GLOBAL[*]} $*" >&2
  if [[ ${MINIT_PODMAN_STDIN:-} == 1 ]]; then
    podman "${GLOBAL[@]}" "$@"
  else
    podman "${GLOBAL[@]}" "$@" </dev/null
  fi
}

# --------------------------------------------------------------------------
# Subcommands

cmd_build_image() {
  [[ $# -eq 2 ]] || usage
  local tag=$1 bin=$2 busybox
  [[ -f $bin && -x $bin ]] || die "build-image: $bin is not an executable file"
  busybox=$(find_busybox) \
    || skip "no static busybox (apt-get install busybox-static, or set MINIT_BUSYBOX)"
  if LC_ALL=C file -L "$bin" 2>/dev/null | grep -q 'dynamically linked'; then
    echo "podman.sh: warning: $bin is dynamically linked; it will not run in a FROM scratch image" >&2
  fi

  # Identical inputs -> reuse the image (builds are cheap, but tests call
  # this a lot). The key covers the binary, busybox and this recipe.
  local key
  key=$( { echo "recipe=$RECIPE_VERSION"; sha256sum <"$bin"; sha256sum <"$busybox"; } | sha256sum | cut -c1-64)

  # Serialise builds of the same tag (parallel test threads).
  local lock
  lock="$STATE/build-$(printf %s "$tag" | tr -c 'A-Za-z0-9._-' '_').lock"
  exec 8>"$lock"
  flock 8

  if [[ ${MINIT_FORCE_REBUILD:-} != 1 ]]; then
    local have
    have=$(pm image inspect --format '{{index .Labels "minit-test.key"}}' "$tag" 2>/dev/null || true)
    if [[ $have == "$key" ]]; then
      echo "podman.sh: $tag is up to date" >&2
      exec 8>&-
      pm image inspect --format '{{.Id}}' "$tag"
      return 0
    fi
  fi

  local ctx
  ctx=$(mktemp -d "$STATE/tmp/build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$ctx'" EXIT

  local r="$ctx/rootfs"
  mkdir -p "$r/bin" "$r/etc" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/root" "$r/run" "$r/var/tmp"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 700 "$r/root"
  ln -s bin "$r/sbin"
  mkdir -p "$r/usr"
  ln -s ../bin "$r/usr/bin"
  ln -s ../bin "$r/usr/sbin"
  install -m 0755 "$bin" "$r/minit"
  install -m 0755 "$busybox" "$r/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    case $applet in
      busybox|init|linuxrc) continue ;;  # keep /minit the only init
    esac
    ln -s busybox "$r/bin/$applet"
  done
  # Debian's busybox has no nohup applet.
  if [[ ! -e $r/bin/nohup ]]; then
    printf '%s\n' '#!/bin/sh' '# nohup stand-in (busybox-static has no nohup applet)' \
      'trap "" HUP' 'exec "$@"' >"$r/bin/nohup"
    chmod 0755 "$r/bin/nohup"
  fi
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$r/etc/group"

  cat >"$ctx/Containerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
WORKDIR /
EOF
  # No ENTRYPOINT and no CMD: tests always pass the command.

  # --signature-policy: committing an image reads a signature policy, by
  # default /etc/containers/policy.json, which a fresh machine may lack.
  pm build --pull=never --layers=false --format oci \
    --signature-policy "$HERE/policy.json" \
    --label "$LABEL=1" --label "minit-test.key=$key" \
    --tag "$tag" --file "$ctx/Containerfile" "$ctx" >&2
  # Drop the now-untagged previous build of this tag (ignore errors:
  # a container may still use it; `cleanup` gets it later).
  pm image prune -f --filter "label=$LABEL=1" >/dev/null 2>&1 || true
  exec 8>&-
  pm image inspect --format '{{.Id}}' "$tag"
}

# `run` and `podman` replace this shell with podman (exec), so signals sent
# to podman.sh (test timeouts, ^C) reach podman itself; `podman run`
# without -d proxies them into the container (--sig-proxy, default true).
pm_exec() {
  [[ ${MINIT_PODMAN_DEBUG:-} == 1 ]] && echo "+ podman ${GLOBAL[*]} $*" >&2
  if [[ ${MINIT_PODMAN_STDIN:-} == 1 ]]; then
    exec podman "${GLOBAL[@]}" "$@"
  else
    exec podman "${GLOBAL[@]}" "$@" </dev/null
  fi
}

cmd_run() {
  pm_exec run "${RUN_DEFAULTS[@]}" "$@"
}

cmd_podman() {
  pm_exec "$@"
}

cmd_cleanup() {
  local -a ids
  # Pods first (removes their containers too). Matches by label or name.
  mapfile -t ids < <( { pm pod ps -q --filter "label=$LABEL=1"; pm pod ps -q --filter "name=^$LABEL"; } 2>/dev/null | sort -u)
  if ((${#ids[@]})); then pm pod rm -f -t 0 "${ids[@]}" >/dev/null 2>&1 || true; fi
  mapfile -t ids < <( { pm ps -aq --filter "label=$LABEL=1"; pm ps -aq --filter "name=^$LABEL"; } 2>/dev/null | sort -u)
  if ((${#ids[@]})); then pm rm -f -t 0 "${ids[@]}" >/dev/null 2>&1 || true; fi
  mapfile -t ids < <( { pm images -q --filter "label=$LABEL=1"; pm images -q --filter "reference=*$LABEL*"; } 2>/dev/null | sort -u)
  if ((${#ids[@]})); then pm rmi -f "${ids[@]}" >/dev/null 2>&1 || true; fi
  # Leftover build contexts.
  rm -rf "$STATE"/tmp/build.* 2>/dev/null || true
  return 0
}

cmd_reset() {
  # Not `podman system reset`: stop everything of ours, then drop the dir.
  pm pod rm -a -f -t 0 >/dev/null 2>&1 || true
  pm rm -a -f -t 0 >/dev/null 2>&1 || true
  rm -rf "$STATE"
}

cmd_env() {
  echo "STATE=$STATE"
  echo "CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "TMPDIR=$TMPDIR"
  echo "global flags: ${GLOBAL[*]}"
  echo "run defaults: ${RUN_DEFAULTS[*]}"
  echo "busybox: $(find_busybox || echo MISSING)"
  podman --version
  "$RUNC" --version | head -1
}

# --------------------------------------------------------------------------

[[ $# -ge 1 ]] || usage
sub=$1; shift
case $sub in
  -h|--help|help) usage ;;
esac
require_tools
setup_state
case $sub in
  build-image) cmd_build_image "$@" ;;
  run)         cmd_run "$@" ;;
  podman)      cmd_podman "$@" ;;
  cleanup)     cmd_cleanup ;;
  reset)       cmd_reset ;;
  check)       pm info >/dev/null || skip "podman info failed"; echo "podman.sh: ok" >&2 ;;
  env)         cmd_env ;;
  *)           echo "podman.sh: unknown subcommand: $sub" >&2; usage ;;
esac
