#!/usr/bin/env bash
# Builds the sandbox image tether-sandbox:latest from sandbox/image/Dockerfile.
#   BASE (default python:3.12-slim): the image to build on.
#   --digest: prints what the image's `tether.build` label would be, and builds nothing.
# When BASE can't be pulled (no registry reachable), bootstraps a minimal Debian with
# python3, git and CA certificates by debootstrap from the mirror the machine's apt sources
# name, imports it as tether-base:<codename>-<hash of its package list>, and builds on that.
# On BASE the Dockerfile installs git itself (with the build's network) when it is missing,
# so both paths give the same tools. Skips everything when the image is current.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${TETHER_SANDBOX_IMAGE:-tether-sandbox:latest}
base=${BASE:-python:3.12-slim}
# What the debootstrap base holds beyond minbase (Depends only, as --no-install-recommends).
# git and ca-certificates: tools clone repositories through the egress proxy (docs/network.md).
packages=python3-minimal,python3,procps,git,ca-certificates
# Dead weight in every sandbox, taken out of the debootstrap base: package caches, docs and
# translations (tools run with LANG=C.UTF-8; git's alone are 40 MB).
slim="var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* usr/share/man/* usr/share/locale/*"
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

# The image is current when it was built from these exact files on this base.
# Every file of the executor counts, by name and content, in a fixed order.
digest=$( (echo "$base"; echo "$packages $slim"; cat "$here/Dockerfile"; cd "$here" && find executor -name '*.py' | LC_ALL=C sort \
  | while read -r file; do echo "$file"; cat "$file"; done) | sha256sum | cut -c1-16)
if [ "${1:-}" = --digest ]; then echo "$digest"; exit 0; fi
if [ "$(docker image inspect -f '{{index .Config.Labels "tether.build"}}' "$image" 2>/dev/null)" = "$digest" ]; then
  say "sandbox image $image is current"
  exit 0
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
if ! have_image "$base" && ! timeout 120 docker pull -q "$base" >/dev/null 2>&1; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  # The tag names the recipe, so a changed package list bootstraps a new base, never reuses an old one.
  fallback="tether-base:$codename-$(echo "$packages $slim" | sha256sum | cut -c1-8)"
  say "cannot pull $base; building on a local Debian $codename base ($fallback)"
  if ! have_image "$fallback"; then
    command -v debootstrap >/dev/null || {
      [ "$(id -u)" = 0 ] || { echo "debootstrap is missing: run 'sudo apt-get install debootstrap'" >&2; exit 1; }
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q debootstrap >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
    }
    mirror=${TETHER_DEBIAN_MIRROR:-$("$root/scripts/apt_mirror.sh")}
    rootfs=$(mktemp -d /var/tmp/tether-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    say "debootstrap $codename (minbase + $packages) — takes a few minutes, once"
    debootstrap --variant=minbase --include="$packages" \
      "$codename" "$rootfs" "$mirror" > /tmp/tether-debootstrap.log 2>&1 \
      || { echo "debootstrap failed; see /tmp/tether-debootstrap.log" >&2; exit 1; }
    for path in $slim; do rm -rf "$rootfs"/$path; done
    tar -C "$rootfs" -c . | docker import - "$fallback" >/dev/null
  fi
  base=$fallback
fi

say "building $image on $base"
docker build -q --build-arg "BASE=$base" --label "tether.build=$digest" -t "$image" "$here" >/dev/null
say "built $image"
