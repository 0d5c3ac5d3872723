# The MLflow tracking server (UI, REST API, model registry, proxied artifacts), run by the
# `mlflow` role.
#
#   docker build -f docker/mlflow.Dockerfile --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#       -t solar-mlops/mlflow:3.17.2 .
#
# Why our own image: the official ghcr.io/mlflow/mlflow image has neither psycopg (the
# Postgres backend store, postgresql+psycopg://) nor boto3 (artifacts on S3), and
# installing them at start-up would need a package index on every host. Real deployments
# build this image and push it to their registry; the hermetic lab builds it with
# scripts/lab-images.sh. It installs only uv.lock's dependency group `mlflow-server`
# (mlflow 3.17.2 with its server, psycopg[binary] 3.2, boto3), pinned and hashed.
#
# Base image: as docker/model-server.Dockerfile, the official Python image by default; the
# lab passes --build-arg BASE_IMAGE=solar-mlops/debian:bookworm and Debian 12's python3
# is installed. Extra CA certificates are trusted by the build stage only
# (docker/extra-ca.README).
#
# Contract (what the role relies on):
#   - runs as the fixed non-root user `mlflow`, uid/gid 10002; works with a read-only
#     root (HOME=/tmp, a tmpfs);
#   - /var/lib/mlflow is the data volume (owned by 10002): the default SQLite backend
#     store (mlflow.db) and the default local artifacts (artifacts/);
#   - every `mlflow server` option can come from the environment (MLFLOW_HOST,
#     MLFLOW_PORT, MLFLOW_WORKERS, MLFLOW_BACKEND_STORE_URI, MLFLOW_ARTIFACTS_DESTINATION,
#     MLFLOW_SERVER_ALLOWED_HOSTS, ...), so secrets such as the database password stay
#     off the command line;
#   - `mlflow-db-upgrade` creates or upgrades the schema of $MLFLOW_BACKEND_STORE_URI
#     (`mlflow db upgrade` without the URL in the process arguments);
#   - the HEALTHCHECK asks /health on $MLFLOW_HOST:$MLFLOW_PORT.

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
    # Fixed ids, so the data volume and the role agree with the image. The model server \
    # is 10001: another uid, so neither container can read the other's files. \
    groupadd --gid 10002 mlflow; \
    useradd --uid 10002 --gid mlflow --no-log-init --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin mlflow

# ---------------------------------------------------------------------------------------
# requirements: this image's pins, exported from the lock. The install below copies only
# this file, and COPY compares content: a lock change that leaves these pins as they were
# (a dev tool, another image's group) keeps the installed layer.
FROM builder AS requirements
WORKDIR /src
COPY pyproject.toml uv.lock ./
# Only the server's group: no project, no other group, pinned and hashed by the lock.
RUN /opt/uv/bin/uv export --locked --only-group mlflow-server --no-emit-project \
        --format requirements-txt --output-file /tmp/requirements.txt

# ---------------------------------------------------------------------------------------
# venv: the server's dependencies, rebuilt only when its pins change.
FROM builder AS venv
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN set -eux; \
    # No pip in the shipped venv: nothing installs packages at run time. \
    python3 -m venv --without-pip /opt/venv; \
    /opt/uv/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
        --requirement /tmp/requirements.txt; \
    /opt/venv/bin/python -c 'import boto3, mlflow, psycopg; assert mlflow.__version__ == "3.17.2", mlflow.__version__'; \
    # Unchecked-hash bytecode stays valid on a read-only root whatever the file times. \
    /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash /opt/venv/lib

# ---------------------------------------------------------------------------------------
FROM runtime

COPY --from=venv /opt/venv /opt/venv

RUN set -eux; \
    # A fresh volume takes this folder's owner, so the server can write its store. \
    install -d -o mlflow -g mlflow -m 0750 /var/lib/mlflow /var/lib/mlflow/artifacts; \
    # `mlflow db upgrade URL` with the URL read from the environment: never in argv, \
    # where `ps` on the host would show the database password. \
    printf '%s\n' \
        '#!/bin/sh' \
        '# Create or upgrade the schema of $MLFLOW_BACKEND_STORE_URI (mlflow db upgrade).' \
        'set -e' \
        ': "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI to the backend store URI}"' \
        'exec python -c "import os; from mlflow.db import upgrade; upgrade.main([os.environ[\"MLFLOW_BACKEND_STORE_URI\"]], prog_name=\"mlflow db upgrade\")"' \
        > /usr/local/bin/mlflow-db-upgrade; \
    chmod 0755 /usr/local/bin/mlflow-db-upgrade
VOLUME /var/lib/mlflow

# - HOME=/tmp: the only writable home a read-only root offers.
# - the store and artifacts default to the data volume; deployments set a Postgres URL
#   and, optionally, s3://bucket/prefix as the artifacts destination.
# - no usage data leaves the host (MLflow 3 sends telemetry by default).
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    VIRTUAL_ENV=/opt/venv \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_HOST=0.0.0.0 \
    MLFLOW_PORT=5000 \
    MLFLOW_BACKEND_STORE_URI=sqlite:////var/lib/mlflow/mlflow.db \
    MLFLOW_ARTIFACTS_DESTINATION=/var/lib/mlflow/artifacts \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true

WORKDIR /var/lib/mlflow
USER 10002:10002
EXPOSE 5000
STOPSIGNAL SIGTERM
# No curl in the image: Python asks /health where the server listens.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; h = os.environ.get('MLFLOW_HOST', '127.0.0.1'); h = '127.0.0.1' if h in ('', '0.0.0.0', '::') else h; r.urlopen(f\"http://{h}:{os.environ.get('MLFLOW_PORT', '5000')}/health\", timeout=4)"]
# tini reaps stray children and forwards signals; mlflow passes SIGTERM to uvicorn.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["mlflow", "server", "--serve-artifacts"]

ARG BASE_IMAGE
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="solar-mlops MLflow tracking server" \
      org.opencontainers.image.description="MLflow 3.17.2 server with Postgres (psycopg) and S3 (boto3) support" \
      org.opencontainers.image.version="3.17.2" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
