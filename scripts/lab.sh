#!/usr/bin/env bash
# The local container lab: "VMs" that are containers running systemd as PID 1, one per
# host of the `lab` group in inventory/lab, named as in the inventory (Ansible reaches
# them with the community.docker.docker connection).
#
#   scripts/lab.sh up              create and boot the hosts (idempotent); builds the
#                                  lab images first when they are missing
#   scripts/lab.sh status          container, systemd state and published ports per host
#   scripts/lab.sh down            stop and remove the hosts; keep their Docker volumes
#   scripts/lab.sh down --volumes  ... and remove the volumes (the inner engines' images)
#
# Each host gets: --cgroupns=host, /sys/fs/cgroup rw, tmpfs /run and /run/lock,
# seccomp=unconfined, every capability but SYS_RESOURCE (which this machine withholds,
# so --privileged fails), a named volume at /var/lib/docker (overlay2 for the inner
# engine), the image archive folder read-only at its own path (the hosts load the
# archives in place; the lab inventory's lab_image_archive_dir), and the ports of its
# `lab_published_ports` host variable, which must be bound to 127.0.0.1. The hosts share
# one Docker network, `lab_network` (default solar-lab), created with the subnet
# `lab_subnet` when the inventory sets one; a host with `lab_ip` gets that fixed address
# on it (inventory/lab-multi: the hosts reach each other there).
#
# Environment: LAB_INVENTORY (inventory/lab; e.g. inventory/lab-multi), LAB_BOOT_TIMEOUT
# (90 s), ANSIBLE_INVENTORY_BIN (ansible-inventory from .venv, else from PATH),
# SOLAR_LAB_ARCHIVE_DIR (.cache/lab-images, as in the lab inventory).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
inventory="${LAB_INVENTORY:-$repo/inventory/lab}"
boot_timeout="${LAB_BOOT_TIMEOUT:-90}"
archive_dir="$(realpath -m "${SOLAR_LAB_ARCHIVE_DIR:-$repo/.cache/lab-images}")"
label=org.solar-mlops.lab

log() { printf '[lab] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The capabilities of the lab "VM": every one Docker 20.10 knows, except SYS_RESOURCE
# (withheld by this machine) and BPF, PERFMON, CHECKPOINT_RESTORE (names this engine
# rejects). One list for this lab and Molecule's: driver.lab_host in Molecule's shared
# configuration, read with the venv's Python (PyYAML comes with Ansible).
lab_capabilities() {
    local python="$repo/.venv/bin/python"
    [[ -x $python ]] || die "$python not found (make install)"
    "$python" -c '
import sys, yaml
with open(sys.argv[1]) as f:
    print(*yaml.safe_load(f)["driver"]["lab_host"]["capabilities"], sep="\n")
' "$repo/.config/molecule/config.yml"
}

ansible_inventory() {
    local bin="${ANSIBLE_INVENTORY_BIN:-}"
    if [[ -z $bin ]]; then
        if [[ -x $repo/.venv/bin/ansible-inventory ]]; then
            bin="$repo/.venv/bin/ansible-inventory"
        else
            bin="$(command -v ansible-inventory)" || die "ansible-inventory not found (make install)"
        fi
    fi
    ANSIBLE_CONFIG="$repo/ansible.cfg" "$bin" -i "$inventory" --list
}

# From the inventory: a first line "<network> <subnet or ->", then one line per lab host:
# "<name> <image> <fixed address or -> <port> <port> ...".
lab_hosts() {
    ansible_inventory | python3 -c '
import json, sys
inv = json.load(sys.stdin)
hostvars = inv.get("_meta", {}).get("hostvars", {})
names = inv.get("lab", {}).get("hosts", [])
first = hostvars.get(names[0], {}) if names else {}
print(first.get("lab_network", "solar-lab"), first.get("lab_subnet") or "-")
for name in names:
    hv = hostvars.get(name, {})
    ports = hv.get("lab_published_ports", [])
    for p in ports:
        if not str(p).startswith("127.0.0.1:"):
            sys.exit(f"{name}: lab_published_ports entry {p!r} is not bound to 127.0.0.1")
    print(name, hv.get("lab_host_image", "solar-mlops/lab-host:bookworm"), hv.get("lab_ip") or "-", *ports)
'
}

volume_of() { printf 'solar-lab-%s-docker' "$1"; }

# A container label's value; empty when the container or the label is missing.
label_of() { # container label
    local value
    value="$(docker inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null)" || return 0
    [[ $value == "<no value>" ]] || printf '%s' "$value"
}

run_args() { # name image address ports...
    local name=$1 image=$2 address=$3
    shift 3
    local args=(
        --detach --name "$name" --hostname "$name"
        --network "$network" --label "$label=host"
        # Back after the machine's dockerd restarts; `down` (docker stop) keeps it down.
        --restart unless-stopped
        --cgroupns=host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw
        --tmpfs /run --tmpfs /run/lock
        --security-opt seccomp=unconfined
        --cap-drop ALL
        --volume "$(volume_of "$name"):/var/lib/docker"
        --volume "$archive_dir:$archive_dir:ro"
    )
    local cap port
    [[ $address == - ]] || args+=(--ip "$address")
    for cap in "${capabilities[@]}"; do args+=(--cap-add "$cap"); done
    for port in "$@"; do args+=(--publish "$port"); done
    args+=("$image")
    printf '%s\n' "${args[@]}"
}

wait_booted() { # name
    local name=$1 state="" deadline=$((SECONDS + boot_timeout))
    while ((SECONDS < deadline)); do
        # is-system-running exits non-zero for anything but "running"; its output counts.
        state="$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)"
        case $state in
            running) return 0 ;;
            degraded)
                log "$name: systemd is degraded; failed units:"
                docker exec "$name" systemctl --failed --no-legend >&2 || true
                return 0
                ;;
        esac
        sleep 1
    done
    die "$name: systemd did not finish booting in ${boot_timeout} s (state: ${state:-none})"
}

