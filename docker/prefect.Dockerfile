# Prefect 3 worker: a process worker that runs the project's flows and its Ansible
# playbooks (roles/prefect's solar-prefect-worker.service). The Prefect server is another
# image: the official prefecthq/prefect, or its lab stand-in docker/prefect-server.Dockerfile
# (built from its own lock, docker/prefect-server/uv.lock). This image holds Prefect's
# client at the same version, from the project's uv.lock; it does not run the server
# (whose import fails with the project's FastAPI).
#
#   docker build -f docker/prefect.Dockerfile --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#       -t solar-mlops/prefect .
#
# What it holds:
#   - /opt/venv: the project's package (solar_mlops) with the `flows` (Prefect, Evidently),
#     `train` (MLflow, scikit-learn, pvanalytics, ...) and `deploy` (Ansible,
#     ansible-runner) dependency groups, pinned and hashed by uv.lock; not `ops`/`dev`
#     (lint and test tools). `prefect`, `ansible-playbook` and `solar` are on PATH.
#   - /opt/solar-mlops: ansible.cfg, playbooks/ and roles/ (and flows/ when the repository
#     has it), so the worker runs `ansible-playbook playbooks/deploy_model.yml` from there.
#     The inventory and the deploy key are not in the image: the role mounts them.
#   - openssh-client, for Ansible over SSH to the fleet.
# Its default command is a process worker on the pool solar-mlops against PREFECT_API_URL;
# roles/prefect gives its own command (pool, name).
#
# Same base, build stages and extra-CA handling as docker/model-server.Dockerfile: real
# deployments build on the official Python image; the hermetic lab passes
# --build-arg BASE_IMAGE=solar-mlops/debian:bookworm (Debian 12's python3 3.11 from apt).
# Extra CA certificates are trusted by the build stage only (docker/extra-ca.README).

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
# runtime: what the worker and its flow runs need at run time: LightGBM's OpenMP
# library (training flows), OpenSSH's client (Ansible's connection), the worker's user.
FROM python AS runtime

RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 openssh-client; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old; \
    # Fixed ids (the role writes the deploy key for this uid). \
    # Home /tmp: the tmpfs the role mounts; ssh reads the home from passwd, not $HOME. \
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
# The service's dependencies plus the flows, train and deploy groups (not ops, dev).
RUN /opt/uv/bin/uv export --locked --no-default-groups \
        --group flows --group train --group deploy --no-emit-project \
        --format requirements-txt --output-file /tmp/requirements.txt

# ---------------------------------------------------------------------------------------
# deps: the dependencies alone, compiled; rebuilt only when the pins change.
FROM builder AS deps
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
# The `ansible` package bundles ~100 collections (470 MB); the playbooks use a few. Keep
# those listed (namespace.name, space separated; empty keeps them all): a smaller image
# loads faster on hosts without a registry. A flow that needs another collection adds it.
# The rest is removed in the same layer as the install, before compiling: never stored,
# never compiled.
ARG ANSIBLE_COLLECTIONS="ansible.posix ansible.utils amazon.aws community.crypto community.docker community.general community.library_inventory_filtering_v1"
RUN set -eu; \
    python3 -m venv --without-pip /opt/venv; \
    /opt/uv/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
        --requirement /tmp/requirements.txt; \
    if [ -n "$ANSIBLE_COLLECTIONS" ]; then \
        cd /opt/venv/lib/python3.11/site-packages/ansible_collections; \
        for dir in */*/; do \
            name="$(printf '%s' "${dir%/}" | tr / .)"; \
            case " $ANSIBLE_COLLECTIONS " in \
                *" $name "*) ;; \
                *) rm -rf "$dir" ;; \
            esac; \
        done; \
        find . -mindepth 1 -maxdepth 1 -type d -empty -delete; \
        for name in $ANSIBLE_COLLECTIONS; do test -d "$(printf '%s' "$name" | tr . /)"; done; \
    fi; \
    /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash /opt/venv/lib

# ---------------------------------------------------------------------------------------
# package: the project's wheel on top, its files (and the `solar` CLI) then set apart in
# /tmp/package, so the final image adds them as a layer of their own: a code change
# leaves the venv's layer as it was. Then the Ansible tree.
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
    install -d "/tmp/package$site" /tmp/package/opt/venv/bin; \
    cp -a "$site"/solar_mlops "$site"/solar_mlops-*.dist-info "/tmp/package$site/"; \
    cp -a /opt/venv/bin/solar /tmp/package/opt/venv/bin/

# The Ansible tree (and the flows): the whole build context is copied, and only what the
# worker runs is kept, so an absent flows/ is no error. The context is .dockerignore's
# allow-list.
COPY . /tmp/context/
RUN set -eux; \
    install -d -m 0755 /opt/solar-mlops; \
    cd /tmp/context; \
    cp -a ansible.cfg playbooks roles /opt/solar-mlops/; \
    if [ -d flows ]; then cp -a flows /opt/solar-mlops/; fi; \
    find /opt/solar-mlops \( -name __pycache__ -o -name '*.py[co]' \) -prune -exec rm -rf {} +; \
    chown -R root:root /opt/solar-mlops; \
    chmod -R u=rwX,go=rX /opt/solar-mlops; \
    test -f /opt/solar-mlops/playbooks/deploy_model.yml

# ---------------------------------------------------------------------------------------
FROM runtime

COPY --from=deps /opt/venv /opt/venv
COPY --from=package /tmp/package/ /
COPY --from=package /opt/solar-mlops /opt/solar-mlops

# Writable at run time: /tmp only (a tmpfs: HOME, PREFECT_HOME, Ansible's temporary
# files). No telemetry, a UTF-8 locale (ansible-core refuses others), the project's
# folder for the flows' deployments (flows/prefect.yaml starts each run there), and
# Ansible reads the repository's configuration whatever the working folder.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    VIRTUAL_ENV=/opt/venv \
    HOME=/tmp \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_HOME=/tmp/.prefect \
    DO_NOT_TRACK=1 \
    SOLAR_MLOPS_HOME=/opt/solar-mlops \
    ANSIBLE_CONFIG=/opt/solar-mlops/ansible.cfg \
    ANSIBLE_LOCAL_TEMP=/tmp/.ansible/tmp

WORKDIR /opt/solar-mlops
USER 10001:10001
STOPSIGNAL SIGTERM
# tini reaps the worker's flow-run subprocesses and forwards signals.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "solar-mlops", "--type", "process"]

# Last, so a new commit rebuilds only metadata.
ARG BASE_IMAGE
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.title="solar-mlops prefect worker" \
      org.opencontainers.image.description="Prefect 3 process worker with the project's flows and Ansible playbooks" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
