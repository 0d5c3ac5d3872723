#!/usr/bin/env bash
# Build the hermetic Debian 12 base image from Debian's own packages, for machines that
# cannot pull from any container registry (the lab, CI). Real deployments pull the
# official images instead; this image only stands in for them.
#
# Idempotent: does nothing when the image already exists. Needs root (debootstrap) and
# a running Docker engine.
#
#   docker/base/build.sh
#   SOLAR_BASE_IMAGE=my/debian:bookworm DEBIAN_MIRROR=http://mirror.example/debian \
#       docker/base/build.sh
#
# No extra CA is baked in: builds that need one add it themselves (see
# docker/model-server.Dockerfile), so the base is the same on every machine.
set -euo pipefail

IMAGE="${SOLAR_BASE_IMAGE:-solar-mlops/debian:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

log() { printf '[base] %s\n' "$*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE already exists: nothing to do"
    exit 0
fi
for tool in debootstrap docker tar; do
    command -v "$tool" >/dev/null || { log "missing required tool: $tool"; exit 1; }
done
if [[ $EUID -ne 0 ]]; then
    log "debootstrap needs root"
    exit 1
fi

started=$SECONDS
workdir="$(mktemp -d /tmp/solar-base.XXXXXX)"
rootfs="$workdir/rootfs"

cleanup() {
    # debootstrap mounts /proc, /sys (and sometimes binds /dev) inside the target; a
    # failed run can leave them mounted. Unmount deepest first, and never let rm cross
    # into a mount: it would delete the host's files.
    local mounts
    mounts="$(awk -v root="$rootfs" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r)"
    if [[ -n $mounts ]]; then
        xargs -r -n1 umount -l <<<"$mounts" || true
    fi
    rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT

log "debootstrap $SUITE (minbase + ca-certificates) from $MIRROR into $rootfs"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$MIRROR" >&2

log "writing apt sources and container-friendly apt settings"
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
# Images never need the downloaded .deb files or translations: keep layers small.
cat >"$rootfs/etc/apt/apt.conf.d/90-container" <<'EOF'
APT::Keep-Downloaded-Packages "false";
Acquire::Languages "none";
EOF

log "cleaning caches and host-specific files"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/archives/partial/* \
    "$rootfs"/var/log/apt/* "$rootfs"/var/log/dpkg.log "$rootfs"/var/log/bootstrap.log \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/* "$rootfs"/var/tmp/*
# Docker provides these per container; debootstrap copied the host's.
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
: >"$rootfs/etc/hosts"

log "importing as $IMAGE"
# An imported image has no config: set PATH and a UTF-8 locale like the official images,
# so Dockerfiles can extend PATH and Python uses UTF-8.
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE from $MIRROR" \
    - "$IMAGE" >/dev/null

cleanup
trap - EXIT
size="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
log "built $IMAGE ($((size / 1000000)) MB) in $((SECONDS - started)) s"
