# A stand-in for the official `haproxy:2.6` image, built from Debian 12's haproxy package
# (2.6.12), for the hermetic lab that cannot pull images. Real deployments pull the
# official image: the image name is a variable of the `haproxy` role.
#
#   scripts/lab-images.sh      (builds it when missing)
#   docker build -t solar-mlops/haproxy:2.6 - < docker/haproxy.Dockerfile   (no context needed)
#
# Same contract as the official image, so the role cannot tell them apart:
#   - configuration at /usr/local/etc/haproxy/haproxy.cfg (mounted by the role; the
#     image ships none, so a container without one fails at once, as upstream);
#   - runs as the unprivileged user `haproxy` (uid/gid 99, as upstream since 2.4), in
#     /var/lib/haproxy (writable by it: a place for the admin socket). Binding :80 works
#     because Docker >= 20.10 sets net.ipv4.ip_unprivileged_port_start=0 in every
#     container's own network namespace (checked here on 20.10); with --network host
#     it takes the host's sysctl (the haproxy role sets it), as upstream;
#   - `haproxy ...` arguments (or bare options such as `-f x.cfg`) run in the foreground
#     master-worker mode: `haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg`; any
#     other command is run as given;
#   - SIGUSR1 stops it gracefully (soft-stop: connections drain), SIGUSR2 or SIGHUP to
#     the master reloads the configuration.
# Known differences from the official image:
#   - the binary is Debian's /usr/sbin/haproxy (upstream: /usr/local/sbin/haproxy; call
#     it as `haproxy`, from PATH), built with Debian's options (OpenSSL 3, Lua 5.3, PCRE2, Prometheus
#     exporter; `haproxy -vv` lists them);
#   - Debian's package also leaves /etc/haproxy (its sample haproxy.cfg and errors/),
#     which nothing here reads;
#   - the base is the debootstrap image, not debian:bookworm-slim (same Debian release).
# No extra CA is needed: nothing in this build uses HTTPS (apt uses http://deb.debian.org).

ARG BASE_IMAGE=solar-mlops/debian:bookworm
FROM ${BASE_IMAGE}

RUN set -eux; \
    # The package's init script must not start a daemon during the build. \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy; \
    rm -f /usr/sbin/policy-rc.d; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    # Debian's postinst made `haproxy` a dynamic system user (adduser refuses to adopt a \
    # pre-made uid 99, which is below its system range): give it upstream's fixed ids \
    # afterwards, and hand over what the old ids owned. \
    old_uid="$(id -u haproxy)"; old_gid="$(id -g haproxy)"; \
    groupmod --gid 99 haproxy; \
    usermod --uid 99 --gid 99 --home /var/lib/haproxy --shell /usr/sbin/nologin haproxy; \
    find / -xdev \( -uid "$old_uid" -o -gid "$old_gid" \) -exec chown -h haproxy:haproxy {} +; \
    install -d -o haproxy -g haproxy -m 0755 /var/lib/haproxy; \
    install -d -m 0755 /usr/local/etc/haproxy; \
    test "$(id -u haproxy):$(id -g haproxy)" = "99:99"; \
    haproxy -v | grep -q '^HAProxy version 2\.6\.'; \
    # The official image's entrypoint behaviour, in a few lines of our own. \
    printf '%s\n' \
        '#!/bin/sh' \
        '# Options alone run haproxy; haproxy runs in the foreground master-worker mode.' \
        'set -e' \
        'case "$1" in -*) set -- haproxy "$@" ;; esac' \
        'if [ "$1" = haproxy ]; then shift; set -- haproxy -W -db "$@"; fi' \
        'exec "$@"' \
        > /usr/local/bin/docker-entrypoint.sh; \
    chmod 0755 /usr/local/bin/docker-entrypoint.sh

STOPSIGNAL SIGUSR1
ENTRYPOINT ["docker-entrypoint.sh"]
USER haproxy
WORKDIR /var/lib/haproxy
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]

ARG BASE_IMAGE
LABEL org.opencontainers.image.title="solar-mlops haproxy (lab stand-in for haproxy:2.6)" \
      org.opencontainers.image.description="Debian 12's HAProxy 2.6 with the official image's contract" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
