#!/usr/bin/env bash
# Run Molecule scenarios, each timed (scripts/timing), stopping at the first failure.
#
#   scripts/molecule.sh [--jobs N] [--alone "A B"] SCENARIO...
#
# Scenarios run in the order given, N at a time (default 1); those named by --alone run
# by themselves after the others, for checks that load the machine or time what they
# see (rollouts under load). A scenario that runs beside others writes to its own log,
# printed whole when it ends, so every scenario's output reads in one piece. Every
# folder of molecule/ with a molecule.yml must be named: a new scenario is never left out.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs=1
alone=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --jobs) jobs=$2; shift 2 ;;
        --alone) alone=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo pipefail/{/^#/p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) break ;;
    esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "--jobs takes a positive number, not '$jobs'" >&2; exit 2; }
scenarios=("$@")

for file in "$repo"/molecule/*/molecule.yml; do
    found=$(basename "$(dirname "$file")")
    [[ " ${scenarios[*]} " == *" $found "* ]] || {
        echo "molecule/$found is not in the scenarios to run (Makefile MOLECULE_SCENARIOS)" >&2
        exit 2
    }
done

logs="$repo/.cache/molecule-logs"
mkdir -p "$logs"
export PATH="$repo/.venv/bin:$PATH"
# One throwaway registry and model cache for the run, trained by the first scenario that
# needs it (model_server, bluegreen: molecule/resources/seed_registry.py).
SOLAR_MOLECULE_SEED="$(mktemp -d /tmp/solar-molecule-seed.XXXXXX)"
export SOLAR_MOLECULE_SEED
trap 'rm -rf "$SOLAR_MOLECULE_SEED"' EXIT

run() {
    "$repo/scripts/timing" run "molecule: $1" molecule test -s "$1"
}

# The scenarios that may share the machine, N at a time.
declare -A running=()
failed=""
finish_one() {
    local pid status=0 scenario
    wait -n -p pid "${!running[@]}" || status=$?
    scenario=${running[$pid]}
    unset "running[$pid]"
    echo "== molecule test -s $scenario (ran beside others; its log: $logs/$scenario.log)"
    cat "$logs/$scenario.log"
    if [[ $status -eq 0 ]]; then
        echo "== $scenario passed"
    else
        echo "== $scenario FAILED ($status)"
        failed="$failed $scenario"
    fi
}
for scenario in "${scenarios[@]}"; do
    [[ " $alone " == *" $scenario "* ]] && continue
    [[ -z $failed ]] || break
    if [[ $jobs -eq 1 ]]; then
        echo "== molecule test -s $scenario"
        run "$scenario" || { failed=$scenario; break; }
        continue
    fi
    while [[ ${#running[@]} -ge $jobs ]]; do finish_one; done
    run "$scenario" >"$logs/$scenario.log" 2>&1 &
    running[$!]=$scenario
done
while [[ ${#running[@]} -gt 0 ]]; do finish_one; done

# The scenarios that run alone, streamed as they go.
if [[ -z $failed ]]; then
    for scenario in "${scenarios[@]}"; do
        [[ " $alone " == *" $scenario "* ]] || continue
        echo "== molecule test -s $scenario (alone)"
        run "$scenario" || { failed=$scenario; break; }
    done
fi
if [[ -n $failed ]]; then
    echo "== molecule failed:$failed" >&2
    exit 1
fi
