#!/usr/bin/env bash
# The GPU checks of crates/sparse-cuda, in two halves for machines that cannot build Rust:
#
#   scripts/gpu-check.sh build   (here) builds ds-td3 without MuJoCo and the GPU test binaries,
#                                stripped, into gpu-check/bin (ignored by git; carry that folder)
#   scripts/gpu-check.sh run     (on the GPU machine) runs the kernel and TD3 parity tests on the
#                                GPU (DS_TD3_REQUIRE_GPU=1: a parity test that would skip its
#                                GPU half fails instead), a short DS-TD3 training run on Pendulum-v1 with
#                                --device cuda, and `ds-td3 bench --device cuda`; logs go to
#                                $OUT (or gpu-check/out)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=gpu-check/bin

case "${1:-}" in
build)
    rm -rf "$BIN" && mkdir -p "$BIN"
    cargo build --release --no-default-features
    cp target/release/ds-td3 "$BIN/"
    for t in "sparse-cuda parity" "td3 gpu"; do
        set -- $t
        exe=$(cargo test --release --no-default-features -p "$1" --test "$2" --no-run \
            --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])' | tail -1)
        cp "$exe" "$BIN/$1-$2"
    done
    strip "$BIN"/*
    ls -la "$BIN"
    ;;
run)
    out="${OUT:-gpu-check/out}"
    mkdir -p "$out"
    # CUDA 13's NVRTC and cuBLAS, wherever the toolkit put them.
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    # Every step runs, whatever the one before it did; each says whether it failed.
    step() {
        local log="$out/$1.log"
        shift
        "$@" >"$log" 2>&1 || echo "FAILED (exit $?): $*" >>"$log"
        tail -n 40 "$log"
    }
    step nvidia-smi nvidia-smi
    # The GPU half is what this script is for: without a GPU the parity tests fail, not skip.
    export DS_TD3_REQUIRE_GPU=1
    step parity-kernels "$BIN/sparse-cuda-parity" --test-threads 1
    step parity-td3 "$BIN/td3-gpu" --test-threads 1
    step train-pendulum-ds-cuda "$BIN/ds-td3" train --env Pendulum-v1 --device cuda \
        --steps 20000 --start-steps 2000 --eval-every 5000 --out "$out/pendulum-ds-cuda" --force
    step bench-cuda "$BIN/ds-td3" bench --device cuda
    step bench-cpu-td3 "$BIN/ds-td3" bench --only td3
    ;;
*)
    echo "usage: $0 build | run" >&2
    exit 2
    ;;
esac
