#!/usr/bin/env bash
# Makes sure a Docker engine answers. Uses DOCKER_HOST or the local socket when one
# answers; otherwise, as root on Debian, installs docker.io and starts
# `dockerd --bridge=none --iptables=false` (no container ever gets a network address;
# sandboxes run with network "none"). Otherwise says exactly what to install.
#
# gVisor: as root on Debian it also installs Debian's `runsc` and registers it with the
# engine as the runtime "runsc" (in /etc/docker/daemon.json, which dockerd reads at start
# and reloads on SIGHUP: an engine already running gets it without a restart). Elsewhere it
# says how, and carries on: sandboxes then run under runc. TETHER_NO_GVISOR=1 skips it.
set -euo pipefail
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
note() { printf '\033[1;33m-->\033[0m %s\n' "$*"; }
answers() { docker info >/dev/null 2>&1; }
daemon_json=${TETHER_DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
runsc_path=/usr/bin/runsc
# --network=none: sandboxes have no network, and gVisor's netstack refuses the engine's
# empty network namespace otherwise. Not --oci-seccomp: Debian's runsc (2022) then refuses
# clone3 with EPERM instead of the profile's ENOSYS, and no tool can start a thread. The
# tools' system calls reach gVisor's kernel, which runs under a seccomp filter of its own.
# --host-uds=open: a sandbox may connect to a host unix socket mounted into it, and only
# connect; tether mounts one, the egress proxy's, and only into a run whose network allows
# hosts (runc needs no flag for it).
runsc_args='["--network=none", "--host-uds=open"]'
tether_runsc_args_before='[["--network=none"]]'
local_engine() { [ -z "${DOCKER_HOST:-}" ] || [ "${DOCKER_HOST#unix://}" != "$DOCKER_HOST" ]; }
has_runsc_runtime() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

# Installs runsc when it is missing and this is root on Debian; true when it is there.
install_runsc() {
  command -v runsc >/dev/null && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    note "gVisor is not installed: sandboxes run under runc (Debian: 'sudo apt-get install runsc', then run this again)"
    return 1
  fi
  say "installing runsc (Debian's gVisor)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q runsc >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q runsc >/dev/null 2>&1 || {
      note "could not install runsc: sandboxes run under runc"
      return 1
    }
  fi
  runsc_path=$(command -v runsc)
}

# Adds the "runsc" runtime to daemon.json, keeping whatever else it holds (a "runsc" entry
# already there is the admin's, and stays, unless it is one an earlier tether wrote, whose
# arguments it brings up to date). Prints "changed" when it wrote the file.
write_daemon_json() {
  mkdir -p "$(dirname "$daemon_json")" 2>/dev/null || return 1
  python3 - "$daemon_json" "$runsc_path" "$runsc_args" "$tether_runsc_args_before" <<'EOF' || return 1
import json, os, sys
path, runsc, args, before = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
config = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read().strip()
    config = json.loads(text) if text else {}
entry = config.get("runtimes", {}).get("runsc")
if entry is None or (entry.get("path") == runsc and entry.get("runtimeArgs") in before):
    config.setdefault("runtimes", {})["runsc"] = {"path": runsc, "runtimeArgs": args}
    with open(path + ".tether", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".tether", path)
    print("changed")
EOF
}

# The pid of the local dockerd, when it runs on this machine.
dockerd_pid() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = dockerd ] && echo "$pid"
}

# Registers runsc with an engine that answers. Never restarts it: a local dockerd reloads
# daemon.json on SIGHUP (runtimes are among what it reloads); any other engine without the
# runtime gets a one-line note.
register_runsc() {
  local pid changed
  pid=$(dockerd_pid || true)
  if [ "$(id -u)" != 0 ] || ! local_engine || [ -z "$pid" ] \
     || tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '--add-runtime\|--config-file'; then
    if has_runsc_runtime; then say "gVisor: the engine has the runtime runsc"; else
      note "the engine has no runsc runtime: add {\"runtimes\": {\"runsc\": {\"path\": \"$runsc_path\", \"runtimeArgs\": $runsc_args}}} to its daemon.json and reload it; sandboxes run under runc until then"
    fi
    return 0
  fi
  changed=$(write_daemon_json) || { note "could not write $daemon_json: sandboxes run under runc"; return 0; }
  if [ -z "$changed" ] && has_runsc_runtime; then
    say "gVisor: the engine has the runtime runsc"
    return 0
  fi
  kill -HUP "$pid"  # reload, not restart: running containers and clients are untouched
  for _ in $(seq 1 20); do
    has_runsc_runtime && { say "gVisor: registered the runtime runsc with the running engine"; return 0; }
    sleep 0.25
  done
  note "dockerd did not take runsc from $daemon_json (see its log); sandboxes run under runc"
}

gvisor() {
  [ "${TETHER_NO_GVISOR:-}" = 1 ] && return 0
  install_runsc || return 0
  register_runsc
}

if command -v docker >/dev/null && answers; then
  say "Docker engine answers"
  gvisor
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
# Before the engine starts, so it reads the runtime from daemon.json at once.
if [ "${TETHER_NO_GVISOR:-}" != 1 ] && install_runsc; then
  write_daemon_json >/dev/null || note "could not write $daemon_json: sandboxes run under runc"
fi
say "starting dockerd --bridge=none --iptables=false"
mkdir -p /var/log
nohup dockerd --bridge=none --iptables=false >/var/log/tether-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if answers; then
    say "Docker engine answers"
    if [ "${TETHER_NO_GVISOR:-}" != 1 ]; then
      if has_runsc_runtime; then say "gVisor: the engine has the runtime runsc"
      else note "the engine has no runsc runtime: sandboxes run under runc"; fi
    fi
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not come up; see /var/log/tether-dockerd.log" >&2
exit 1
