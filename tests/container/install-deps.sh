#!/usr/bin/env bash
# tests/container/install-deps.sh - install what tests/container/podman.sh
# needs on Debian 12 (bookworm). Idempotent, non-interactive, run as root.
#
#   podman          the engine (pulls conmon, golang-github-containers-common
#                   with /etc/containers/policy.json, and netavark)
#   runc            OCI runtime the harness uses (podman may pick crun instead)
#   conmon          container monitor (a podman dependency; listed to be sure)
#   busybox-static  /bin/busybox, copied into FROM scratch images
#   tini            /usr/bin/tini-static: stand-in init / --init-path target
#   catatonit       podman's default --init and default pod infra binary
#   file            used by podman.sh to check that binaries are static
#
# NOT needed (rootful podman, vfs storage, network "none"): uidmap
# (newuidmap), slirp4netns, fuse-overlayfs, buildah, iptables.
#
# Exit status: 0 when everything is installed; 1 otherwise.

set -euo pipefail

PKGS=(podman runc conmon busybox-static tini catatonit file)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps.sh: installing ${missing[*]}" >&2
  apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # Try without refreshing the lists first (fast when they are current).
  if ! apt-get install "${apt_opts[@]}" "${missing[@]}" </dev/null; then
    apt-get update -q </dev/null
    apt-get install "${apt_opts[@]}" "${missing[@]}" </dev/null
  fi
else
  echo "install-deps.sh: all packages present (${PKGS[*]})" >&2
fi

# podman's own image commits (e.g. `podman pod create` without
# --infra-image building localhost/podman-pause) read the signature policy
# from /etc/containers/policy.json. golang-github-containers-common ships it,
# but recreate it if someone removed it. podman.sh itself passes
# --signature-policy tests/container/policy.json to `podman build`.
if [[ ! -e /etc/containers/policy.json ]]; then
  echo "install-deps.sh: creating /etc/containers/policy.json" >&2
  mkdir -p /etc/containers
  cat >/etc/containers/policy.json <<'EOF'
{
    "default": [
        {
            "type": "insecureAcceptAnything"
        }
    ]
}
EOF
fi

# Sanity checks.
for b in podman conmon; do
  command -v "$b" >/dev/null || { echo "install-deps.sh: $b missing after install" >&2; exit 1; }
done
[[ -x /usr/sbin/runc || -x /usr/bin/runc ]] || { echo "install-deps.sh: runc missing" >&2; exit 1; }
[[ -x /bin/busybox ]] || { echo "install-deps.sh: /bin/busybox missing" >&2; exit 1; }
[[ -x /usr/bin/tini-static ]] || { echo "install-deps.sh: /usr/bin/tini-static missing" >&2; exit 1; }
echo "install-deps.sh: ok ($(podman --version), $(runc --version 2>/dev/null | head -1))" >&2
