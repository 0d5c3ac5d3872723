#!/usr/bin/env bash
# Build the hermetic lab's images, each only when it is missing:
#   solar-mlops/debian:bookworm    debootstrap base (docker/base/build.sh)
#   solar-mlops/lab-host:bookworm  a "VM": systemd as PID 1 (docker/lab-host.Dockerfile)
#   solar-mlops/lab-host-docker:bookworm  the same with Docker Engine installed, for the
#                                  scenarios of roles that run containers
#                                  (docker/lab-host-docker.Dockerfile)
#   solar-mlops/haproxy:2.6        stand-in for the official haproxy:2.6 (docker/haproxy.Dockerfile)
#   solar-mlops/postgres:15        stand-in for the official postgres:15 (docker/postgres.Dockerfile)
#   solar-mlops/prometheus:2.42    stand-in for prom/prometheus (docker/prometheus.Dockerfile)
#   solar-mlops/alertmanager:0.25  stand-in for prom/alertmanager (docker/alertmanager.Dockerfile)
#   solar-mlops/pushgateway:1.5    stand-in for prom/pushgateway (docker/pushgateway.Dockerfile)
#   solar-mlops/model-server:lab   the service (docker/model-server.Dockerfile)
#   solar-mlops/mlflow:3.17.2      the MLflow tracking server (docker/mlflow.Dockerfile)
#   solar-mlops/prefect:lab        the Prefect worker with the flows and Ansible (docker/prefect.Dockerfile)
#   solar-mlops/prefect-server:3.8.8  stand-in for prefecthq/prefect:3.8.8-python3.11, from
#                                  its own lock (docker/prefect-server.Dockerfile)
#   The last four are built from this repository every time: they follow the code and
#   uv.lock, and Docker's layer cache makes an unchanged build take seconds.
# Fast and silent-ish when they all exist; prints how long each step took.
#
#   scripts/lab-images.sh            build what is missing
#   scripts/lab-images.sh --rebuild  rebuild the lab hosts and the stand-ins (the base
#                                    stays; remove it by hand to rebuild it too)
#
# The lab host trusts the machine's extra CA certificates (a TLS-intercepting proxy):
# every *.crt under $LAB_EXTRA_CA_DIR (default /usr/local/share/ca-certificates) goes
# into its build context as docker/extra-ca-*.crt (see docker/extra-ca.README). Nothing is
# written into the repository.
#
# Environment (image names): SOLAR_BASE_IMAGE, LAB_HOST_IMAGE, LAB_HOST_DOCKER_IMAGE,
#   LAB_HAPROXY_IMAGE, LAB_POSTGRES_IMAGE, LAB_PROMETHEUS_IMAGE, LAB_ALERTMANAGER_IMAGE,
#   LAB_PUSHGATEWAY_IMAGE, LAB_MODEL_SERVER_IMAGE, LAB_MLFLOW_IMAGE, LAB_PREFECT_IMAGE,
#   LAB_PREFECT_SERVER_IMAGE;
#   LAB_EXTRA_CA_DIR.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base_image="${SOLAR_BASE_IMAGE:-solar-mlops/debian:bookworm}"
host_image="${LAB_HOST_IMAGE:-solar-mlops/lab-host:bookworm}"
host_docker_image="${LAB_HOST_DOCKER_IMAGE:-solar-mlops/lab-host-docker:bookworm}"
haproxy_image="${LAB_HAPROXY_IMAGE:-solar-mlops/haproxy:2.6}"
postgres_image="${LAB_POSTGRES_IMAGE:-solar-mlops/postgres:15}"
model_server_image="${LAB_MODEL_SERVER_IMAGE:-solar-mlops/model-server:lab}"
mlflow_image="${LAB_MLFLOW_IMAGE:-solar-mlops/mlflow:3.17.2}"
prometheus_image="${LAB_PROMETHEUS_IMAGE:-solar-mlops/prometheus:2.42}"
alertmanager_image="${LAB_ALERTMANAGER_IMAGE:-solar-mlops/alertmanager:0.25}"
pushgateway_image="${LAB_PUSHGATEWAY_IMAGE:-solar-mlops/pushgateway:1.5}"
prefect_image="${LAB_PREFECT_IMAGE:-solar-mlops/prefect:lab}"
prefect_server_image="${LAB_PREFECT_SERVER_IMAGE:-solar-mlops/prefect-server:3.8.8}"
ca_dir="${LAB_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
rebuild=false

case "${1:-}" in
    "") ;;
    --rebuild) rebuild=true ;;
    -h | --help) sed -n '2,/^set -euo pipefail/{/^#/p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "usage: $0 [--rebuild]" >&2; exit 2 ;;
esac