cmd_up() {
    "$repo/scripts/lab-images.sh"
    mkdir -p "$archive_dir"
    mapfile -t capabilities < <(lab_capabilities)
    ((${#capabilities[@]} > 0)) || die "no capabilities read from .config/molecule/config.yml"
    if ! docker network inspect "$network" >/dev/null 2>&1; then
        local subnet_args=()
        [[ $subnet == - ]] || subnet_args=(--subnet "$subnet")
        docker network create --label "$label=network" "${subnet_args[@]}" "$network" >/dev/null
    fi
    local name image address ports spec current started
    while read -r -u 3 name image address ports; do
        # shellcheck disable=SC2086 # ports are words
        mapfile -t spec < <(run_args "$name" "$image" "$address" $ports)
        # The container carries a digest of the options it was created with, so a changed
        # inventory (new port) is noticed instead of silently ignored.
        local digest
        digest="$(printf '%s\n' "${spec[@]}" | sha256sum | cut -c1-16)"
        current="$(label_of "$name" "$label.spec")"
        started=$SECONDS
        if [[ -z $current ]]; then
            if docker inspect "$name" >/dev/null 2>&1; then
                die "$name: a container of that name exists but is not a lab host; remove it first"
            fi
            docker volume create --label "$label=volume" "$(volume_of "$name")" >/dev/null
            docker run --label "$label.spec=$digest" "${spec[@]}" >/dev/null
            log "$name: created"
        else
            [[ $current == "$digest" ]] ||
                log "$name: the inventory changed since it was created; 'scripts/lab.sh down' then 'up' to apply"
            [[ "$(docker inspect -f '{{.Image}}' "$name")" == "$(docker image inspect -f '{{.Id}}' "$image")" ]] ||
                log "$name: $image was rebuilt since it was created; 'scripts/lab.sh down' then 'up' to use it"
            if [[ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]]; then
                docker start "$name" >/dev/null
                log "$name: started"
            fi
        fi
        wait_booted "$name"
        log "$name: systemd $(docker exec "$name" systemctl is-system-running || true) ($((SECONDS - started)) s)"
    done 3<<<"$hosts"
}

cmd_down() {
    local volumes=false name
    [[ ${1:-} == --volumes ]] && volumes=true
    while read -r -u 3 name _; do
        if [[ "$(label_of "$name" "$label")" == host ]]; then
            # systemd stops its units on SIGRTMIN+3 (the image's STOPSIGNAL).
            docker stop --time 30 "$name" >/dev/null
            docker rm "$name" >/dev/null
            log "$name: removed"
        fi
        if $volumes && docker volume inspect "$(volume_of "$name")" >/dev/null 2>&1; then
            docker volume rm "$(volume_of "$name")" >/dev/null
            log "$name: volume $(volume_of "$name") removed"
        fi
    done 3<<<"$hosts"
    if docker network inspect "$network" >/dev/null 2>&1 &&
        [[ -z "$(docker network inspect -f '{{range .Containers}}x{{end}}' "$network")" ]]; then
        docker network rm "$network" >/dev/null
    fi
}

cmd_status() {
    local name state systemd ports
    printf '%-12s %-10s %-10s %s\n' HOST CONTAINER SYSTEMD PORTS
    while read -r -u 3 name _; do
        state="$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null)" || state=absent
        systemd=-
        ports=-
        if [[ $state == running ]]; then
            systemd="$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)"
            # "80/tcp -> 127.0.0.1:8080" becomes "127.0.0.1:8080->80"
            ports="$(docker port "$name" | awk '{ sub("/tcp", "", $1); print $3 "->" $1 }' | sort -t: -k2 -n | paste -sd' ' -)"
        fi
        printf '%-12s %-10s %-10s %s\n' "$name" "$state" "${systemd:--}" "${ports:--}"
    done 3<<<"$hosts"
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/start-dockerd.sh starts one)"
# Read once, before anything changes: a bad inventory stops the script here. The loops
# read it on fd 3, so no command inside them can swallow the list.
lab="$(lab_hosts)"
read -r network subnet <<<"$(head -n1 <<<"$lab")"
hosts="$(tail -n +2 <<<"$lab")"
[[ -n $hosts ]] || die "no hosts in the 'lab' group of $inventory"
case "${1:-}" in
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    status) cmd_status ;;
    *) sed -n '2,12p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
