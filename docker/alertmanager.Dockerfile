# A stand-in for the official `prom/alertmanager` image (v0.25), built from Debian 12's
# prometheus-alertmanager package (0.25.0), for the hermetic lab that cannot pull
# images. Real deployments pull the official image: the image name is a variable of the
# `prometheus` role (prometheus_alertmanager_image).
#
#   scripts/lab-images.sh      (builds it when missing)
#   docker build -t solar-mlops/alertmanager:0.25 - < docker/alertmanager.Dockerfile   (no context needed)
#
# Same contract as the official image, so the role cannot tell them apart:
#   - ENTRYPOINT /bin/alertmanager, and the official default CMD flags:
#     --config.file=/etc/alertmanager/alertmanager.yml --storage.path=/alertmanager
#     (any command line given replaces them, as upstream);
#   - amtool on PATH (/bin/amtool), for `amtool check-config`;
#   - configuration at /etc/alertmanager/alertmanager.yml (a minimal one whose only
#     receiver drops every alert; the role mounts its own);
#   - data (silences, notification log) in /alertmanager, a VOLUME owned by nobody,
#     which is also the WORKDIR;
#   - runs as nobody (uid/gid 65534); port 9093 (and 9094 for clustering unless
#     --cluster.listen-address= is given empty); SIGHUP reloads the configuration.
# Known differences from the official image:
#   - Debian's build: /bin/alertmanager is a link to Debian's
#     /usr/bin/prometheus-alertmanager, and Debian ships no web UI (its page says so);
#     the HTTP API (v2) and amtool are the same 0.25;
#   - the default alertmanager.yml is ours (upstream's sample posts to a webhook at
#     127.0.0.1:5001);
#   - the base is the debootstrap image, not busybox (a shell and apt are present).
# No extra CA is needed: nothing in this build uses HTTPS (apt uses http://deb.debian.org).

ARG BASE_IMAGE=solar-mlops/debian:bookworm
FROM ${BASE_IMAGE}

RUN set -eux; \
    # The package's init script must not start a daemon during the build. \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager; \
    rm -f /usr/sbin/policy-rc.d; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    # The official image's layout: binaries in /bin (/bin is /usr/bin in Debian 12), \
    # configuration in /etc/alertmanager, data in /alertmanager owned by nobody. \
    ln -s prometheus-alertmanager /usr/bin/alertmanager; \
    test -x /bin/alertmanager; test -x /bin/amtool; \
    rm -rf /etc/default/prometheus-alertmanager /var/lib/prometheus/alertmanager; \
    install -d -m 0755 /etc/alertmanager; \
    install -d -o nobody -g nogroup -m 0755 /alertmanager; \
    printf '%s\n' \
        '# The lab stand-in'"'"'s default configuration: every alert goes to a receiver' \
        '# without integrations, which drops it.' \
        'route:' \
        '  receiver: discard' \
        'receivers:' \
        '  - name: discard' \
        > /etc/alertmanager/alertmanager.yml; \
    test "$(id -u nobody):$(id -g nobody)" = "65534:65534"; \
    alertmanager --version 2>&1 | grep -q 'version 0\.25\.'; \
    amtool check-config /etc/alertmanager/alertmanager.yml

USER nobody
EXPOSE 9093
VOLUME ["/alertmanager"]
WORKDIR /alertmanager
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", \
     "--storage.path=/alertmanager"]

ARG BASE_IMAGE
LABEL org.opencontainers.image.title="solar-mlops alertmanager (lab stand-in for prom/alertmanager:v0.25)" \
      org.opencontainers.image.description="Debian 12's Alertmanager 0.25 with the official image's contract" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
