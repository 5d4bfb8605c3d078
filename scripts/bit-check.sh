#!/usr/bin/env bash
# Same bits for the same seed: short fixed-seed training runs whose results a refactor must not
# change. Prints one hash per run of its evaluations.csv without the wall-time column (returns at
# full precision, FLOPs, live connections); compare the output of two builds with diff.
#
#   scripts/bit-check.sh [BINARY]        (default: target/release/ds-td3)
#
# Runs: DS, Static and dense TD3 on 1 thread, DS on 2 threads (the same bits as 1 thread), DS
# and dense through the GPU path's host emulator, and DS-SAC on 1 thread. Hopper-v3, seed 3, 1000
# random steps then 2000 training iterations on the CPU (for DS: a rewiring at 1000, then, with
# the last 500 iterations frozen, the final prune-only step at 2000), 300 on the emulator (no
# evolution; the GPU path corrects bias per network only). Each run is evaluated at its start,
# half way and at its end, so the hashes see what training did. About two minutes.
set -euo pipefail
BIN=${1:-target/release/ds-td3}
for cfg in "ds 1 cpu 3000" "static 1 cpu 3000" "dense 1 cpu 3000" "ds 2 cpu 3000" \
    "ds 1 emulator 1300" "dense 1 emulator 1300" "ds-sac 1 cpu 3000"; do
    set -- $cfg
    dir=$(mktemp -d)
    extra=()
    case "$1/$3" in
        ds/cpu | ds-sac/cpu) extra=(--topology-freeze 500) ;;
        ds/emulator) extra=(--topology-freeze 0 --bias-correction network) ;;
    esac
    "$BIN" --env Hopper-v3 --algo "$1" --threads "$2" --device "$3" --steps "$4" \
        --start-steps 1000 --eval-every $(($4 / 2)) --eval-episodes 2 --seed 3 --out "$dir/run" \
        "${extra[@]}" --quiet > /dev/null
    echo "$1 threads=$2 $3 $(cut -d, -f1-3,5- "$dir/run/evaluations.csv" | sha256sum | cut -c1-16)"
    rm -rf "$dir"
done
