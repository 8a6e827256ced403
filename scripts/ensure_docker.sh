#!/usr/bin/env bash
# Makes sure a Docker engine answers. Uses DOCKER_HOST or the local socket when one
# answers; otherwise, as root on Debian, installs docker.io and starts
# `dockerd --bridge=none --iptables=false` (no container ever gets a network address;
# sandboxes run with network "none"). Otherwise says exactly what to install.
set -euo pipefail
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null && answers; then
  say "Docker engine answers"
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
  echo "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "No Docker engine answers. Install Docker Engine (Debian: 'sudo apt-get install docker.io')" >&2
  echo "and start it, or point DOCKER_HOST at one." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  say "installing docker.io (Debian's Docker engine)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
fi
say "starting dockerd --bridge=none --iptables=false"
mkdir -p /var/log
nohup dockerd --bridge=none --iptables=false >/var/log/tether-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  answers && { say "Docker engine answers"; exit 0; }
  sleep 0.5
done
echo "dockerd did not come up; see /var/log/tether-dockerd.log" >&2
exit 1
