# A lab "VM" with Docker Engine already installed from Debian's docker.io package: the
# image the Molecule scenarios of the roles that run containers boot, so that each one
# does not download and unpack the engine again. The docker role still runs on it (it
# finds the packages present, writes daemon.json, restarts the engine); the `docker`
# scenario keeps the bare lab-host image and proves the installation itself.
#
#   scripts/lab-images.sh      (builds it when missing, after lab-host)
# No build context, no HTTPS: apt uses http://deb.debian.org.

ARG BASE_IMAGE=solar-mlops/lab-host:bookworm
FROM ${BASE_IMAGE}

RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    # The docker role's packages for docker_package_source=debian, and the Python \
    # library the community.docker modules need on the host. \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        docker.io python3-requests; \
    rm -f /usr/sbin/policy-rc.d; \
    apt-get clean; \
    # As in lab-host: no stale index, and an old date so the roles refresh it. \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    touch -d @0 /var/lib/apt/lists

ARG BASE_IMAGE
LABEL org.opencontainers.image.title="solar-mlops lab host with Docker Engine" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
