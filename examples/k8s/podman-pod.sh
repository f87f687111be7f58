#!/bin/sh
# podman: a pod whose infra container is minit's pause image (Dockerfile.pause), with a
# shared PID namespace, so every container sees `/minit pause` as PID 1.
# --infra-command is one string split on spaces; --share +pid adds pid to the default
# ipc, net and uts.
set -eu
podman pod create --name web --infra-image registry.example.com/minit-pause:0.1.0 \
    --infra-command '/minit pause' --share +pid
podman run -d --pod web --name web-server docker.io/library/nginx
podman run --rm --pod web docker.io/library/busybox ps -o pid,args
podman pod stop web      # SIGTERM to the pause: it exits 0 at once
