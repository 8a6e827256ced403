#!/usr/bin/env bash
# Prints the Debian mirror this machine's own apt sources name, for the running release.
# Never hard-code a mirror: the machine knows which one it may reach.
set -euo pipefail
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
# deb822 files (*.sources): a stanza's URIs and Suites lines.
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  awk -v want="$codename" '
    /^URIs:/   { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) found = uri }
    /^$/       { if (found) { print found; exit } uri = "" }
    END        { if (found) print found }' "$f" | head -n 1
done | head -n 1 | grep . && exit 0
# One-line format: "deb [options] URI SUITE COMPONENTS".
cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
  | awk -v want="$codename" '$1 == "deb" { sub(/\[[^]]*\] */, ""); if ($3 == want) { print $2; exit } }' \
  | grep . && exit 0
echo "no Debian mirror for '$codename' in /etc/apt/sources.list*; set TETHER_DEBIAN_MIRROR" >&2
exit 1
