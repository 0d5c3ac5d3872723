# A lab "VM": Debian 12 with systemd as PID 1, for the local lab (scripts/lab.sh) and the
# Molecule scenarios (molecule/*). It stands in for the Vagrant boxes and EC2 instances the
# roles target in real deployments, so it holds only what a fresh cloud image would hold
# plus what Ansible needs to manage it. Docker is NOT installed here: the `docker` role
# installs it, and its Molecule scenario proves that it does.
#
#   scripts/lab-images.sh      (builds it when missing, with the machine's extra CA)
#   docker build -f docker/lab-host.Dockerfile -t solar-mlops/lab-host:bookworm .
#
# Run it like a VM (what scripts/lab.sh and molecule/*/molecule.yml do): --cgroupns=host,
# /sys/fs/cgroup mounted rw, tmpfs on /run and /run/lock, seccomp=unconfined, every
# capability but SYS_RESOURCE, and a volume at /var/lib/docker (see molecule/README.md).
#
# Extra CA certificates (a TLS-intercepting proxy) are trusted by the whole image, like a
# VM whose administrators installed their network's CA: docker/extra-ca*.crt files in the
# build context or --build-arg EXTRA_CA_BUNDLE (see docker/extra-ca.README). Apt itself
# uses http://deb.debian.org and needs none.

ARG BASE_IMAGE=solar-mlops/debian:bookworm
FROM ${BASE_IMAGE}

# systemd reads this to know it runs in a container (skips hardware units, no TTY login).
ENV container=docker

# docker/extra-ca.README is always in the context, so this glob always matches something:
# the legacy builder cannot COPY a file that may be absent.
COPY docker/extra-ca* /tmp/extra-ca/
ARG EXTRA_CA_BUNDLE=""

RUN set -eux; \
    # No service may start during the build (dbus' init script would try): policy-rc.d. \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    # python3-apt: the apt modules; sudo: become; iproute2/procps: facts and debugging. \
    # No python3-requests / python3-docker: the roles that need them install them. \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates dbus iproute2 procps python3 python3-apt sudo systemd systemd-sysv; \
    { cat /tmp/extra-ca/*.crt 2>/dev/null || true; printf '%s\n' "$EXTRA_CA_BUNDLE"; } \
        | awk '/-BEGIN CERTIFICATE-/ { n++ } n { print > ("/usr/local/share/ca-certificates/extra-ca-" n ".crt") }'; \
    update-ca-certificates; \
    rm -rf /tmp/extra-ca; \
    # Units that only make sense on real hardware or a real console: masked, so that \
    # `systemctl is-system-running` reports "running" rather than "degraded". \
    systemctl mask \
        getty.target console-getty.service \
        systemd-firstboot.service systemd-remount-fs.service systemd-modules-load.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        sys-fs-fuse-connections.mount dev-hugepages.mount; \
    # A fresh machine-id per container (systemd writes one at boot when this is empty). \
    : > /etc/machine-id; \
    rm -f /var/lib/dbus/machine-id; \
    rm -f /usr/sbin/policy-rc.d; \
    apt-get clean; \
    # The lists go: an image must not carry a stale index. Roles refresh it once per \
    # run with apt's cache_valid_time, which reads the folder's date: make it old, so \
    # the empty index does not look fresh. \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    rm -f /var/lib/apt/periodic/update-success-stamp; \
    touch -d @0 /var/lib/apt/lists

# The inner Docker engine's state: a volume, so it lives on the host's filesystem and
# overlay2 works (on the container's own overlay root it would fall back to vfs).
VOLUME ["/var/lib/docker"]

# systemd shuts down cleanly on SIGRTMIN+3 (SIGTERM would make it re-execute itself).
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]

ARG BASE_IMAGE
LABEL org.opencontainers.image.title="solar-mlops lab host" \
      org.opencontainers.image.description="Debian 12 with systemd as PID 1: a lab VM for Ansible and Molecule" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
