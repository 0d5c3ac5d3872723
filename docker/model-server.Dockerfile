# The prediction service: gunicorn + uvicorn workers serving solar_mlops.service.
#
#   docker build -f docker/model-server.Dockerfile --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#       -t solar-mlops/model-server .
#
# Real deployments build on the official Python image (the default). The hermetic lab,
# which cannot pull images, passes --build-arg BASE_IMAGE=solar-mlops/debian:bookworm
# (docker/base/build.sh): that base has no Python, so Debian 12's python3 (3.11, the
# version uv.lock is resolved for) is installed from apt. Works with the legacy builder
# and with BuildKit.
#
# Extra CA certificates (a TLS-intercepting proxy, a private package index) are trusted
# by the build stage only, never by the image that ships; see docker/extra-ca.README.

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
# runtime: what the service needs at run time, and nothing else: LightGBM's OpenMP
# library and the service's user.
FROM python AS runtime

RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    # Fixed ids, so volumes and Kubernetes' runAsUser agree with the image. \
    # --no-log-init: a high uid would otherwise grow a huge sparse /var/log/lastlog. \
    groupadd --gid 10001 solar; \
    useradd --uid 10001 --gid solar --no-log-init --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin solar

# ---------------------------------------------------------------------------------------
# requirements: this image's pins, exported from the lock. The install below copies only
# this file, and COPY compares content: a lock change that leaves these pins as they were
# (a dev tool, another image's group) keeps the installed layer.
FROM builder AS requirements
WORKDIR /src
COPY pyproject.toml uv.lock ./
# [project].dependencies only (no train/dev groups), pinned and hashed by the lock.
RUN /opt/uv/bin/uv export --locked --no-default-groups --no-emit-project \
        --format requirements-txt --output-file /tmp/requirements.txt

# ---------------------------------------------------------------------------------------
# deps: the dependencies alone, compiled; rebuilt only when the pins change.
FROM builder AS deps
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN set -eux; \
    # No pip in the shipped venv: nothing installs packages at run time. \
    python3 -m venv --without-pip /opt/venv; \
    /opt/uv/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
        --requirement /tmp/requirements.txt; \
    # Unchecked-hash bytecode is never compared with its source, so it stays valid on \
    # a read-only root whatever the file times. \
    /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash /opt/venv/lib

# ---------------------------------------------------------------------------------------
# package: the project's wheel on top, its files then set apart in /tmp/package, so the
# final image adds them as a layer of their own: a code change leaves the venv's layer
# as it was.
FROM deps AS package
WORKDIR /src
# The wheel's metadata reads README.md (pyproject.toml's readme).
COPY pyproject.toml README.md ./
COPY app ./app
RUN set -eux; \
    /opt/uv/bin/uv build --wheel --out-dir /tmp/dist; \
    /opt/uv/bin/uv pip install --python /opt/venv/bin/python --no-deps /tmp/dist/*.whl; \
    site=/opt/venv/lib/python3.11/site-packages; \
    /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash "$site/solar_mlops"; \
    # The package's own files only. Not bin/solar: the wheel's CLI needs the train group \
    # (typer, rich, the full MLflow), which this image leaves out, and the image ships no \
    # entry point that cannot run. \
    install -d "/tmp/package$site"; \
    cp -a "$site"/solar_mlops "$site"/solar_mlops-*.dist-info "/tmp/package$site/"

# ---------------------------------------------------------------------------------------
FROM runtime

COPY --from=deps /opt/venv /opt/venv
COPY --from=package /tmp/package/ /

# A fresh volume takes this folder's owner, so the service can write its model cache.
RUN install -d -o solar -g solar -m 0750 /var/cache/solar-model
VOLUME /var/cache/solar-model

# Writable at run time: /tmp (a tmpfs) and the model cache volume, nothing else.
# - HOME=/tmp: the only writable home a read-only root offers.
# - the prediction log defaults to SQLite in the working folder; deployments set a
#   Postgres URL, and without one it must still land somewhere writable.
# - MLflow retries for minutes by default; fail over to the model cache in seconds.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    VIRTUAL_ENV=/opt/venv \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SOLAR_BIND=0.0.0.0:8000 \
    SOLAR_MODEL_CACHE_DIR=/var/cache/solar-model \
    SOLAR_PREDICTION_STORE_URL=sqlite:////tmp/solar-predictions.db \
    PROMETHEUS_MULTIPROC_DIR=/tmp/solar-metrics \
    MLFLOW_HTTP_REQUEST_MAX_RETRIES=1 \
    MLFLOW_HTTP_REQUEST_TIMEOUT=10

WORKDIR /srv
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
# No curl in the image: the venv's Python asks the address gunicorn binds (SOLAR_BIND).
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; h, _, p = os.environ.get('SOLAR_BIND', ':8000').rpartition(':'); h = '127.0.0.1' if h in ('', '0.0.0.0', '[::]') else h; r.urlopen(f'http://{h}:{p}/health/ready', timeout=4)"]
# tini reaps any stray child and forwards signals; gunicorn then drains its workers.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gunicorn", "-c", "python:solar_mlops.service.gunicorn_conf"]

# Last, so a new commit rebuilds only metadata.
ARG BASE_IMAGE
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.title="solar-mlops model server" \
      org.opencontainers.image.description="PV power forecasts over HTTP (FastAPI, gunicorn)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
