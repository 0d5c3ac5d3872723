# The Prefect 3 server: the hermetic lab's stand-in for the official image
# prefecthq/prefect:3.8.8-python3.11, which real deployments pull. Built from
# docker/prefect-server/uv.lock only (Prefect 3.8.8 with the FastAPI its server supports;
# that lock's header says why it is apart from the project's uv.lock). No project code.
#
#   docker build -f docker/prefect-server.Dockerfile -t solar-mlops/prefect-server:3.8.8 .
#
# The contract it shares with the official image (what roles/prefect relies on):
#   - `prefect` on PATH; the container's command is `prefect server start --host H --port P`;
#   - configured by Prefect's environment settings only (PREFECT_SERVER_DATABASE_CONNECTION_URL,
#     PREFECT_SERVER_API_AUTH_STRING, PREFECT_SERVER_UI_API_URL, PREFECT_HOME,
#     PREFECT_SERVER_UI_STATIC_DIRECTORY, ...);
#   - Python 3.11, the same Prefect version, SQLite (aiosqlite) and Postgres (asyncpg)
#     drivers, the UI's files in the package;
#   - the package's files readable by any uid, so `docker run --user UID:GID` works.
# Known differences:
#   - installed in /opt/venv (the official image: the system Python under /usr/local);
#   - runs as the fixed user 10001:10001 by default (the official image: root) with
#     HOME and PREFECT_HOME under /tmp, a data volume at /var/lib/prefect owned by that
#     user (the official image has no such folder), and tini as the entrypoint (the
#     official image: tini plus an entrypoint script that installs EXTRA_PIP_PACKAGES,
#     which this image does not do);
#   - the UI's static files are prepared at build time in /opt/prefect-ui
#     (PREFECT_SERVER_UI_STATIC_DIRECTORY), so a read-only root works as is; with the
#     official image, point that setting at a writable path (roles/prefect does);
#   - analytics are off (PREFECT_SERVER_ANALYTICS_ENABLED=false, DO_NOT_TRACK=1);
#   - Debian 12's python3 in the lab (BASE_IMAGE=solar-mlops/debian:bookworm), no apt
#     packages beyond ca-certificates and tini.
#
# Same stages and extra-CA handling as docker/model-server.Dockerfile: extra CA
# certificates are trusted by the build stage only (docker/extra-ca.README).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# python and builder: the first two stages of the four images built from this repository
# (model server, MLflow, Prefect worker, Prefect server) are the same, word for word
# (tests/test_dockerfiles.py checks), so Docker's layer cache builds them once for all.
#
# python: Python 3.11 (the official image's, or Debian 12's python3 from apt), the CA
# list and tini. The builder and the image that ships both start here, so the venv built
# in one runs on exactly the same Python in the other.
FROM ${BASE_IMAGE} AS python

RUN set -eux; \
    packages="ca-certificates tini"; \
    command -v python3 >/dev/null || packages="$packages python3"; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'; \
    # The official Python images ship no .pyc files and the root FS is read-only at run \
    # time: compile the standard library now, or every start compiles it again. \
    python3 -m compileall -q -j0 -x '/(test|tests|idle_test)/' \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"

# ---------------------------------------------------------------------------------------
# builder: uv, and any extra CA certificates (a TLS-intercepting proxy, a private package
# index). Only the build stages trust them, so they are in neither the image that ships
# nor its history (docker/extra-ca.README).
FROM python AS builder

# PEM text of extra CA certificates, as an alternative to docker/extra-ca*.crt files.
ARG EXTRA_CA_BUNDLE=""
# The uv that wrote uv.lock (Makefile's UV_VERSION).
ARG UV_VERSION=0.13.8

# docker/extra-ca.README is committed, so this glob always matches something: the legacy
# builder has no way to COPY a file that may be absent.
COPY docker/extra-ca* /tmp/extra-ca/
RUN set -eu; \
    { cat /tmp/extra-ca/*.crt 2>/dev/null || true; printf '%s\n' "$EXTRA_CA_BUNDLE"; } \
        | awk '/-BEGIN CERTIFICATE-/ { n++ } n { print > ("/usr/local/share/ca-certificates/extra-ca-" n ".crt") }'; \
    update-ca-certificates; \
    rm -rf /tmp/extra-ca

# Every HTTPS client of the build trusts the system bundle (and with it the extra CA).
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never

RUN set -eux; \
    # Debian's Python needs python3-venv for ensurepip; the official image has it built in. \
    if dpkg-query -W python3 >/dev/null 2>&1; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
    fi; \
    python3 -m venv /opt/uv; \
    /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"

# ---------------------------------------------------------------------------------------
# runtime: what the server needs at run time, and nothing else: its user.
FROM python AS runtime

RUN set -eux; \
    groupadd --gid 10001 prefect; \
    useradd --uid 10001 --gid prefect --no-log-init --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin prefect

# ---------------------------------------------------------------------------------------
# venv: the server's dependencies from its own lock into /opt/venv, and the UI's files.
FROM builder AS venv

WORKDIR /src
COPY docker/prefect-server/pyproject.toml docker/prefect-server/uv.lock ./
RUN set -eux; \
    /opt/uv/bin/uv export --locked --no-emit-project \
        --format requirements-txt --output-file /tmp/requirements.txt; \
    python3 -m venv --without-pip /opt/venv; \
    /opt/uv/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
        --requirement /tmp/requirements.txt; \
    /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash /opt/venv/lib; \
    # The server imports as is (no patch): the build fails here otherwise. \
    PREFECT_HOME=/tmp/prefect-home /opt/venv/bin/python -c 'import prefect.server.api.server'; \
    rm -rf /tmp/prefect-home

# The UI's static files, prepared here: by default the server copies them into its own
# package folder at start-up, which a read-only root forbids. With the served base path
# "/" the copy's marker matches and the server uses it as is; another base path
# (PREFECT_SERVER_UI_SERVE_BASE) needs PREFECT_SERVER_UI_STATIC_DIRECTORY on a writable path.
RUN set -eux; \
    PREFECT_HOME=/tmp/prefect-home PREFECT_SERVER_UI_STATIC_DIRECTORY=/opt/prefect-ui \
        /opt/venv/bin/python -c 'from prefect.server.api.server import create_ui_app; create_ui_app(False)'; \
    test -f /opt/prefect-ui/v1/index.html; \
    rm -rf /tmp/prefect-home

# ---------------------------------------------------------------------------------------
FROM runtime

COPY --from=venv /opt/venv /opt/venv
COPY --from=venv /opt/prefect-ui /opt/prefect-ui

# The server's data (its SQLite database, when no Postgres URL is given): a fresh volume
# takes this folder's owner.
RUN install -d -o prefect -g prefect -m 0750 /var/lib/prefect
VOLUME /var/lib/prefect

# Writable at run time: /tmp (HOME, PREFECT_HOME) and the data volume. No telemetry.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    VIRTUAL_ENV=/opt/venv \
    HOME=/tmp \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_HOME=/tmp/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_SERVER_UI_STATIC_DIRECTORY=/opt/prefect-ui \
    DO_NOT_TRACK=1

WORKDIR /tmp
USER 10001:10001
EXPOSE 4200
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200"]

# Last, so a new commit rebuilds only metadata.
ARG BASE_IMAGE
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.title="solar-mlops prefect-server" \
      org.opencontainers.image.description="Prefect 3.8.8 server, stand-in for prefecthq/prefect:3.8.8-python3.11" \
      org.opencontainers.image.version="3.8.8" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
