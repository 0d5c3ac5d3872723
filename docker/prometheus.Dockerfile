# A stand-in for the official `prom/prometheus` image (v2.42 era), built from Debian 12's
# prometheus package (2.42.0), for the hermetic lab that cannot pull images. Real
# deployments pull the official image: the image name is a variable of the `prometheus`
# role (prometheus_image).
#
#   scripts/lab-images.sh      (builds it when missing)
#   docker build -t solar-mlops/prometheus:2.42 - < docker/prometheus.Dockerfile   (no context needed)
#
# Same contract as the official image, so the role cannot tell them apart:
#   - ENTRYPOINT /bin/prometheus, and the official default CMD flags:
#     --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus
#     --web.console.libraries=/usr/share/prometheus/console_libraries
#     --web.console.templates=/usr/share/prometheus/consoles
#     (any command line given replaces them, as upstream);
#   - promtool on PATH (/bin/promtool), for `promtool check config|rules`;
#   - configuration at /etc/prometheus/prometheus.yml (a minimal one that scrapes
#     Prometheus itself; the role mounts its own);
#   - data in /prometheus, a VOLUME owned by nobody, which is also the WORKDIR;
#   - runs as nobody (uid/gid 65534); port 9090; SIGHUP reloads the configuration,
#     SIGTERM stops it cleanly.
# Known differences from the official image:
#   - Debian's build: the web UI is Debian's classic UI (the React UI is not packaged),
#     the console folders are empty (Debian ships no console templates), and
#     --web.local-assets defaults to Debian's /usr/share/prometheus/web/; the HTTP API,
#     the TSDB and promtool are the same 2.42;
#   - the default prometheus.yml is ours (upstream's sample scrapes itself too);
#   - the base is the debootstrap image, not busybox (a shell and apt are present).
# No extra CA is needed: nothing in this build uses HTTPS (apt uses http://deb.debian.org).

ARG BASE_IMAGE=solar-mlops/debian:bookworm
FROM ${BASE_IMAGE}

RUN set -eux; \
    # The package's init script must not start a daemon during the build. \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
    rm -f /usr/sbin/policy-rc.d; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    # The classic UI loads one moment-timezone bundle; the package's raw zone data beside \
    # it is 210 MB that nothing reads. Documentation is not needed in the image either. \
    rm -rf /usr/share/javascript/moment-timezone/data /usr/share/doc/* /usr/share/man/*; \
    test -f /usr/share/javascript/moment-timezone/moment-timezone-with-data.min.js; \
    # The official image's layout: binaries in /bin (/bin is /usr/bin in Debian 12), \
    # consoles under /usr/share/prometheus, data in /prometheus owned by nobody. \
    test -x /bin/prometheus; test -x /bin/promtool; \
    install -d -m 0755 /usr/share/prometheus/console_libraries /usr/share/prometheus/consoles; \
    rm -rf /etc/prometheus/console_libraries /etc/prometheus/consoles /etc/default/prometheus \
        /var/lib/prometheus/metrics2; \
    install -d -o nobody -g nogroup -m 0755 /prometheus; \
    printf '%s\n' \
        '# The lab stand-in'"'"'s default configuration: Prometheus scrapes itself.' \
        'global:' \
        '  scrape_interval: 15s' \
        '  evaluation_interval: 15s' \
        'scrape_configs:' \
        '  - job_name: prometheus' \
        '    static_configs:' \
        '      - targets: ["localhost:9090"]' \
        > /etc/prometheus/prometheus.yml; \
    test "$(id -u nobody):$(id -g nobody)" = "65534:65534"; \
    prometheus --version 2>&1 | grep -q '^prometheus, version 2\.42\.'; \
    promtool check config /etc/prometheus/prometheus.yml

USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", \
     "--storage.tsdb.path=/prometheus", \
     "--web.console.libraries=/usr/share/prometheus/console_libraries", \
     "--web.console.templates=/usr/share/prometheus/consoles"]

ARG BASE_IMAGE
LABEL org.opencontainers.image.title="solar-mlops prometheus (lab stand-in for prom/prometheus:v2.42)" \
      org.opencontainers.image.description="Debian 12's Prometheus 2.42 with the official image's contract" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
