# A stand-in for the official `postgres:15` image, built from Debian 12's postgresql-15
# package, for the hermetic lab that cannot pull images. Real deployments pull the
# official image: the image name is a variable of the `postgres` role.
#
#   scripts/lab-images.sh      (builds it when missing)
#   docker build -t solar-mlops/postgres:15 - < docker/postgres.Dockerfile   (no context needed)
#
# Same contract as the official image, so the role cannot tell them apart:
#   - user and group `postgres`, uid/gid 999; PGDATA=/var/lib/postgresql/data, a volume;
#     the server's binaries (postgres, initdb, pg_ctl) and the clients (psql, pg_dump,
#     pg_restore, pg_isready) on PATH; port 5432; the socket in /var/run/postgresql
#     (writable by postgres);
#   - `postgres ...` (or bare options: `docker run IMAGE -c listen_addresses=*`) runs the
#     server in the foreground; any other command is run as given. Started as root, the
#     entrypoint prepares PGDATA and the socket folder and drops to `postgres`; started
#     as another uid (`--user 999:999`), it needs a PGDATA that uid owns;
#   - an empty PGDATA is initialised first: initdb as POSTGRES_USER (default postgres)
#     with the password from POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (one of them is
#     required), UTF-8, passwords stored as SCRAM-SHA-256; POSTGRES_INITDB_ARGS are passed
#     on; a POSTGRES_DB other than `postgres` (default: POSTGRES_USER) is created;
#   - STOPSIGNAL SIGINT: `docker stop` is PostgreSQL's fast shutdown.
# Known differences from the official image:
#   - pg_hba.conf requires scram-sha-256 for every connection, local socket included
#     (upstream trusts local connections and asks TCP clients for a password);
#   - no /docker-entrypoint-initdb.d scripts and no POSTGRES_HOST_AUTH_METHOD;
#   - the default locale is C.UTF-8 (upstream: en_US.utf8; the base has no locales);
#   - binaries from Debian's /usr/lib/postgresql/15/bin, clients through Debian's
#     pg_wrapper in /usr/bin (upstream: the PGDG packages, the same layout);
#   - privileges are dropped with setpriv (util-linux), not gosu;
#   - the base is the debootstrap image, not debian:bookworm-slim (same Debian release).
# No extra CA is needed: nothing in this build uses HTTPS (apt uses http://deb.debian.org).

ARG BASE_IMAGE=solar-mlops/debian:bookworm
FROM ${BASE_IMAGE}

ENV PG_MAJOR=15 \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
ENV PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH}

RUN set -eux; \
    # The official image's fixed ids, made before the package's postinst (which keeps an \
    # existing system user). \
    groupadd --system --gid 999 postgres; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash \
        --comment 'PostgreSQL administrator' postgres; \
    install -d -o postgres -g postgres -m 0755 /var/lib/postgresql; \
    # No init script may start a daemon during the build. \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common; \
    # Debian's packaging would create a cluster in /var/lib/postgresql/15/main: not here. \
    sed -ri 's/^#?\s*create_main_cluster\s*=.*$/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf; \
    grep -q '^create_main_cluster = false$' /etc/postgresql-common/createcluster.conf; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}"; \
    rm -f /usr/sbin/policy-rc.d; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    test "$(id -u postgres):$(id -g postgres)" = "999:999"; \
    test ! -e "/var/lib/postgresql/${PG_MAJOR}/main"; \
    install -d -o postgres -g postgres -m 0700 "$PGDATA"; \
    install -d -o postgres -g postgres -m 3777 /var/run/postgresql; \
    postgres --version | grep -q "^postgres (PostgreSQL) ${PG_MAJOR}\."; \
    for tool in initdb pg_ctl psql pg_dump pg_restore pg_isready; do command -v "$tool"; done; \
    # The official image's entrypoint contract, in a few lines of our own. \
    printf '%s\n' \
        '#!/bin/sh' \
        '# Options alone run postgres; an empty PGDATA is initialised first (as root: the' \
        '# folders are prepared, then the script runs again as postgres).' \
        'set -eu' \
        'case "${1:-postgres}" in -*) set -- postgres "$@" ;; esac' \
        '[ "$#" -gt 0 ] || set -- postgres' \
        '[ "$1" = postgres ] || exec "$@"' \
        'if [ "$(id -u)" = 0 ]; then' \
        '    install -d -o postgres -g postgres -m 0700 "$PGDATA"' \
        '    chown postgres:postgres "$PGDATA"' \
        '    install -d -o postgres -g postgres -m 3777 /var/run/postgresql' \
        '    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"' \
        'fi' \
        'if [ ! -s "$PGDATA/PG_VERSION" ]; then' \
        '    user="${POSTGRES_USER:-postgres}"' \
        '    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then' \
        '        [ -r "$POSTGRES_PASSWORD_FILE" ] || { echo "entrypoint: cannot read POSTGRES_PASSWORD_FILE $POSTGRES_PASSWORD_FILE" >&2; exit 1; }' \
        '        pw="$(cat "$POSTGRES_PASSWORD_FILE")"' \
        '    else' \
        '        pw="${POSTGRES_PASSWORD:-}"' \
        '    fi' \
        '    [ -n "$pw" ] || { echo "entrypoint: PGDATA is empty: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE to initialise it" >&2; exit 1; }' \
        '    echo "entrypoint: initialising $PGDATA (superuser $user)" >&2' \
        '    # The password goes through a pipe, never onto a command line.' \
        '    # shellcheck disable=SC2086' \
        '    printf "%s\n" "$pw" | initdb --username="$user" --pwfile=/dev/stdin --auth=scram-sha-256 \' \
        '        --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >&2' \
        '    unset pw' \
        '    printf "%s\n" "# Written by the entrypoint: a password for every connection." \' \
        '        "local all all scram-sha-256" "host all all all scram-sha-256" > "$PGDATA/pg_hba.conf"' \
        '    db="${POSTGRES_DB:-$user}"' \
        '    if [ "$db" != postgres ]; then' \
        '        echo "CREATE DATABASE \"$db\";" | postgres --single -D "$PGDATA" postgres >/dev/null' \
        '    fi' \
        'fi' \
        'exec "$@"' \
        > /usr/local/bin/docker-entrypoint.sh; \
    chmod 0755 /usr/local/bin/docker-entrypoint.sh

VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]

ARG BASE_IMAGE
LABEL org.opencontainers.image.title="solar-mlops postgres (lab stand-in for postgres:15)" \
      org.opencontainers.image.description="Debian 12's PostgreSQL 15 with the official image's contract" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
