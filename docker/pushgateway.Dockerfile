# A stand-in for the official `prom/pushgateway` image (v1.5), built from Debian 12's
# prometheus-pushgateway package (1.5.1), for the hermetic lab that cannot pull images.
# Real deployments pull the official image: the image name is a variable of the
# `prometheus` role (prometheus_pushgateway_image).
#
#   scripts/lab-images.sh      (builds it when missing)
#   docker build -t solar-mlops/pushgateway:1.5 - < docker/pushgateway.Dockerfile   (no context needed)
#
# Same contract as the official image, so the role cannot tell them apart:
#   - ENTRYPOINT /bin/pushgateway; the official image has no CMD, so no flags by default
#     (metrics kept in memory only, port 9091);
#   - runs as nobody (uid/gid 65534) in /pushgateway (owned by nobody: a volume mounted
#     there is writable, e.g. for --persistence.file=/pushgateway/metrics); no
#     configuration file, no VOLUME (persistence is opt-in, as upstream).
# Known differences from the official image:
#   - Debian's build: /bin/pushgateway is a link to Debian's
#     /usr/bin/prometheus-pushgateway, whose compiled-in defaults differ:
#     --persistence.file defaults to /var/lib/prometheus/pushgateway.data (upstream:
#     empty, in memory) and --web.local-assets to Debian's page assets. The image's CMD
#     restores upstream's in-memory default (`--persistence.file=`); a caller that gives
#     its own flags should give --persistence.file too (the role always does);
#   - the base is the debootstrap image, not busybox (a shell and apt are present).
# No extra CA is needed: nothing in this build uses HTTPS (apt uses http://deb.debian.org).

ARG BASE_IMAGE=solar-mlops/debian:bookworm
FROM ${BASE_IMAGE}

RUN set -eux; \
    # The package's init script must not start a daemon during the build. \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-pushgateway; \
    rm -f /usr/sbin/policy-rc.d; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    # The official image's layout: the binary in /bin (/bin is /usr/bin in Debian 12). \
    ln -s prometheus-pushgateway /usr/bin/pushgateway; \
    test -x /bin/pushgateway; \
    rm -f /etc/default/prometheus-pushgateway; \
    install -d -o nobody -g nogroup -m 0755 /pushgateway; \
    test "$(id -u nobody):$(id -g nobody)" = "65534:65534"; \
    pushgateway --version 2>&1 | grep -q 'version 1\.5\.'

USER nobody
EXPOSE 9091
WORKDIR /pushgateway
ENTRYPOINT ["/bin/pushgateway"]
CMD ["--persistence.file="]

ARG BASE_IMAGE
LABEL org.opencontainers.image.title="solar-mlops pushgateway (lab stand-in for prom/pushgateway:v1.5)" \
      org.opencontainers.image.description="Debian 12's Pushgateway 1.5 with the official image's contract" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
