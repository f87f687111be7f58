#!/usr/bin/env bash
# Builds the static minit and runs it in front of a small demo app, as PID 1 of a new PID
# namespace (like a container's entrypoint) when run as root, else as a subreaper.
#
# The app leaves a zombie-to-be orphan and a background job behind, prints its signals,
# and exits 3 on SIGTERM. minit reaps the orphan, forwards SIGTERM, ends the background
# job, and exits with the app's 3.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || true
cargo build --release --target x86_64-unknown-linux-musl
minit=target/x86_64-unknown-linux-musl/release/minit
ls -l "$minit"

app='
trap "echo \"app: got SIGTERM, exiting 3\"; exit 3" TERM
(sh -c "sleep 0.2" &)                   # an orphan: minit adopts and reaps it
sleep 1000 &                            # a background job: a leftover when the app exits
echo "app: pid $$, ready"
while :; do sleep 0.1; done
'
if [ "$(id -u)" = 0 ]; then
  launch=(unshare -p -f --mount-proc "$minit" -v -w -- sh -c "$app")
else
  launch=("$minit" -v -w -- sh -c "$app")
fi
"${launch[@]}" &
runner=$!
# Wait until the app is up, then stop it as `docker stop` would.
for _ in $(seq 100); do
  pid=$(pgrep -f "^$minit -v -w" | head -n1 || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
sleep 1
echo "demo: sending SIGTERM to minit (pid $pid)"
kill -TERM "$pid"
set +e
wait "$runner"
echo "demo: minit exited with $? (the app's status)"