log() { printf '[lab-images] %s\n' "$*" >&2; }
# "IMAGE: built in N s", also a row of the run's timing table (scripts/timing).
built() {
    log "$1: built in $2 s"
    "$repo/scripts/timing" add "image: $1" "$2"
}
have() { docker image inspect "$1" >/dev/null 2>&1; }
# The legacy builder works with every engine here (BuildKit may be missing). The build's
# output is shown only when it fails.
build() {
    local out
    out="$(mktemp /tmp/solar-lab-build.XXXXXX)"
    if ! DOCKER_BUILDKIT=0 docker build --force-rm "$@" >"$out" 2>&1; then
        tail -n 40 "$out" >&2
        rm -f "$out"
        log "build failed: docker build $*"
        return 1
    fi
    rm -f "$out"
}

docker info >/dev/null 2>&1 || {
    log "no Docker engine answers (scripts/start-dockerd.sh starts one)"
    exit 1
}

total=$SECONDS

step=$SECONDS
if have "$base_image"; then
    log "base     $base_image: present"
else
    # debootstrap is verbose: its output is shown only when it fails.
    out="$(mktemp /tmp/solar-lab-base.XXXXXX)"
    log "building $base_image (debootstrap)"
    if ! SOLAR_BASE_IMAGE="$base_image" "$repo/docker/base/build.sh" >"$out" 2>&1; then
        tail -n 40 "$out" >&2
        rm -f "$out"
        log "build failed: docker/base/build.sh"
        exit 1
    fi
    rm -f "$out"
    built "$base_image" "$((SECONDS - step))"
fi

step=$SECONDS
if $rebuild || ! have "$host_image"; then
    context="$(mktemp -d /tmp/solar-lab-host.XXXXXX)"
    trap 'rm -rf "$context"' EXIT
    mkdir -p "$context/docker"
    cp "$repo/docker/lab-host.Dockerfile" "$context/docker/"
    # The Dockerfile's `COPY docker/extra-ca*` needs at least one match.
    echo "extra CA certificates for this build, if any" >"$context/docker/extra-ca.README"
    n=0
    shopt -s nullglob
    for crt in "$ca_dir"/*.crt; do
        n=$((n + 1))
        cp "$crt" "$context/docker/extra-ca-$n.crt"
    done
    shopt -u nullglob
    log "building $host_image (extra CA certificates: $n from $ca_dir)"
    build --build-arg BASE_IMAGE="$base_image" -f "$context/docker/lab-host.Dockerfile" \
        -t "$host_image" "$context"
    rm -rf "$context"
    trap - EXIT
    built "$host_image" "$((SECONDS - step))"
else
    log "lab-host $host_image: present"
fi

# A stand-in for an official image, built from Debian's packages with no build context
# (docker/<name>.Dockerfile copies nothing): only when missing, or with --rebuild.
stand_in() {
    local image="$1" dockerfile="$2" step=$SECONDS
    if $rebuild || ! have "$image"; then
        log "building $image"
        build --build-arg BASE_IMAGE="$base_image" -t "$image" - <"$repo/docker/$dockerfile"
        built "$image" "$((SECONDS - step))"
    else
        log "$image: present"
    fi
}

# An image built from this repository (its code and uv.lock), every time: it follows the
# code, and Docker's layer cache makes an unchanged build take seconds. The build stage
# trusts the machine's extra CA (pip reaches PyPI through it); the image that ships does
# not (docker/extra-ca.README).
from_repo() {
    local image="$1" dockerfile="$2" step=$SECONDS bundle
    bundle="$(cat "$ca_dir"/*.crt 2>/dev/null || true)"
    log "building $image (cached layers are reused)"
    build --build-arg BASE_IMAGE="$base_image" --build-arg EXTRA_CA_BUNDLE="$bundle" \
        --build-arg GIT_COMMIT="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)" \
        -f "$repo/docker/$dockerfile" -t "$image" "$repo"
    built "$image" "$((SECONDS - step))"
}

step=$SECONDS
if $rebuild || ! have "$host_docker_image"; then
    log "building $host_docker_image"
    build --build-arg BASE_IMAGE="$host_image" -t "$host_docker_image" - \
        <"$repo/docker/lab-host-docker.Dockerfile"
    built "$host_docker_image" "$((SECONDS - step))"
else
    log "$host_docker_image: present"
fi

stand_in "$haproxy_image" haproxy.Dockerfile
stand_in "$postgres_image" postgres.Dockerfile
stand_in "$prometheus_image" prometheus.Dockerfile
stand_in "$alertmanager_image" alertmanager.Dockerfile
stand_in "$pushgateway_image" pushgateway.Dockerfile
from_repo "$model_server_image" model-server.Dockerfile
from_repo "$mlflow_image" mlflow.Dockerfile
from_repo "$prefect_image" prefect.Dockerfile
from_repo "$prefect_server_image" prefect-server.Dockerfile

log "done in $((SECONDS - total)) s"
