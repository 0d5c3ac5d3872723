#!/usr/bin/env bash
# Install the Debian packages named on the command line that are missing (root, or sudo).
# An install is a row of the run's timing table (scripts/timing); nothing missing, no row.
#   scripts/system-deps.sh PACKAGE...
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[[ ${#missing[@]} -gt 0 ]] || exit 0
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "installing: ${missing[*]}"
started=$SECONDS
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
"$repo/scripts/timing" add "Debian packages: ${missing[*]}" "$((SECONDS - started))"
