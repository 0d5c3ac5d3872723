#!/usr/bin/env bash
# Start a Docker engine where nothing runs one (CI and dev containers have no systemd).
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
log=${DOCKERD_LOG:-/var/log/solar-dockerd.log}
echo "starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $log" >&2
tail -n 20 "$log" >&2
exit 1
