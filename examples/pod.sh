#!/usr/bin/env bash
# A pod on one machine with nothing but minit: the shareProcessNamespace example of
# Kubernetes (an nginx container plus a busybox shell that sees nginx's processes, with
# /pause as PID 1), done with `minit pod` and `minit run --join`.
#
#   sudo examples/pod.sh                # uses target/release/minit, building it if missing
#   sudo MINIT=/path/to/minit examples/pod.sh
#
# Needs root (namespaces, cgroups) and busybox (httpd stands in for nginx, sh/ps/wget for
# the shell container).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MINIT:-}" ]; then
    [ -x target/release/minit ] || cargo build --release
    MINIT=$PWD/target/release/minit
fi
[ "$(id -u)" = 0 ] || { echo "pod.sh: run as root (namespaces and cgroups)" >&2; exit 1; }
BUSYBOX=$(command -v busybox) || { echo "pod.sh: needs busybox" >&2; exit 1; }

work=$(mktemp -d)
mkdir "$work/www"
echo "hello from the web app in the pod" >"$work/www/index.html"
pod_monitor=
cleanup() {
    # Stopping the pause ends the pod: the kernel ends every process in its PID namespace.
    if [ -n "$pod_monitor" ] && kill -0 "$pod_monitor" 2>/dev/null; then
        kill -TERM "$pod_monitor"
        wait "$pod_monitor" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Waits (up to 60 s) for a command to succeed; no fixed sleeps standing in for readiness.
wait_for() {
    local deadline=$((SECONDS + 60))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "pod.sh: timed out waiting for: $*" >&2; return 1; }
        sleep 0.05
    done
}

step "1. the pod: new pid, net, ipc and uts namespaces; PID 1 is minit pause"
echo "\$ minit pod --hostname demo-pod &"
"$MINIT" pod --hostname demo-pod >"$work/pod.pid" &
pod_monitor=$!
wait_for test -s "$work/pod.pid"
POD=$(head -n1 "$work/pod.pid")
echo "pause pid on the host: $POD"

step "2. the web app (busybox httpd for nginx), in its own cgroup: 64M, 32 pids"
echo "\$ minit run --join $POD --memory 64M --pids 32 -- busybox httpd -f -p 127.0.0.1:8080 -h $work/www &"
"$MINIT" run --join "$POD" --memory 64M --pids 32 -- \
    "$BUSYBOX" httpd -f -p 127.0.0.1:8080 -h "$work/www" &
web=$!
# Ready when the pod's network namespace answers on 127.0.0.1:8080.
wait_for nsenter -t "$POD" -n -- "$BUSYBOX" wget -q -O /dev/null http://127.0.0.1:8080/

step "3. the shell app: same PID, network and UTS namespaces, so it sees the web app"
script='
echo "hostname: $(hostname)"
echo "--- ps (PID 1 is the pause, the web app is there) ---"
'"$BUSYBOX"' ps -o pid,ppid,user,args
echo "--- wget http://127.0.0.1:8080/ (the web app over the shared loopback) ---"
'"$BUSYBOX"' wget -q -O - http://127.0.0.1:8080/
'
echo "\$ minit run --join $POD -- sh -c '...'"
"$MINIT" run --join "$POD" -- sh -c "$script"

step "4. an orphan made by a process entered from outside (kubectl exec style) goes to the pause"
nsenter -t "$POD" -p -m -- sh -c "$BUSYBOX sleep 300 >/dev/null 2>&1 &"
orphan=""
wait_for sh -c "pgrep -f -x '$BUSYBOX sleep 300' >/dev/null"
orphan=$(pgrep -f -x "$BUSYBOX sleep 300")
echo "orphan host pid $orphan, parent $(awk '/^PPid/ {print $2}' /proc/"$orphan"/status) (the pause is $POD)"
kill -TERM "$orphan"
wait_for sh -c "! test -e /proc/$orphan"
echo "orphan ended and was reaped by the pause: /proc/$orphan is gone, no zombie"

step "5. killing the web app leaves the pod (and any other app) running"
kill -TERM "$web"
wait "$web" || echo "web app ended with $?"
"$MINIT" run --join "$POD" -- "$BUSYBOX" ps -o pid,args

step "6. stopping the pause (SIGTERM) ends the pod"
kill -TERM "$POD"
status=0
wait "$pod_monitor" || status=$?
pod_monitor=
echo "minit pod exited with $status"
