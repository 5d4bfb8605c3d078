#!/usr/bin/env bash
# End-to-end training speed: env steps/s of `ds-td3 train` after the random phase, median of
# several runs, for DS-TD3 and dense TD3 on 1 and 2 threads (the figures issue 12 asks for).
#
#   scripts/steps-per-second.sh [ENV] [RUNS] [BINARY]     (defaults: Hopper-v3 3 target/release/ds-td3)
#
# Each run trains 45 000 steps with the paper's settings (25 000 random steps, then one TD3
# iteration per step; DS evolving every 1 000 iterations) and evaluates every 5 000 steps; the
# rate is the number of steps between the evaluations at 30 000 and 45 000 divided by the wall
# time between them (evaluations.csv), so start-up, the random phase and the first training
# steps are left out. Early evaluations are short episodes (a few milliseconds each). Run it on
# an otherwise idle machine.
#
# VARIANTS (default "ds dense") and THREADS (default "1 2") choose what is measured; besides the
# algorithm names, ds-90 and ds-95 are DS-TD3 at 90% and 95% sparsity with gradient growth
# (--sparsity S --growth gradient), e.g. VARIANTS="ds-90 dense" THREADS=1; ds-wide is DS-TD3 at
# 1024 units and 98% sparsity with gradient growth and three-step targets, the wide network of
# examples/beyond-ant-wide.toml (its policy-aware buffer acts only after 100 000 steps).
set -euo pipefail
ENV=${1:-Hopper-v3}
RUNS=${2:-3}
BIN=${3:-target/release/ds-td3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
rate() { # run dir -> steps/s between the evaluations at 30000 and 45000
    awk -F, 'NR > 1 && $1 == 30000 { a = $4 } NR > 1 && $1 == 45000 { b = $4 }
             END { printf "%.0f\n", 15000 / (b - a) }' "$1/evaluations.csv"
}
for variant in ${VARIANTS:-ds dense}; do
    case "$variant" in
        ds-90 | ds-95) args=(--algo ds --sparsity "0.${variant#ds-}" --growth gradient) ;;
        ds-wide) args=(--algo ds --hidden 1024 --sparsity 0.98 --growth gradient --n-step 3) ;;
        *) args=(--algo "$variant") ;;
    esac
    # DS evolves throughout, as in the first 250 000 iterations of a paper run (the default
    # freeze of 50 000 iterations would cover these 20 000 and leave the topology fixed).
    case "$variant" in
        ds*) args+=(--topology-freeze 0) ;;
    esac
    for threads in ${THREADS:-1 2}; do
        rates=()
        for i in $(seq "$RUNS"); do
            dir="$OUT/$variant-$threads-$i"
            "$BIN" train --env "$ENV" "${args[@]}" --threads "$threads" --steps 45000 \
                --out "$dir" --quiet > /dev/null
            rates+=("$(rate "$dir")")
        done
        median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        echo "$ENV $variant threads=$threads: median $median steps/s (runs: ${rates[*]})"
    done
done
